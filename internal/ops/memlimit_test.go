package ops

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// memoryCgroup makes a child cgroup with a memory limit of limit bytes and
// returns its directory: cgroup v2 (memory.max) where the unified
// hierarchy holds the memory controller, else v1 (memory.limit_in_bytes).
// It skips (fails with CI=true) where neither can be written.
func memoryCgroup(t *testing.T, limit int64) string {
	t.Helper()
	name := fmt.Sprintf("pullfix-memlimit-%d", os.Getpid())
	type layout struct{ parent, file string }
	var tried []string
	for _, l := range []layout{{"/sys/fs/cgroup", "memory.max"}, {"/sys/fs/cgroup/memory", "memory.limit_in_bytes"}} {
		if _, err := os.Stat(filepath.Join(l.parent, l.file)); err != nil && l.file == "memory.max" {
			// v2 only when the root offers the controller to children.
			if b, err := os.ReadFile(filepath.Join(l.parent, "cgroup.subtree_control")); err != nil || !strings.Contains(string(b), "memory") {
				tried = append(tried, l.parent+" (no v2 memory controller)")
				continue
			}
		}
		dir := filepath.Join(l.parent, name)
		if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
			tried = append(tried, fmt.Sprintf("%s: %v", dir, err))
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, l.file), []byte(fmt.Sprint(limit)), 0o644); err != nil {
			_ = os.Remove(dir)
			tried = append(tried, fmt.Sprintf("%s: %v", l.file, err))
			continue
		}
		t.Cleanup(func() {
			// The process has exited; an empty cgroup can be removed.
			deadline := time.Now().Add(10 * time.Second)
			for os.Remove(dir) != nil && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
		})
		return dir
	}
	msg := "no writable memory cgroup (run as root with cgroup v1 or v2 memory controller): " + strings.Join(tried, "; ")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// TestGOMEMLIMITFromCgroup: the real binary (cmd/bot, which calls
// SetMemoryLimit as it starts) started inside a cgroup with a
// 200 MiB memory limit sets GOMEMLIMIT to 90 % of it, before anything else
// (here it then fails to find its cluster); an explicit GOMEMLIMIT wins.
func TestGOMEMLIMITFromCgroup(t *testing.T) {
	const limit = 200 << 20
	dir := memoryCgroup(t, limit)
	bin := filepath.Join(t.TempDir(), "bot")
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "../../cmd/bot").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"from the cgroup", nil, fmt.Sprintf("gomemlimit_bytes=%d", int64(limit*memLimitRatio))},
		{"GOMEMLIMIT set", []string{"GOMEMLIMIT=50MiB"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The shell joins the cgroup, then becomes the bot: the
			// process is in the cgroup from its first instruction.
			cmd := exec.CommandContext(ctx, "sh", "-c", `echo $$ > "$1/cgroup.procs" && exec "$2" run`, "sh", dir, bin)
			cmd.Env = append(os.Environ(), "PULLFIX_KUBECONFIG="+filepath.Join(t.TempDir(), "none"),
				"PULLFIX_LOG_FORMAT=text", "PULLFIX_LOG_LEVEL=info")
			cmd.Env = append(cmd.Env, tc.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			_ = cmd.Run() // it stops: no cluster
			log := stderr.String()
			got := strings.Contains(log, "GOMEMLIMIT set from the container's memory limit")
			switch {
			case tc.want != "" && (!got || !strings.Contains(log, tc.want)):
				t.Fatalf("want %q in the log:\n%s", tc.want, log)
			case tc.want == "" && got:
				t.Fatalf("an explicit GOMEMLIMIT was overridden:\n%s", log)
			}
		})
	}
}
