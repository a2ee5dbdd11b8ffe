package watch

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/pullfix/pullfix/internal/watch/incident"
	"github.com/pullfix/pullfix/internal/watch/leader"
)

// Option configures a Watcher. An option given a value it cannot use makes
// New fail with an error that names it: a configuration mistake is found at
// start-up, not in the first storm.
type Option func(*Watcher) error

func errorf(format string, a ...any) error { return fmt.Errorf("watch: "+format, a...) }

// Defaults of the options.
const (
	// DefaultCluster is the cluster name when WithCluster is not given.
	DefaultCluster = "default"
	// DefaultWorkers is the number of sync workers.
	DefaultWorkers = 4
	// DefaultResolveTimeout: see WithResolveTimeout.
	DefaultResolveTimeout = 5 * time.Minute
)

// WithCluster sets the cluster name shown in every report (default
// DefaultCluster); it may not be empty.
func WithCluster(name string) Option {
	return func(w *Watcher) error {
		if name == "" {
			return errorf("WithCluster: the cluster name is empty")
		}
		w.cluster = name
		return nil
	}
}

// WithNamespaces limits the watch to these namespaces (default: all).
func WithNamespaces(ns ...string) Option {
	return func(w *Watcher) error {
		if slices.Contains(ns, "") {
			return errorf("WithNamespaces: an empty namespace name in %q", ns)
		}
		w.namespaces = ns
		return nil
	}
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(w *Watcher) error {
		if l == nil {
			return errorf("WithLogger: nil logger")
		}
		w.log = l
		return nil
	}
}

// WithWorkers sets the number of sync workers (default DefaultWorkers; at
// least 1). Diagnosis waits on registries, so a few workers keep one slow
// registry from holding up the rest.
func WithWorkers(n int) Option {
	return func(w *Watcher) error {
		if n < 1 {
			return errorf("WithWorkers(%d): at least one worker is needed", n)
		}
		w.workers = n
		return nil
	}
}

// WithResolveTimeout bounds how long a notified incident whose pods left may
// wait for its workload to become ready before it is reported resolved
// anyway on the evidence that no pod fails any more (default
// DefaultResolveTimeout; must be positive).
func WithResolveTimeout(d time.Duration) Option {
	return func(w *Watcher) error {
		if d <= 0 {
			return errorf("WithResolveTimeout(%s): must be positive", d)
		}
		w.resolveTimeout = d
		return nil
	}
}

// WithMetrics records incidents, detection and probe latency, patches and
// errors (default: none; nil records nothing).
func WithMetrics(m *Metrics) Option { return func(w *Watcher) error { w.metrics = m; return nil } }

// WithStateConfigMap persists incidents (ID, lifecycle, notification
// reference, verified candidates, proven pull secrets) in the ConfigMap
// namespace/name — the bot's own namespace; name "" means
// incident.DefaultStateConfigMap — so a restart or a new leader posts
// nothing twice. Default: state in memory only, so a restart posts every
// open incident again.
func WithStateConfigMap(namespace, name string) Option {
	return func(w *Watcher) error {
		if namespace == "" {
			return errorf("WithStateConfigMap: the namespace is empty")
		}
		if name == "" {
			name = incident.DefaultStateConfigMap
		}
		w.stateNS, w.stateName = namespace, name
		return nil
	}
}

// WithStateLimits bounds the state ConfigMap: resolved and dismissed
// incidents are forgotten ttl after their last change, and at most
// maxEntries records of at most maxBytes in all are kept, oldest closed
// ones dropped first. Zero keeps a default (incident.DefaultStateTTL,
// DefaultStateMaxEntries, DefaultStateMaxBytes); negative is an error.
func WithStateLimits(ttl time.Duration, maxEntries, maxBytes int) Option {
	return func(w *Watcher) error {
		if ttl < 0 || maxEntries < 0 || maxBytes < 0 {
			return errorf("WithStateLimits(%s, %d, %d): negative bound", ttl, maxEntries, maxBytes)
		}
		w.stateTTL, w.stateMaxEntries, w.stateMaxBytes = ttl, maxEntries, maxBytes
		return nil
	}
}

// WithLeaderElection makes Run campaign for a Lease and sync and notify
// only while it leads; followers keep their informers warm, so a new
// leader needs only to read the state ConfigMap before it takes over.
// Default: no election (a single replica). cfg.Namespace is required.
func WithLeaderElection(cfg leader.Config) Option {
	return func(w *Watcher) error {
		if _, err := cfg.WithDefaults(); err != nil {
			return errorf("WithLeaderElection: %v", err)
		}
		c := cfg
		w.leader = &c
		return nil
	}
}

// WithOnLeading runs f in a goroutine of its own each time this Watcher
// starts leading (at once without leader election), with a context that
// ends when leadership ends; the leadership ends only after f has
// returned. cmd/bot holds the Slack connection there: Slack hands each
// event to one connection, which must be the leader's.
func WithOnLeading(f func(ctx context.Context)) Option {
	return func(w *Watcher) error { w.onLeading = f; return nil }
}

// WithGroupWindow sets the storm window (default DefaultGroupWindow, 30s):
// an incident whose detection follows the last one at its registry by at
// most this long, with the same diagnosed cause as an open group there,
// joins that group's message instead of posting its own. It never delays
// a post. Zero or negative turns grouping off.
func WithGroupWindow(d time.Duration) Option {
	return func(w *Watcher) error { w.groupWindow = d; return nil }
}
