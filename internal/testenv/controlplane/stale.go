package controlplane

import (
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/pullfix/pullfix/internal/testenv/proc"
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
	id, err := proc.OwnerID()
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
		} else if proc.OwnerAlive(string(data)) {
			continue
		}
		if err := os.RemoveAll(dir); err != nil {
			log.Warn("remove stale control-plane directory", "dir", dir, "err", err)
			continue
		}
		log.Debug("removed stale control-plane directory", "dir", dir)
	}
}
