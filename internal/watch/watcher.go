// Package watch owns pullfix's side of Kubernetes: informers on pods that
// cannot pull their images and on the kubelet's events, incident bookkeeping
// (many pods, one incident), and the inputs diagnosis needs (pull
// credentials, node platform, revision history).
//
// It follows kubernetes/sample-controller: handlers only enqueue keys, a
// worker re-reads state from the informer caches on every sync, and every
// sync is level-based, so a missed or repeated notification from the API
// server changes nothing.
package watch

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/pullfix/pullfix/internal/diagnose"
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

// Option configures a Watcher.
type Option func(*Watcher)

// WithCluster sets the cluster name shown in every report (default "default").
func WithCluster(name string) Option { return func(w *Watcher) { w.cluster = name } }

// WithNamespaces limits the watch to these namespaces (default: all).
func WithNamespaces(ns ...string) Option { return func(w *Watcher) { w.namespaces = ns } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(w *Watcher) { w.log = l } }

// WithWorkers sets the number of sync workers (default 4). Diagnosis waits
// on registries, so a few workers keep one slow registry from holding up the rest.
func WithWorkers(n int) Option { return func(w *Watcher) { w.workers = n } }

// WithResolveTimeout bounds how long a notified incident whose pods left may
// wait for its workload to become ready before it is reported resolved
// anyway on the evidence that no pod fails any more (default 5m).
func WithResolveTimeout(d time.Duration) Option { return func(w *Watcher) { w.resolveTimeout = d } }

// WithMetrics records incidents, detection and probe latency and errors
// (default: none).
func WithMetrics(m *Metrics) Option { return func(w *Watcher) { w.metrics = m } }

// WithStateConfigMap persists incidents (ID, lifecycle, notification
// reference, verified candidates) in the ConfigMap namespace/name — the
// bot's own namespace; name "" means DefaultStateConfigMap — so a restart
// or a new leader posts nothing twice. Default: state in memory only, so a
// restart posts every open incident again.
func WithStateConfigMap(namespace, name string) Option {
	return func(w *Watcher) {
		if name == "" {
			name = DefaultStateConfigMap
		}
		w.stateNS, w.stateName = namespace, name
	}
}

// WithStateLimits bounds the state ConfigMap: resolved and dismissed
// incidents are forgotten ttl after their last change, and at most
// maxEntries records of at most maxBytes in all are kept, oldest closed
// ones dropped first. Zero keeps a default (DefaultStateTTL,
// DefaultStateMaxEntries, DefaultStateMaxBytes).
func WithStateLimits(ttl time.Duration, maxEntries, maxBytes int) Option {
	return func(w *Watcher) { w.stateTTL, w.stateMaxEntries, w.stateMaxBytes = ttl, maxEntries, maxBytes }
}

// WithLeaderElection makes Run campaign for a Lease and sync and notify
// only while it leads; followers keep their informers warm, so a new
// leader needs only to read the state ConfigMap before it takes over.
// Default: no election (a single replica).
func WithLeaderElection(cfg LeaderConfig) Option {
	return func(w *Watcher) { c := cfg; w.leader = &c }
}

// WithOnLeading calls f in its own goroutine each time this Watcher starts
// leading (at once without leader election), with a context that ends when
// leadership ends. cmd/bot holds the Slack connection there: Slack hands
// each event to one connection, which must be the leader's.
func WithOnLeading(f func(ctx context.Context)) Option { return func(w *Watcher) { w.onLeading = f } }

// WithGroupWindow sets the storm window (default DefaultGroupWindow, 30s):
// an incident whose detection follows the last one at its registry by at
// most this long, with the same diagnosed cause as an open group there,
// joins that group's message instead of posting its own. It never delays
// a post. Zero or negative turns grouping off.
func WithGroupWindow(d time.Duration) Option { return func(w *Watcher) { w.groupWindow = d } }

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
	leader         *LeaderConfig
	onLeading      func(context.Context)
	resume         func(context.Context, []Incident) // reconcile.go

	stateNS, stateName string
	stateTTL           time.Duration
	stateMaxEntries    int
	stateMaxBytes      int
	store              *stateStore

	owners *ownerResolver
	inputs *inputs

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

// queueBox holds the leader's workqueues; nil while following, so informer
// events only warm the caches.
type queueBox struct {
	q    workqueue.TypedRateLimitingInterface[string] // incidents, groups, refinements, state
	pods workqueue.TypedRateLimitingInterface[string] // "pod:" items
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
}

// New returns a Watcher; call Run to start it.
func New(cs kubernetes.Interface, d Diagnoser, n Notifier, opts ...Option) *Watcher {
	w := &Watcher{
		cs: cs, diag: d, notify: n,
		cluster: "default", log: slog.Default(), workers: 4, resolveTimeout: 5 * time.Minute,
		groupWindow: DefaultGroupWindow, budget: DefaultDiagnosisBudget,
	}
	w.resetLocked()
	for _, o := range opts {
		o(w)
	}
	if w.stateName != "" {
		w.store = newStateStore(cs, w.stateNS, w.stateName, w.log)
	} else {
		w.store = newStateStore(nil, "", "", w.log)
	}
	if w.stateTTL > 0 {
		w.store.ttl = w.stateTTL
	}
	if w.stateMaxEntries > 0 {
		w.store.maxEntries = w.stateMaxEntries
	}
	if w.stateMaxBytes > 0 {
		w.store.maxBytes = w.stateMaxBytes
	}
	w.owners = newOwnerResolver(cs, 0)
	w.inputs = newInputs(cs)
	return w
}

func (w *Watcher) resetLocked() {
	w.incidents, w.ids, w.podKeys = map[string]*entry{}, map[string]string{}, map[string][]string{}
	w.groups, w.groupLocks = map[string]*group{}, map[groupKey]*sync.Mutex{}
	w.detections = map[string][]time.Time{}
}

// Indexes of the kubelet event cache: by the pod's UID (a pod's own
// events) and by "namespace/name" (a pod not in the Pending cache).
const (
	eventsByPodUID  = "podUID"
	eventsByPodName = "podName"
)

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
	var leader LeaderConfig
	if w.leader != nil {
		var err error
		if leader, err = w.leader.withDefaults(); err != nil {
			return err
		}
		if leader.Logger == slog.Default() {
			leader.Logger = w.log
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
		err := RunWithLeaderElection(ctx, w.cs, leader, w.lead)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, ErrLeadershipLost) {
			return err
		}
	}
}

// startInformers starts this run's informers; they stop with ctx.
func (w *Watcher) startInformers(ctx context.Context) error {
	namespaces := w.namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	var listers []podLister
	var indexes []cache.Indexer
	var synced []cache.InformerSynced
	for _, ns := range namespaces {
		// Only Pending pods can be failing to pull (regular and init
		// containers), so the cache holds only those; a pod leaving the
		// selection arrives as a delete.
		pf := informers.NewSharedInformerFactoryWithOptions(w.cs, 0,
			informers.WithNamespace(ns),
			informers.WithTransform(slimPod),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.FieldSelector = fields.OneTermEqualSelector("status.phase", string(corev1.PodPending)).String()
			}))
		pods := pf.Core().V1().Pods()
		if _, err := pods.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    w.enqueuePod,
			UpdateFunc: func(_, obj any) { w.enqueuePod(obj) },
			DeleteFunc: w.enqueuePod,
		}); err != nil {
			return err
		}
		listers = append(listers, podLister{namespace: ns, lister: pods.Lister()})
		synced = append(synced, pods.Informer().HasSynced)

		// The kubelet's Warning events with reason Failed carry the runtime's
		// error on clusters older than 1.32, and reveal the rare Running pod
		// whose new image fails.
		ef := informers.NewSharedInformerFactoryWithOptions(w.cs, 0,
			informers.WithNamespace(ns),
			informers.WithTransform(slimEvent),
			informers.WithTweakListOptions(func(o *metav1.ListOptions) {
				o.FieldSelector = fields.SelectorFromSet(fields.Set{
					"involvedObject.kind": "Pod", "type": corev1.EventTypeWarning, "reason": "Failed",
				}).String()
			}))
		evs := ef.Core().V1().Events().Informer()
		if err := evs.AddIndexers(cache.Indexers{eventsByPodUID: func(obj any) ([]string, error) {
			ev, ok := obj.(*corev1.Event)
			if !ok {
				return nil, nil
			}
			return []string{string(ev.InvolvedObject.UID)}, nil
		}, eventsByPodName: func(obj any) ([]string, error) {
			ev, ok := obj.(*corev1.Event)
			if !ok {
				return nil, nil
			}
			return []string{ev.InvolvedObject.Namespace + "/" + ev.InvolvedObject.Name}, nil
		}}); err != nil {
			return err
		}
		if _, err := evs.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    w.enqueueEventPod,
			UpdateFunc: func(_, obj any) { w.enqueueEventPod(obj) },
		}); err != nil {
			return err
		}
		indexes = append(indexes, evs.GetIndexer())
		synced = append(synced, evs.HasSynced)
		pf.Start(ctx.Done())
		ef.Start(ctx.Done())
	}
	w.mu.Lock()
	w.podListers, w.eventIndexes, w.synced = listers, indexes, synced
	w.mu.Unlock()
	return nil
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
		q: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "pullfix"}),
		pods: workqueue.NewTypedRateLimitingQueueWithConfig(
			workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "pullfix-pods"}),
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
			box.q.Add("incident:" + ks)
		} else {
			box.q.AddAfter("incident:"+ks, 5*time.Second)
		}
	}
	for id := range w.groups {
		box.q.Add("group:" + id)
	}
	w.mu.Unlock()
	w.leading.Store(true)
	defer w.leading.Store(false)
	w.resumeFixes(ctx) // before the workers: a resumed fix is not also "resolved" by them
	w.log.Info("leading: syncing incidents", "restored", restored, "took", time.Since(began).Round(time.Millisecond))
	if w.onLeading != nil {
		go w.onLeading(ctx)
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
}

// loadState reads the state ConfigMap, retrying with back-off: notifying
// without it could post everything again.
func (w *Watcher) loadState(ctx context.Context) bool {
	delay := 500 * time.Millisecond
	for {
		err := w.store.load(ctx)
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
			w.enqueue("pod:" + key)
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

// enqueue adds an item to the leader's queue; a follower drops it.
func (w *Watcher) enqueue(item string) {
	if b := w.queue.Load(); b != nil {
		b.of(item).Add(item)
	}
}

func (w *Watcher) enqueueAfter(item string, d time.Duration) {
	if b := w.queue.Load(); b != nil {
		b.of(item).AddAfter(item, d)
	}
}

// podWorkers sync pods: cache reads, rarely an owner read, so a few suffice.
const podWorkers = 4

// of is the queue an item belongs to: pods have their own, so that opening
// an incident never waits behind diagnoses, which hold a worker for up to
// the diagnosis budget — in a storm the next workload's first failing pod
// would otherwise queue behind the last one's registry probe.
func (b *queueBox) of(item string) workqueue.TypedRateLimitingInterface[string] {
	if strings.HasPrefix(item, "pod:") {
		return b.pods
	}
	return b.q
}

func (w *Watcher) enqueuePod(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		key := pod.Namespace + "/" + pod.Name
		if w.log.Enabled(context.Background(), slog.LevelDebug) && len(FailingContainers(pod)) > 0 {
			w.mu.Lock()
			known := w.podKeys[key] != nil
			w.mu.Unlock()
			if !known {
				w.log.Debug("pod fails to pull", "pod", key)
			}
		}
		w.enqueue("pod:" + key)
	}
}

func (w *Watcher) enqueueEventPod(obj any) {
	ev, ok := obj.(*corev1.Event)
	if !ok || !strings.HasPrefix(ev.Message, "Failed to pull image") {
		return
	}
	w.enqueue("pod:" + ev.InvolvedObject.Namespace + "/" + ev.InvolvedObject.Name)
}

func (w *Watcher) processNext(ctx context.Context, q workqueue.TypedRateLimitingInterface[string]) bool {
	item, quit := q.Get()
	if quit {
		return false
	}
	defer q.Done(item)
	var err error
	var requeue time.Duration
	switch kind, key, _ := strings.Cut(item, ":"); kind {
	case "pod":
		err = w.syncPod(ctx, key)
	case "incident":
		requeue, err = w.syncIncident(ctx, key)
	case "group":
		err = w.syncGroup(ctx, key)
	case "state":
		err = w.persist(ctx)
	case "refine":
		err = w.syncRefine(ctx, key)
	}
	switch {
	case err != nil && ctx.Err() != nil:
		// Shutting down: the next leader syncs it.
	case err != nil:
		w.metrics.Error("sync")
		w.log.Warn("sync failed; will retry", "item", item, "err", err)
		q.AddRateLimited(item)
	case requeue > 0:
		q.Forget(item)
		q.AddAfter(item, requeue)
	default:
		q.Forget(item)
	}
	return true
}

// getPod reads a pod from the Pending cache; a pod outside it is read from
// the API server only when the kubelet just reported a pull failure for it
// (a Running pod whose new image fails).
func (w *Watcher) getPod(ctx context.Context, ns, name string) (*corev1.Pod, error) {
	if pod, err := w.cachedPod(ns, name); pod != nil || err != nil {
		return pod, err
	}
	if len(w.recentPullFailures(ns, name)) == 0 {
		return nil, nil
	}
	pod, err := w.cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	slim, _ := slimPod(pod)
	return slim.(*corev1.Pod), nil
}

// cachedPod reads a pod from the Pending cache; nil when it is not there.
func (w *Watcher) cachedPod(ns, name string) (*corev1.Pod, error) {
	for _, pl := range w.podListers {
		if pl.namespace != "" && pl.namespace != ns {
			continue
		}
		pod, err := pl.lister.Pods(ns).Get(name)
		if err == nil {
			return pod, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, err
		}
	}
	return nil, nil
}

// recentPullFailures returns the kubelet's "Failed to pull image" events for
// a pod, newest first.
func (w *Watcher) recentPullFailures(ns, name string) []*corev1.Event {
	var out []*corev1.Event
	// An index lookup, not a scan: in a storm every pod that leaves the
	// Pending cache passes through here.
	for _, idx := range w.eventIndexes {
		objs, _ := idx.ByIndex(eventsByPodName, ns+"/"+name)
		for _, obj := range objs {
			if ev := obj.(*corev1.Event); strings.HasPrefix(ev.Message, "Failed to pull image") {
				out = append(out, ev)
			}
		}
	}
	sortEventsNewestFirst(out)
	return out
}

func (w *Watcher) eventsForUID(uid string) []*corev1.Event {
	var out []*corev1.Event
	for _, idx := range w.eventIndexes {
		objs, _ := idx.ByIndex(eventsByPodUID, uid)
		for _, o := range objs {
			if ev := o.(*corev1.Event); strings.HasPrefix(ev.Message, "Failed to pull image") {
				out = append(out, ev)
			}
		}
	}
	sortEventsNewestFirst(out)
	return out
}

func sortEventsNewestFirst(evs []*corev1.Event) {
	sort.SliceStable(evs, func(i, j int) bool { return eventTime(evs[i]).After(eventTime(evs[j])) })
}

func eventTime(ev *corev1.Event) time.Time {
	if !ev.LastTimestamp.IsZero() {
		return ev.LastTimestamp.Time
	}
	if !ev.EventTime.IsZero() {
		return ev.EventTime.Time
	}
	return ev.FirstTimestamp.Time
}

// syncPod recomputes which incidents a pod belongs to.
func (w *Watcher) syncPod(ctx context.Context, podKey string) error {
	ns, name, _ := strings.Cut(podKey, "/")
	pod, err := w.getPod(ctx, ns, name)
	if err != nil {
		return err
	}
	var keys []string
	if pod != nil && pod.DeletionTimestamp == nil {
		failing := FailingContainers(pod)
		if len(failing) > 0 {
			if cached, _ := w.cachedPod(ns, name); cached == nil {
				// Outside the Pending cache (a Running pod: an ephemeral
				// container, an in-place image change), nothing tells us
				// when it is fixed or deleted; look again while it fails.
				w.enqueueAfter("pod:"+podKey, outsideResync)
			}
			began := time.Now()
			wl, err := w.owners.Resolve(ctx, pod)
			if err != nil {
				return err
			}
			for _, fc := range failing {
				k := Key{Cluster: w.cluster, Namespace: ns, Workload: sourceWorkload(wl, pod, fc), Container: fc.Name, Image: fc.Image}
				keys = append(keys, k.String())
				if w.ensureIncident(k, podKey) {
					w.log.Debug("incident opened", "key", k.String(), "pod", podKey, "owner", time.Since(began).Round(time.Millisecond))
				}
			}
		}
	}
	w.mu.Lock()
	old := w.podKeys[podKey]
	if len(keys) == 0 {
		delete(w.podKeys, podKey)
	} else {
		w.podKeys[podKey] = keys
	}
	affected := map[string]bool{}
	for _, k := range old {
		affected[k] = true
	}
	for _, k := range keys {
		affected[k] = true
	}
	for k := range affected {
		e := w.incidents[k]
		if e == nil {
			continue
		}
		if slices.Contains(keys, k) {
			e.pods[podKey] = struct{}{}
		} else {
			delete(e.pods, podKey)
		}
	}
	w.mu.Unlock()
	for k := range affected {
		w.enqueue("incident:" + k)
	}
	return nil
}

// outsideResync is how often a failing pod outside the Pending cache is
// read again, so its fix or deletion is observed.
const outsideResync = 15 * time.Second

// sourceWorkload is the workload of an incident: the pod's owner, except
// for an ephemeral container, which belongs to this one pod (`kubectl
// debug` added it there; no controller knows of it).
func sourceWorkload(owner Workload, pod *corev1.Pod, fc FailingContainer) Workload {
	if fc.Ephemeral {
		return Workload{Kind: "Pod", Name: pod.Name}
	}
	return owner
}

// ensureIncident adds the pod to the key's incident, creating it — or
// bringing back a persisted one, so a dismissed key stays quiet — when
// there is none.
//
// It reports whether it opened a new incident.
func (w *Watcher) ensureIncident(k Key, podKey string) (opened bool) {
	w.mu.Lock()
	ks := k.String()
	e := w.incidents[ks]
	if e == nil {
		id := IncidentID(k)
		if r, ok := w.store.get(id); ok && r.Key == k && r.State != StateResolved {
			e = w.addEntryLocked(r.incident())
		} else {
			now := time.Now()
			e = w.addEntryLocked(Incident{ID: id, Key: k, State: StateOpen, Opened: now, Changed: now})
			w.noteDetectionLocked(k.Image, now)
			opened = true
		}
	}
	e.pods[podKey] = struct{}{}
	w.mu.Unlock()
	return opened
}

// addEntryLocked tracks inc as an active incident; a persisted state counts
// as already reported.
func (w *Watcher) addEntryLocked(inc Incident) *entry {
	e := &entry{Incident: inc, pods: map[string]struct{}{}, reported: inc.State}
	ks := inc.Key.String()
	w.incidents[ks] = e
	w.ids[inc.ID] = ks
	return e
}

// restore brings back the persisted incidents that are not closed, and
// the storm groups they belong to, before the caches are replayed. It
// returns how many incidents it restored.
func (w *Watcher) restore() int {
	recs := w.store.all()
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, r := range recs {
		if r.Group != "" {
			w.restoreGroupLocked(r)
		}
		if r.State.closed() {
			continue
		}
		w.addEntryLocked(r.incident())
		n++
	}
	for _, g := range w.groups {
		g.reported = w.groupFingerprintLocked(g)
	}
	return n
}

// Incidents returns a snapshot of the active incidents (with failing pods,
// or notified and awaiting resolution), sorted by key.
func (w *Watcher) Incidents() []Incident {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Incident, 0, len(w.incidents))
	for _, e := range w.incidents {
		out = append(out, e.snapshot())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key.String() < out[j].Key.String() })
	return out
}

func (e *entry) snapshot() Incident {
	inc := e.Incident
	inc.Pods = make([]string, 0, len(e.pods))
	for p := range e.pods {
		_, name, _ := strings.Cut(p, "/")
		inc.Pods = append(inc.Pods, name)
	}
	sort.Strings(inc.Pods)
	return inc
}

// drop forgets an active incident whose pods are gone; its record stays.
func (w *Watcher) drop(ks string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e := w.incidents[ks]; e != nil && len(e.pods) == 0 {
		delete(w.incidents, ks)
		delete(w.ids, e.ID)
	}
}

// persist records incidents and writes the state (a no-op in memory).
func (w *Watcher) persist(ctx context.Context, incs ...Incident) error {
	for _, inc := range incs {
		w.store.put(recordOf(inc))
	}
	w.mu.Lock()
	active := make(map[string]bool, len(w.ids))
	open := 0
	for id, ks := range w.ids {
		active[id] = true
		if st := w.incidents[ks].State; st == StateOpen || st == StateNotified || st == StateFixing {
			open++
		}
	}
	w.mu.Unlock()
	w.metrics.setOpen(open)
	if err := w.store.flush(ctx, active); err != nil {
		w.metrics.Error("state")
		return err
	}
	return nil
}

// diagnoseIncident builds the target from one of the incident's pods and runs
// the diagnoser with that pod's own pull credentials.
func (w *Watcher) diagnoseIncident(ctx context.Context, inc Incident) (diagnose.Diagnosis, error) {
	t, kc, pod, err := w.targetOf(ctx, inc)
	if err != nil {
		return diagnose.Diagnosis{}, err
	}
	d := w.diag.Diagnose(ctx, t, kc)
	adaptToSource(inc.Key, pod, &d)
	return d, nil
}

// targetOf builds the diagnosis target and keychain from one of the
// incident's pods, and returns that pod.
func (w *Watcher) targetOf(ctx context.Context, inc Incident) (diagnose.Target, authn.Keychain, *corev1.Pod, error) {
	pod, err := w.getPod(ctx, inc.Key.Namespace, inc.Pods[0])
	if err != nil {
		return diagnose.Target{}, nil, nil, err
	}
	if pod == nil {
		return diagnose.Target{}, nil, nil, errPodVanished
	}
	t, kc := w.inputs.target(ctx, w.log, inc.Key, pod)
	w.kubeletWords(&t, pod)
	return t, kc, pod, nil
}

var errPodVanished = errors.New("pod vanished before diagnosis")

// quickTarget is the part of the target the caches hold — the image and
// the kubelet's words — for a first message that sends no request.
func (w *Watcher) quickTarget(inc Incident) (diagnose.Target, error) {
	k := inc.Key
	pod, err := w.cachedPod(k.Namespace, inc.Pods[0])
	if err != nil {
		return diagnose.Target{}, err
	}
	if pod == nil {
		// A Running pod whose new image fails is outside the Pending
		// cache; its events say what the kubelet said.
		t := diagnose.Target{Cluster: k.Cluster, Namespace: k.Namespace, Kind: k.Kind, Name: k.Name, Container: k.Container, Image: k.Image}
		if ev := eventFor(k, w.recentPullFailures(k.Namespace, inc.Pods[0])); ev != nil {
			t.Reason, t.Message = ev.Reason, ev.Message
			return t, nil
		}
		return t, errPodVanished
	}
	t := podTarget(k, pod)
	w.kubeletWords(&t, pod)
	return t, nil
}

// kubeletWords fills in the kubelet's event when the status holds no
// error text (a bare back-off line).
func (w *Watcher) kubeletWords(t *diagnose.Target, pod *corev1.Pod) {
	if t.Message == "" || isBareBackOff(t.Message) {
		if ev := eventFor(Key{Container: t.Container, Image: t.Image}, w.eventsForUID(string(pod.UID))); ev != nil {
			t.Reason, t.Message = ev.Reason, ev.Message
		}
	}
}

// isBareBackOff reports a pre-1.32 back-off message that names no error.
func isBareBackOff(msg string) bool {
	return strings.HasPrefix(msg, "Back-off pulling image") && !strings.Contains(msg, "ErrImagePull:")
}
