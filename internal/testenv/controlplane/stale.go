package controlplane

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	tempPattern = "pullfix-controlplane-*"
	// ownerFile records which process created a temporary directory, so a
	// later Start can delete directories whose creator died without Stop
	// (panic, go test -timeout, SIGKILL). Each holds ≈120 MB, mostly etcd's
	// preallocated write-ahead log, so they add up fast.
	ownerFile = "owner"
	// orphanAge is how old a directory without an owner file must be before
	// it counts as abandoned rather than being set up right now.
	orphanAge = time.Hour
)

// writeOwner records the current process (pid and start time, which
// together survive PID reuse) in dir.
func writeOwner(dir string) error {
	id, err := processID(os.Getpid())
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, ownerFile), []byte(id), 0o600)
}

// reapStale removes control-plane directories under root whose owner is
// gone. Errors are logged, never returned: this is housekeeping.
func reapStale(root string, log *slog.Logger) {
	if root == "" {
		root = os.TempDir()
	}
	dirs, _ := filepath.Glob(filepath.Join(root, tempPattern))
	for _, dir := range dirs {
		data, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			fi, serr := os.Stat(dir)
			if serr != nil || time.Since(fi.ModTime()) < orphanAge {
				continue
			}
		} else if ownerAlive(string(data)) {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			log.Warn("remove stale control-plane directory", "dir", dir, "err", err)
			continue
		}
		log.Debug("removed stale control-plane directory", "dir", dir)
	}
}

// ownerAlive reports whether the process recorded by writeOwner still runs.
func ownerAlive(recorded string) bool {
	pid, err := strconv.Atoi(strings.Fields(recorded + " x")[0])
	if err != nil {
		return false
	}
	id, err := processID(pid)
	return err == nil && id == strings.TrimSpace(recorded)
}

// processID is "pid starttime" from /proc/<pid>/stat.
func processID(pid int) (string, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", err
	}
	s := string(data)
	// Fields after "(comm)": state is field 3 of the file, starttime 22.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 20 {
		return "", fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return fmt.Sprintf("%d %s", pid, f[19]), nil
}
