package watch

import (
	"context"
	"time"

	"k8s.io/client-go/util/workqueue"
)

// itemKind says what a work-queue item asks a worker to sync.
type itemKind uint8

const (
	// itemPod: recompute which incidents a pod belongs to; key "ns/name".
	itemPod itemKind = iota
	// itemIncident: drive one incident through its lifecycle; key Key.String().
	itemIncident
	// itemGroup: report a storm group's members; key the group ID.
	itemGroup
	// itemRefine: report a diagnosis that arrived after the post; key Key.String().
	itemRefine
	// itemSecrets: offer pull secrets proven after the post; key Key.String().
	itemSecrets
	// itemState: write the state ConfigMap again; no key.
	itemState
)

var itemKindNames = [...]string{"pod", "incident", "group", "refine", "secrets", "state"}

// item is one unit of work: comparable, so the queue folds repeats of it.
type item struct {
	kind itemKind
	key  string
}

func (i item) String() string { return itemKindNames[i.kind] + ":" + i.key }

// queue is a rate-limited work queue of items.
type queue = workqueue.TypedRateLimitingInterface[item]

func newQueue(name string) queue {
	return workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[item](),
		workqueue.TypedRateLimitingQueueConfig[item]{Name: name})
}

// queueBox holds the leader's workqueues; nil while following, so informer
// events only warm the caches.
type queueBox struct {
	q    queue // incidents, groups, refinements, secrets, state
	pods queue // pods
}

// enqueue adds an item to the leader's queue; a follower drops it.
func (w *Watcher) enqueue(it item) {
	if b := w.queue.Load(); b != nil {
		b.of(it).Add(it)
	}
}

func (w *Watcher) enqueueAfter(it item, d time.Duration) {
	if b := w.queue.Load(); b != nil {
		b.of(it).AddAfter(it, d)
	}
}

// podWorkers sync pods: cache reads, rarely an owner read, so a few suffice.
const podWorkers = 4

// of is the queue an item belongs to: pods have their own, so that opening
// an incident never waits behind diagnoses, which hold a worker for up to
// the diagnosis budget — in a storm the next workload's first failing pod
// would otherwise queue behind the last one's registry probe.
func (b *queueBox) of(it item) queue {
	if it.kind == itemPod {
		return b.pods
	}
	return b.q
}

func (w *Watcher) processNext(ctx context.Context, q queue) bool {
	it, quit := q.Get()
	if quit {
		return false
	}
	defer q.Done(it)
	var err error
	var requeue time.Duration
	switch it.kind {
	case itemPod:
		err = w.syncPod(ctx, it.key)
	case itemIncident:
		requeue, err = w.syncIncident(ctx, it.key)
	case itemGroup:
		err = w.syncGroup(ctx, it.key)
	case itemState:
		err = w.persist(ctx)
	case itemRefine:
		err = w.syncRefine(ctx, it.key)
	case itemSecrets:
		err = w.syncSecrets(ctx, it.key)
	}
	switch {
	case err != nil && ctx.Err() != nil:
		// Shutting down: the next leader syncs it.
	case err != nil:
		w.metrics.Error("sync")
		w.log.Warn("sync failed; will retry", "item", it.String(), "err", err)
		q.AddRateLimited(it)
	case requeue > 0:
		q.Forget(it)
		q.AddAfter(it, requeue)
	default:
		q.Forget(it)
	}
	return true
}
