package node

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// SleeperPackage is the program the node's images run (see sleeper/).
const SleeperPackage = "github.com/pullfix/pullfix/internal/testenv/node/sleeper"

// BuildSleeper builds the sleeper as a static linux/amd64 binary named
// "sleeper" in dir and returns its path. It runs the Go toolchain that
// built the caller (GOROOT/bin/go, else go on PATH) from within the
// module, so it works from any test in the repository; the build cache
// makes it about a second after the first time.
func BuildSleeper(ctx context.Context, dir string) (string, error) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		goBin = "go"
	}
	out := filepath.Join(dir, "sleeper")
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, SleeperPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w\n%s", SleeperPackage, err, b)
	}
	return out, nil
}
