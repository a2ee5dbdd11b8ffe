package node

import (
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pullfix/pullfix/internal/testenv/proc"
)

// TestReapStaleNode: a node whose test process died without Stop (panic,
// SIGKILL, go test -timeout) left a container in its cgroups and a shim
// serving its containerd; the next Start's reaping kills both by pid and
// removes the cgroups and the directory. (The kubelet and containerd
// themselves die with the test process: parent-death signal.)
func TestReapStaleNode(t *testing.T) {
	Require(t)
	sleeper, err := SleeperBinary()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	dir := filepath.Join(root, "pullfix-node-stale")
	sock := filepath.Join(dir, "containerd", "containerd.sock")
	if err := os.MkdirAll(filepath.Dir(sock), 0o755); err != nil {
		t.Fatal(err)
	}
	cgroupRoot := "/pullfix-node-stale-" + strings.ToLower(rand.Text()[:6])
	// An owner that cannot be alive: pid 1 with a start time it never had.
	for name, data := range map[string]string{proc.OwnerFile: "1 0", cgroupFile: cgroupRoot} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := makeCgroupRoot(cgroupRoot); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = removeCgroups(cgroupRoot) })

	// The "container": a process in the node's cgroups.
	container := exec.Command(sleeper)
	if err := container.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = container.Process.Kill() })
	hs, err := hierarchies()
	if err != nil || len(hs) == 0 {
		t.Fatalf("no cgroup hierarchies: %v", err)
	}
	h := hs[0]
	for _, c := range hs {
		if filepath.Base(c) == "memory" {
			h = c
		}
	}
	procs := filepath.Join(h, cgroupRoot, "cgroup.procs")
	if err := os.WriteFile(procs, []byte(strconv.Itoa(container.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	// The "shim": named like one, serving this node's containerd socket.
	shim := &exec.Cmd{Path: sleeper, Args: []string{"containerd-shim-runc-v2", "-namespace", "k8s.io", "-address", sock}}
	if err := shim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = shim.Process.Kill() })
	poll(t, 10*time.Second, "the shim to be found by its command line", func(ctx context.Context) (bool, error) {
		return len(shimPIDs(sock)) == 1 && len(cgroupPIDs(cgroupRoot)) == 1, nil
	})

	reapStale(root, slog.New(slog.DiscardHandler))

	for name, cmd := range map[string]*exec.Cmd{"container": container, "shim": shim} {
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("the stale %s (pid %d) is still running after reaping", name, cmd.Process.Pid)
		}
	}
	for _, h := range hs {
		if _, err := os.Stat(filepath.Join(h, cgroupRoot)); err == nil {
			t.Errorf("cgroup %s still exists after reaping", filepath.Join(h, cgroupRoot))
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after reaping (%v)", dir, err)
	}
}
