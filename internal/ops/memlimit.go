package ops

import (
	"log/slog"
	"math"
	"os"
	"runtime/debug"

	"github.com/KimMachineGun/automemlimit/memlimit"
)

// memLimitRatio is the share of the container's memory limit given to the
// Go heap's soft limit: the rest is for what the Go runtime does not count
// (thread stacks, the binary's mappings), so the collector works harder as
// the heap nears the limit instead of the kernel killing the pod.
const memLimitRatio = 0.9

// SetMemoryLimit sets GOMEMLIMIT from the memory limit of the container's
// cgroup (v1 or v2, nested hierarchies and cgroup namespaces included),
// unless GOMEMLIMIT is set already or AUTOMEMLIMIT=off. Without a limit
// nothing changes. It returns the limit it set (0 when none was read), or
// the one in force when left as configured. The bot calls it first
// thing after making its logger, before the informers fill the heap.
//
// github.com/KimMachineGun/automemlimit does the reading: a small, widely
// used library (one dependency, pbnjay/memory) whose cgroup code walks
// /proc/self/mountinfo and /proc/self/cgroup the way the kernel lays them
// out, including v1's "no limit" sentinel and a v2 limit set on an
// ancestor rather than on the process's own group — the cases forty lines
// of our own would get wrong first.
func SetMemoryLimit(log *slog.Logger) int64 {
	if v := os.Getenv("GOMEMLIMIT"); v != "" || os.Getenv("AUTOMEMLIMIT") == "off" {
		log.Debug("GOMEMLIMIT left as configured", "GOMEMLIMIT", v)
		return debug.SetMemoryLimit(-1)
	}
	limit, err := memlimit.Set(memlimit.WithRatio(memLimitRatio), memlimit.WithProvider(memlimit.FromCgroup))
	switch {
	case err != nil:
		log.Debug("no container memory limit read; GOMEMLIMIT unchanged", "err", err)
	case limit > 0 && limit < math.MaxInt64:
		log.Info("GOMEMLIMIT set from the container's memory limit", "gomemlimit_bytes", limit, "ratio", memLimitRatio)
	}
	return limit
}
