// Package watch is pullfix's controller: informers on pods that cannot
// pull their images and on the kubelet's events, one incident per broken
// (workload, container, image) however many pods share it, storm groups,
// and the owner of every incident's state — its lifecycle, the one message
// that says it is resolved, the double-click guard, the image a click may
// deploy and the pull secrets proven for it. It declares what it needs of
// the edges (Notifier, Diagnoser) and cmd/bot wires them.
//
// The rules it applies live in the packages named for them: incident (the
// model, the lifecycle's transitions, the state ConfigMap), workload (the
// table of workload kinds, owners, image sources, readiness), fix (the
// patcher and the rollout follow-up), creds (pull secrets, ECR) and
// leader (the Lease).
//
// It follows kubernetes/sample-controller: handlers only enqueue typed
// items, a worker re-reads state from the informer caches on every sync,
// and every sync is level-based, so a missed or repeated notification from
// the API server changes nothing. Files: watcher.go (Run, leading),
// options.go, queue.go (work items), informers.go, pods.go (pods to
// incidents), diagnosis.go and refine.go (the diagnosis budget), lifecycle.go,
// grouping.go (storms), fixing.go (a click's fix), secrets.go (proven pull
// secrets), ondemand.go (/pullfix NAME).
package watch

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/watch/fix"
	"github.com/pullfix/pullfix/internal/watch/incident"
	"github.com/pullfix/pullfix/internal/watch/leader"
	"github.com/pullfix/pullfix/internal/watch/workload"
)

// Diagnoser turns a target into a diagnosis; internal/diagnose's Diagnoser
// implements it. Declared here, where it is used.
type Diagnoser interface {
	Diagnose(ctx context.Context, t diagnose.Target, kc authn.Keychain) diagnose.Diagnosis
}

// Notifier is told about incidents: the console printer and the Slack app
// implement it. All calls come from the leader's sync workers, one at a
// time per incident and per group, never from two replicas.
type Notifier interface {
	// Opened posts a new incident, with its diagnosis, and returns a
	// reference to the notification (a Slack "channel/ts"; "" when there is
	// nothing to refer back to, as on the console). The watcher persists it
	// and hands it back in Incident.NotifyRef on every later call. It is
	// called once per occurrence, and again only when a snoozed incident
	// wakes still failing.
	Opened(ctx context.Context, inc Incident) (ref string, err error)
	// Updated reports a lifecycle change of a notified incident that is
	// not in a group: fixing, dismissed or snoozed (inc.State, inc.By,
	// inc.SnoozedUntil). Edit the message inc.NotifyRef names.
	Updated(ctx context.Context, inc Incident) error
	// Resolved is called once when an incident that is not in a group is
	// observed fixed: its pods run and the workload is ready.
	Resolved(ctx context.Context, inc Incident) error
	// UpdatedGroup reports a storm group (see Group): called when a second
	// incident of the same cause and registry joins the first — the first
	// incident's message, g.NotifyRef, becomes the group's message — and
	// again whenever members join or change state (resolved, dismissed…).
	// Grouped incidents get no Updated or Resolved calls of their own.
	UpdatedGroup(ctx context.Context, g Group) error
}

// Watcher watches pods that cannot pull their images and keeps one incident
// per (workload, container, image).
type Watcher struct {
	budget         time.Duration // see WithDiagnosisBudget
	cs             kubernetes.Interface
	diag           Diagnoser
	notify         Notifier
	cluster        string
	namespaces     []string
	log            *slog.Logger
	workers        int
	resolveTimeout time.Duration
	metrics        *Metrics
	groupWindow    time.Duration
	leader         *leader.Config
	onLeading      func(context.Context)
	onOpened       func(ctx context.Context, inc Incident, ref string) // see WithOnOpened
	findSecrets    SecretFinder                                        // nil: no pull-secret search
	patcher        *fix.Patcher                                        // nil: no fixes

	stateNS, stateName string
	stateTTL           time.Duration
	stateMaxEntries    int
	stateMaxBytes      int
	store              *incident.Store

	owners *workload.OwnerResolver
	inputs *inputs

	// bg holds the goroutines a leadership starts besides its workers (the
	// refinement of a slow diagnosis, a pull-secret search, onLeading):
	// lead waits for them before it returns.
	bg sync.WaitGroup

	runMu   sync.Mutex // one Run at a time
	queue   atomic.Pointer[queueBox]
	leading atomic.Bool

	mu           sync.Mutex
	podListers   []podLister
	eventIndexes []cache.Indexer
	synced       []cache.InformerSynced
	incidents    map[string]*entry   // Key.String() → entry
	ids          map[string]string   // incident ID → Key.String()
	podKeys      map[string][]string // "ns/pod" → incident keys it belongs to
	groups       map[string]*group   // group ID → group
	groupLocks   map[groupKey]*sync.Mutex
	detections   map[string][]time.Time // registry → sorted detection times
}

type podLister struct {
	namespace string // "" for all
	lister    listerscorev1.PodLister
}

type entry struct {
	Incident
	pods       map[string]struct{}
	emptySince time.Time
	// reported is the state the notifier last heard about, so a lifecycle
	// change made through the API is reported once, by a worker.
	reported State
	// refined is a full diagnosis that arrived after the incident was
	// posted on the kubelet's words (see diagnoseWithin).
	refined *diagnose.Diagnosis
	// fixInFlight: the watcher is applying or following a fix (SetImage,
	// AddPullSecret, until FollowFix or ClearFixing); fixReported: its
	// follow-up saw the rollout ready and the fixer said so. Either way the
	// watcher posts no "resolved" itself.
	fixInFlight, fixReported bool
	// secretsSearched: ProvenSecrets holds the answer of a search (maybe
	// none); searching: a background search is under way.
	secretsSearched, searching bool
}

// New returns a Watcher; call Run to start it. It fails when an option's
// value is unusable.
func New(cs kubernetes.Interface, d Diagnoser, n Notifier, opts ...Option) (*Watcher, error) {
	w := &Watcher{
		cs: cs, diag: d, notify: n,
		cluster: DefaultCluster, log: slog.Default(), workers: DefaultWorkers, resolveTimeout: DefaultResolveTimeout,
		groupWindow: DefaultGroupWindow, budget: DefaultDiagnosisBudget,
	}
	w.resetLocked()
	for _, o := range opts {
		if err := o(w); err != nil {
			return nil, err
		}
	}
	if w.stateName != "" {
		w.store = incident.NewStore(cs, w.stateNS, w.stateName, w.log)
	} else {
		w.store = incident.NewStore(nil, "", "", w.log)
	}
	w.store.SetLimits(w.stateTTL, w.stateMaxEntries, w.stateMaxBytes)
	w.owners = workload.NewOwnerResolver(cs, 0)
	w.inputs = newInputs(cs)
	return w, nil
}

func (w *Watcher) resetLocked() {
	w.incidents, w.ids, w.podKeys = map[string]*entry{}, map[string]string{}, map[string][]string{}
	w.groups, w.groupLocks = map[string]*group{}, map[groupKey]*sync.Mutex{}
	w.detections = map[string][]time.Time{}
}

// Run starts the informers and blocks until ctx ends. Without leader
// election it leads at once; with it, it campaigns and syncs and notifies
// only while it holds the Lease, campaigning again after losing it.
// Before the first notification of each leadership it loads the state
// ConfigMap and replays every cached pod, so nothing already posted is
// posted again and an incident fixed meanwhile is reported resolved.
func (w *Watcher) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	if !w.runMu.TryLock() {
		return errors.New("watch: Run is already running")
	}
	defer w.runMu.Unlock()
	var lc leader.Config
	if w.leader != nil {
		var err error
		if lc, err = w.leader.WithDefaults(); err != nil {
			return err
		}
		if lc.Logger == slog.Default() {
			lc.Logger = w.log
		}
	}
	if err := w.startInformers(ctx); err != nil {
		return err
	}
	w.mu.Lock()
	synced := append([]cache.InformerSynced(nil), w.synced...)
	w.mu.Unlock()
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		// Only a cancelled context stops the wait: that is a shutdown, not an error.
		return nil
	}
	w.log.Info("watching pods that cannot pull their images", "cluster", w.cluster, "namespaces", strings.Join(w.namespaces, ","))
	if w.leader == nil {
		w.lead(ctx)
		return nil
	}
	for {
		err := leader.Run(ctx, w.cs, lc, w.lead)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, leader.ErrLeadershipLost) {
			return err
		}
	}
}

// lead syncs and notifies until ctx ends: load the state, rebuild the
// incidents from it and from the caches, then run the workers.
func (w *Watcher) lead(ctx context.Context) {
	began := time.Now()
	w.mu.Lock()
	w.resetLocked()
	w.mu.Unlock()
	if !w.loadState(ctx) {
		return
	}
	box := &queueBox{
		q:    newQueue("pullfix"),
		pods: newQueue("pullfix-pods"),
	}
	defer box.q.ShutDown()
	defer box.pods.ShutDown()
	restored := w.restore()
	w.queue.Store(box)
	defer w.queue.Store(nil)

	// Replay every cached pod before any incident is synced: a restored
	// incident with no failing pod after this is one that was fixed
	// while no one was leading.
	primed := w.prime(ctx)
	w.mu.Lock()
	for ks := range w.incidents {
		if primed {
			box.q.Add(item{kind: itemIncident, key: ks})
		} else {
			box.q.AddAfter(item{kind: itemIncident, key: ks}, 5*time.Second)
		}
	}
	for id := range w.groups {
		box.q.Add(item{kind: itemGroup, key: id})
	}
	w.mu.Unlock()
	w.leading.Store(true)
	defer w.leading.Store(false)
	w.resumeFixes(ctx) // before the workers: a resumed fix is not also "resolved" by them
	w.log.Info("leading: syncing incidents", "restored", restored, "took", time.Since(began).Round(time.Millisecond))
	if w.onLeading != nil {
		w.bg.Go(func() { w.onLeading(ctx) })
	}
	var wg sync.WaitGroup
	for range w.workers {
		wg.Go(func() {
			for w.processNext(ctx, box.q) {
			}
		})
	}
	for range podWorkers {
		wg.Go(func() {
			for w.processNext(ctx, box.pods) {
			}
		})
	}
	<-ctx.Done()
	box.q.ShutDown()
	box.pods.ShutDown()
	wg.Wait()
	// What the leadership started besides the workers ends with ctx: wait
	// for it, so nothing of this leadership outlives it.
	w.bg.Wait()
	w.inputs.wait()
}

// loadState reads the state ConfigMap, retrying with back-off: notifying
// without it could post everything again.
func (w *Watcher) loadState(ctx context.Context) bool {
	delay := 500 * time.Millisecond
	for {
		err := w.store.Load(ctx)
		if err == nil {
			return true
		}
		w.metrics.Error("state")
		w.log.Error("cannot read the incident state; not notifying until it can be read", "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(delay):
		}
		delay = min(2*delay, 30*time.Second)
	}
}

// prime syncs every cached pod (and every pod a pull-failure event names)
// synchronously. It reports false if some could not be resolved; the
// caller then waits before judging restored incidents.
func (w *Watcher) prime(ctx context.Context) bool {
	w.mu.Lock()
	listers := append([]podLister(nil), w.podListers...)
	indexes := append([]cache.Indexer(nil), w.eventIndexes...)
	w.mu.Unlock()
	seen := map[string]bool{}
	ok := true
	replay := func(key string) {
		if seen[key] {
			return
		}
		seen[key] = true
		if err := w.syncPod(ctx, key); err != nil {
			ok = false
			w.enqueue(item{kind: itemPod, key: key})
		}
	}
	for _, pl := range listers {
		pods, err := pl.lister.List(labels.Everything())
		if err != nil {
			ok = false
			continue
		}
		for _, p := range pods {
			replay(p.Namespace + "/" + p.Name)
		}
	}
	for _, idx := range indexes {
		for _, obj := range idx.List() {
			if ev, isEv := obj.(*corev1.Event); isEv && strings.HasPrefix(ev.Message, "Failed to pull image") {
				replay(ev.InvolvedObject.Namespace + "/" + ev.InvolvedObject.Name)
			}
		}
	}
	return ok
}

// IsLeader reports whether this Watcher is leading now: syncing and
// notifying. Without leader election it is true while Run is running.
func (w *Watcher) IsLeader() bool { return w.leading.Load() }

// HasSynced reports whether every informer has synced.
func (w *Watcher) HasSynced() bool {
	w.mu.Lock()
	s := append([]cache.InformerSynced(nil), w.synced...)
	w.mu.Unlock()
	if len(s) == 0 {
		return false
	}
	for _, f := range s {
		if !f() {
			return false
		}
	}
	return true
}
