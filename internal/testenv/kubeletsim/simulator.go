package kubeletsim

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/client-go/util/workqueue"
)

// StatusWrite is one successful pod status write.
type StatusWrite struct {
	Pod types.NamespacedName
	// Reason is what the pod now shows: the first waiting reason of its
	// init or regular containers, else its phase.
	Reason string
	// Sent is when the write left the simulated kubelet, Written when the
	// API server had accepted it: a watcher can see it from then on. In a
	// storm the API server takes its time between the two.
	Sent, Written time.Time
}

// StatusWriteFunc observes a successful pod status write.
type StatusWriteFunc func(StatusWrite)

// Simulator is a set of simulated kubelets sharing one client, one worker
// pool and one workqueue.
type Simulator struct {
	cs  kubernetes.Interface
	cfg *config
	log *slog.Logger

	nodes  []*node
	byName map[string]*node

	unscheduled cache.SharedIndexInformer
	scheduler   record.EventBroadcaster
	schedRec    record.EventRecorder

	queue   workqueue.TypedRateLimitingInterface[podKey]
	backoff *flowcontrol.Backoff

	mu       sync.RWMutex
	routes   map[string]string
	onWrite  StatusWriteFunc
	pods     map[podKey]*podRuntime
	rr       int
	started  bool
	stop     context.CancelFunc
	done     sync.WaitGroup
	stopOnce sync.Once
}

// podKey names a pod and the node whose informer holds it ("" for an
// unscheduled pod waiting to be bound).
type podKey struct {
	node      string
	namespace string
	name      string
}

func (k podKey) nn() types.NamespacedName {
	return types.NamespacedName{Namespace: k.namespace, Name: k.name}
}

// New returns a simulator using cs. Give it a client with a high client-side
// rate limit (see NewForConfig) when it drives many pods.
func New(cs kubernetes.Interface, opts ...Option) *Simulator {
	cfg := newConfig(opts)
	s := &Simulator{
		cs:      cs,
		cfg:     cfg,
		log:     cfg.logger.With("component", "kubeletsim"),
		byName:  map[string]*node{},
		routes:  map[string]string{},
		pods:    map[podKey]*podRuntime{},
		backoff: flowcontrol.NewBackOff(cfg.backoffInitial, cfg.backoffMax),
	}
	for i, name := range cfg.nodeNames {
		n := newNode(i, name, cfg)
		s.nodes = append(s.nodes, n)
		s.byName[name] = n
		for _, ref := range cfg.present {
			s.preload(n, ref)
		}
	}
	return s
}

// NewForConfig copies cfg, raises its client-side rate limit to QPS 500 and
// Burst 1000 (a client-go default of 5/10 cannot drive thousands of pods) and
// returns a simulator using it.
func NewForConfig(cfg *rest.Config, opts ...Option) (*Simulator, error) {
	c := rest.CopyConfig(cfg)
	c.QPS, c.Burst = 500, 1000
	c.RateLimiter = nil
	if c.UserAgent == "" {
		c.UserAgent = "kubelet/" + DefaultKubeletVersion + " (kubeletsim)"
	}
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		return nil, err
	}
	return New(cs, opts...), nil
}

// Nodes returns the simulated nodes' names.
func (s *Simulator) Nodes() []string {
	out := make([]string, len(s.nodes))
	for i, n := range s.nodes {
		out[i] = n.name
	}
	return out
}

// OnStatusWrite sets a hook called after every successful pod status write
// (for a benchmark: timestamp the first failing status). It is called from
// the workers, concurrently, and must not block. Set it before Start.
func (s *Simulator) OnStatusWrite(fn StatusWriteFunc) {
	s.mu.Lock()
	s.onWrite = fn
	s.mu.Unlock()
}

// Preload marks an image as present on every node, as if pulled before.
func (s *Simulator) Preload(ref string) {
	for _, n := range s.nodes {
		s.preload(n, ref)
	}
}

func (s *Simulator) preload(n *node, ref string) {
	r, err := parseImage(ref)
	if err != nil {
		return
	}
	n.storeImage(r.full, pulled{imageID: r.repoDigest(fakeDigest(r.full)), name: r.name()}, "")
}

// Run starts the simulator and blocks until ctx ends, then stops it.
func (s *Simulator) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	s.Stop()
	return nil
}

// Start registers the nodes, starts the informers, waits for their caches
// and starts the workers and the heartbeat; it returns once the simulator is
// serving. Stop (or the end of ctx) stops it.
func (s *Simulator) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("kubeletsim: already started")
	}
	s.started = true
	s.mu.Unlock()

	ctx, cancel := context.WithCancel(ctx)
	s.stop = cancel
	s.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[podKey](s.cfg.backoffInitial/4, s.cfg.backoffMax),
		workqueue.TypedRateLimitingQueueConfig[podKey]{Name: "kubeletsim"},
	)

	for _, n := range s.nodes {
		if err := s.register(ctx, n); err != nil {
			cancel()
			return err
		}
	}

	s.scheduler = s.newBroadcaster(ctx)
	s.schedRec = s.recorder(s.scheduler.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "default-scheduler"}))
	s.unscheduled = s.podInformer(fields.OneTermEqualSelector("spec.nodeName", ""))
	s.addHandlers(s.unscheduled, "")
	syncs := []cache.InformerSynced{s.unscheduled.HasSynced}
	for _, n := range s.nodes {
		n.broadcaster = s.newBroadcaster(ctx)
		n.recorder = s.recorder(n.broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "kubelet", Host: n.name}))
		n.informer = s.podInformer(fields.OneTermEqualSelector("spec.nodeName", n.name))
		s.addHandlers(n.informer, n.name)
		syncs = append(syncs, n.informer.HasSynced)
	}
	s.goFn(func() { s.unscheduled.Run(ctx.Done()) })
	for _, n := range s.nodes {
		s.goFn(func() { n.informer.Run(ctx.Done()) })
	}
	if !cache.WaitForCacheSync(ctx.Done(), syncs...) {
		s.Stop()
		return fmt.Errorf("kubeletsim: informers did not sync: %w", ctx.Err())
	}
	for range s.cfg.workers {
		s.goFn(func() { wait.UntilWithContext(ctx, s.runWorker, time.Second) })
	}
	s.goFn(func() { s.heartbeat(ctx) })
	s.goFn(func() {
		<-ctx.Done()
		s.queue.ShutDown()
	})
	// The end of ctx stops everything, Stop or not; broadcasters are shut
	// down only after the workers, so no event is recorded into a stopped one.
	go func() {
		<-ctx.Done()
		s.Stop()
	}()
	s.log.Info("started", "nodes", len(s.nodes), "workers", s.cfg.workers, "namespace", s.cfg.namespace)
	return nil
}

// Stop stops the workers, informers and event broadcasters and waits for
// them (events already recorded are flushed best-effort). Nodes and Leases are left in place, as a stopped kubelet leaves them.
func (s *Simulator) Stop() {
	s.stopOnce.Do(func() {
		if s.stop == nil {
			return
		}
		s.stop()
		s.done.Wait()
		if s.scheduler != nil {
			s.scheduler.Shutdown()
		}
		for _, n := range s.nodes {
			if n.broadcaster != nil {
				n.broadcaster.Shutdown()
			}
		}
	})
}

func (s *Simulator) goFn(fn func()) {
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		fn()
	}()
}

// newBroadcaster is client-go's event broadcaster, as the kubelet starts it,
// with the correlator's time constants compressed like the back-off: the
// spam filter refills one event per 5 minutes in a kubelet, the aggregator
// looks back 10 minutes.
func (s *Simulator) newBroadcaster(ctx context.Context) record.EventBroadcaster {
	k := s.cfg.compression()
	interval := int(600 / k)
	if interval < 1 {
		interval = 1
	}
	b := record.NewBroadcaster(record.WithContext(context.WithoutCancel(ctx)), record.WithCorrelatorOptions(record.CorrelatorOptions{
		QPS:                  float32(k / 300),
		BurstSize:            25,
		MaxIntervalInSeconds: interval,
	}))
	b.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.cs.CoreV1().Events("")})
	return b
}

func (s *Simulator) podInformer(sel fields.Selector) cache.SharedIndexInformer {
	ns := s.cfg.namespace
	lw := &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.FieldSelector = sel.String()
			return s.cs.CoreV1().Pods(ns).List(ctx, o)
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.FieldSelector = sel.String()
			return s.cs.CoreV1().Pods(ns).Watch(ctx, o)
		},
	}
	return cache.NewSharedIndexInformer(lw, &corev1.Pod{}, 0, cache.Indexers{})
}

// addHandlers enqueues a pod when it appears, disappears, or changes in a
// way a kubelet acts on (spec, deletion, identity). Status-only updates —
// most of them our own writes — are ignored, as the kubelet's pod config
// ignores them.
func (s *Simulator) addHandlers(inf cache.SharedIndexInformer, nodeName string) {
	enqueue := func(obj any) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = d.Obj
		}
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return
		}
		s.queue.Add(podKey{node: nodeName, namespace: p.Namespace, name: p.Name})
	}
	_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue,
		UpdateFunc: func(oldObj, newObj any) {
			o, n := oldObj.(*corev1.Pod), newObj.(*corev1.Pod)
			if o.UID != n.UID || !equality.Semantic.DeepEqual(o.Spec, n.Spec) ||
				!equality.Semantic.DeepEqual(o.DeletionTimestamp, n.DeletionTimestamp) {
				enqueue(newObj)
			}
		},
		DeleteFunc: enqueue,
	})
}

func (s *Simulator) runWorker(ctx context.Context) {
	for s.processNext(ctx) {
	}
}

func (s *Simulator) processNext(ctx context.Context) bool {
	key, quit := s.queue.Get()
	if quit {
		return false
	}
	defer s.queue.Done(key)
	var (
		requeue time.Duration
		err     error
	)
	if key.node == "" {
		err = s.bindOne(ctx, key)
	} else {
		requeue, err = s.syncPod(ctx, key)
	}
	switch {
	case err != nil && ctx.Err() == nil:
		s.log.Debug("sync failed, retrying", "pod", key.nn(), "node", key.node, "err", err)
		s.queue.AddRateLimited(key)
	case requeue > 0:
		s.queue.Forget(key)
		s.queue.AddAfter(key, requeue)
	default:
		s.queue.Forget(key)
	}
	return true
}

func (s *Simulator) statusHook() StatusWriteFunc {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.onWrite
}

// recorder applies WithoutNormalEvents.
func (s *Simulator) recorder(r record.EventRecorder) record.EventRecorder {
	if s.cfg.noNormalEvents {
		return warningsOnly{r}
	}
	return r
}

// warningsOnly records only Warning events.
type warningsOnly struct{ record.EventRecorder }

func (w warningsOnly) Event(obj runtime.Object, eventtype, reason, message string) {
	if eventtype != corev1.EventTypeNormal {
		w.EventRecorder.Event(obj, eventtype, reason, message)
	}
}

func (w warningsOnly) Eventf(obj runtime.Object, eventtype, reason, format string, args ...any) {
	if eventtype != corev1.EventTypeNormal {
		w.EventRecorder.Eventf(obj, eventtype, reason, format, args...)
	}
}

func (w warningsOnly) AnnotatedEventf(obj runtime.Object, annotations map[string]string, eventtype, reason, format string, args ...any) {
	if eventtype != corev1.EventTypeNormal {
		w.EventRecorder.AnnotatedEventf(obj, annotations, eventtype, reason, format, args...)
	}
}
