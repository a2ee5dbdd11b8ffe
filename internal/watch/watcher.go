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
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
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
// implement it. Calls come from one worker at a time per incident.
type Notifier interface {
	// Opened is called once per incident, with its diagnosis.
	Opened(ctx context.Context, inc Incident) error
	// Resolved is called when the incident's pods run and are ready.
	Resolved(ctx context.Context, inc Incident) error
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

// Watcher watches pods that cannot pull their images and keeps one incident
// per (workload, container, image).
type Watcher struct {
	cs             kubernetes.Interface
	diag           Diagnoser
	notify         Notifier
	cluster        string
	namespaces     []string
	log            *slog.Logger
	workers        int
	resolveTimeout time.Duration

	queue        workqueue.TypedRateLimitingInterface[string]
	owners       *ownerResolver
	podListers   []podLister
	eventIndexes []cache.Indexer
	inputs       *inputs

	mu        sync.Mutex
	incidents map[string]*entry   // Key.String() → entry
	podKeys   map[string][]string // "ns/pod" → incident keys it belongs to
	synced    []cache.InformerSynced
}

type podLister struct {
	namespace string // "" for all
	lister    listerscorev1.PodLister
}

type entry struct {
	Incident
	pods       map[string]struct{}
	emptySince time.Time
}

// New returns a Watcher; call Run to start it.
func New(cs kubernetes.Interface, d Diagnoser, n Notifier, opts ...Option) *Watcher {
	w := &Watcher{
		cs: cs, diag: d, notify: n,
		cluster: "default", log: slog.Default(), workers: 4, resolveTimeout: 5 * time.Minute,
		incidents: map[string]*entry{}, podKeys: map[string][]string{},
	}
	for _, o := range opts {
		o(w)
	}
	w.owners = newOwnerResolver(cs, 0)
	w.inputs = newInputs(cs)
	w.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "pullfix"})
	return w
}

const eventsByPodUID = "podUID"

// Run starts the informers and workers and blocks until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	defer utilruntime.HandleCrash()
	defer w.queue.ShutDown()

	namespaces := w.namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
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
		w.podListers = append(w.podListers, podLister{namespace: ns, lister: pods.Lister()})
		w.synced = append(w.synced, pods.Informer().HasSynced)

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
		}}); err != nil {
			return err
		}
		if _, err := evs.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    w.enqueueEventPod,
			UpdateFunc: func(_, obj any) { w.enqueueEventPod(obj) },
		}); err != nil {
			return err
		}
		w.eventIndexes = append(w.eventIndexes, evs.GetIndexer())
		w.synced = append(w.synced, evs.HasSynced)
		pf.Start(ctx.Done())
		ef.Start(ctx.Done())
	}
	if !cache.WaitForCacheSync(ctx.Done(), w.synced...) {
		// Only a cancelled context stops the wait: that is a shutdown, not an error.
		return nil
	}
	w.log.Info("watching pods that cannot pull their images", "cluster", w.cluster, "namespaces", strings.Join(w.namespaces, ","))
	var wg sync.WaitGroup
	for range w.workers {
		wg.Go(func() {
			for w.processNext(ctx) {
			}
		})
	}
	<-ctx.Done()
	w.queue.ShutDown()
	wg.Wait()
	return nil
}

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

func (w *Watcher) enqueuePod(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		w.queue.Add("pod:" + pod.Namespace + "/" + pod.Name)
	}
}

func (w *Watcher) enqueueEventPod(obj any) {
	ev, ok := obj.(*corev1.Event)
	if !ok || !strings.HasPrefix(ev.Message, "Failed to pull image") {
		return
	}
	w.queue.Add("pod:" + ev.InvolvedObject.Namespace + "/" + ev.InvolvedObject.Name)
}

func (w *Watcher) processNext(ctx context.Context) bool {
	item, quit := w.queue.Get()
	if quit {
		return false
	}
	defer w.queue.Done(item)
	var err error
	var requeue time.Duration
	switch kind, key, _ := strings.Cut(item, ":"); kind {
	case "pod":
		err = w.syncPod(ctx, key)
	case "incident":
		requeue, err = w.syncIncident(ctx, key)
	}
	switch {
	case err != nil:
		w.log.Warn("sync failed; will retry", "item", item, "err", err)
		w.queue.AddRateLimited(item)
	case requeue > 0:
		w.queue.Forget(item)
		w.queue.AddAfter(item, requeue)
	default:
		w.queue.Forget(item)
	}
	return true
}

// getPod reads a pod from the Pending cache; a pod outside it is read from
// the API server only when the kubelet just reported a pull failure for it
// (a Running pod whose new image fails).
func (w *Watcher) getPod(ctx context.Context, ns, name string) (*corev1.Pod, error) {
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

// recentPullFailures returns the kubelet's "Failed to pull image" events for
// a pod, newest first.
func (w *Watcher) recentPullFailures(ns, name string) []*corev1.Event {
	var out []*corev1.Event
	for _, idx := range w.eventIndexes {
		for _, obj := range idx.List() {
			ev := obj.(*corev1.Event)
			if ev.InvolvedObject.Namespace == ns && ev.InvolvedObject.Name == name && strings.HasPrefix(ev.Message, "Failed to pull image") {
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
			wl, err := w.owners.Resolve(ctx, pod)
			if err != nil {
				return err
			}
			for _, fc := range failing {
				keys = append(keys, Key{Cluster: w.cluster, Namespace: ns, Workload: wl, Container: fc.Name, Image: fc.Image}.String())
				w.ensureIncident(Key{Cluster: w.cluster, Namespace: ns, Workload: wl, Container: fc.Name, Image: fc.Image}, podKey)
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
		if containsString(keys, k) {
			e.pods[podKey] = struct{}{}
		} else {
			delete(e.pods, podKey)
		}
	}
	w.mu.Unlock()
	for k := range affected {
		w.queue.Add("incident:" + k)
	}
	return nil
}

func containsString(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func (w *Watcher) ensureIncident(k Key, podKey string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ks := k.String()
	e := w.incidents[ks]
	if e == nil {
		e = &entry{Incident: Incident{Key: k, State: StateOpen, Opened: time.Now()}, pods: map[string]struct{}{}}
		w.incidents[ks] = e
	}
	e.pods[podKey] = struct{}{}
}

// Incidents returns a snapshot of the open incidents, sorted by key.
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

// syncIncident diagnoses and reports a new incident, or reports it resolved
// once its pods no longer fail and the workload is ready.
func (w *Watcher) syncIncident(ctx context.Context, ks string) (time.Duration, error) {
	w.mu.Lock()
	e := w.incidents[ks]
	if e == nil {
		w.mu.Unlock()
		return 0, nil
	}
	inc := e.snapshot()
	if len(e.pods) > 0 {
		e.emptySince = time.Time{}
	} else if e.emptySince.IsZero() {
		e.emptySince = time.Now()
	}
	emptySince := e.emptySince
	w.mu.Unlock()

	if len(inc.Pods) == 0 {
		if inc.State == StateOpen {
			w.drop(ks)
			return 0, nil
		}
		ready, err := w.inputs.workloadReady(ctx, inc.Key)
		if err != nil {
			return 0, err
		}
		if !ready && time.Since(emptySince) < w.resolveTimeout {
			return 2 * time.Second, nil
		}
		inc.State = StateResolved
		if err := w.notify.Resolved(ctx, inc); err != nil {
			return 0, fmt.Errorf("notify resolved %s: %w", ks, err)
		}
		w.drop(ks)
		return 0, nil
	}
	if inc.State != StateOpen {
		return 0, nil
	}
	d, err := w.diagnoseIncident(ctx, inc)
	if err != nil {
		return 0, err
	}
	inc.Diagnosis = &d
	inc.State = StateNotified
	if err := w.notify.Opened(ctx, inc); err != nil {
		return 0, fmt.Errorf("notify %s: %w", ks, err)
	}
	w.mu.Lock()
	if e := w.incidents[ks]; e != nil {
		e.State = StateNotified
		e.Diagnosis = &d
	}
	w.mu.Unlock()
	return 0, nil
}

func (w *Watcher) drop(ks string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e := w.incidents[ks]; e != nil && len(e.pods) == 0 {
		delete(w.incidents, ks)
	}
}

// diagnoseIncident builds the target from one of the incident's pods and runs
// the diagnoser with that pod's own pull credentials.
func (w *Watcher) diagnoseIncident(ctx context.Context, inc Incident) (diagnose.Diagnosis, error) {
	pod, err := w.getPod(ctx, inc.Key.Namespace, inc.Pods[0])
	if err != nil {
		return diagnose.Diagnosis{}, err
	}
	if pod == nil {
		return diagnose.Diagnosis{}, errors.New("pod vanished before diagnosis")
	}
	t, kc := w.inputs.target(ctx, w.log, inc.Key, pod)
	if t.Message == "" || isBareBackOff(t.Message) {
		if evs := w.eventsForUID(string(pod.UID)); len(evs) > 0 {
			t.Reason, t.Message = evs[0].Reason, evs[0].Message
		}
	}
	return w.diag.Diagnose(ctx, t, kc), nil
}

// isBareBackOff reports a pre-1.32 back-off message that names no error.
func isBareBackOff(msg string) bool {
	return strings.HasPrefix(msg, "Back-off pulling image") && !strings.Contains(msg, "ErrImagePull:")
}
