package controlplane

import (
	"log/slog"
	"os"

	"github.com/pullfix/pullfix/internal/testenv/proc"
)

const tempPattern = "pullfix-controlplane-*"

// Each control-plane directory holds ≈120 MB, mostly etcd's preallocated
// write-ahead log, so abandoned ones add up fast: Start reaps them.

// reapStale removes control-plane directories under root whose owner is
// gone. Errors are logged, never returned: this is housekeeping.
func reapStale(root string, log *slog.Logger) {
	if root == "" {
		root = os.TempDir()
	}
	for _, dir := range proc.Abandoned(root, tempPattern) {
		if err := os.RemoveAll(dir); err != nil {
			log.Warn("remove stale control-plane directory", "dir", dir, "err", err)
			continue
		}
		log.Debug("removed stale control-plane directory", "dir", dir)
	}
}
