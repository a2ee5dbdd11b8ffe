package controlplane

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// EnsureBinaries returns the directory holding the control-plane binaries,
// building them first with repoRoot/hack/build-k8s.sh if they are missing.
// The script's progress goes to os.Stderr, because the first build takes
// several minutes and a silent demo looks hung; later calls return at once.
func EnsureBinaries(ctx context.Context, repoRoot string) (string, error) {
	if dir, err := BinDir(); err == nil {
		return dir, nil
	} else if os.Getenv(EnvBinDir) != "" {
		// An explicit directory that is incomplete is a configuration
		// error; building into the cache would silently ignore it.
		return "", err
	}
	var progress io.Writer = os.Stderr
	script := filepath.Join(repoRoot, "hack", "build-k8s.sh")
	fmt.Fprintf(progress, "building Kubernetes %s control-plane binaries with %s (first time only, several minutes)…\n", KubernetesVersion, script)
	start := time.Now()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Dir = repoRoot
	cmd.Stdout = &out
	cmd.Stderr = progress
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("run %s: %w", script, err)
	}
	dir := lastLine(out.String())
	if dir == "" {
		return "", errors.New("build-k8s.sh printed no directory")
	}
	if err := checkBinDir(dir); err != nil {
		return "", err
	}
	fmt.Fprintf(progress, "control-plane binaries ready in %s (%s)\n", dir, time.Since(start).Round(time.Second))
	return dir, nil
}

// lastLine returns the last non-empty line of s, trimmed.
func lastLine(s string) string {
	var last string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			last = l
		}
	}
	return last
}
