package watch

import (
	"context"
	"log/slog"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/pullfix/pullfix/internal/watch/workload"
)

// Indexes of the kubelet event cache: by the pod's UID (a pod's own
// events) and by "namespace/name" (a pod not in the Pending cache).
const (
	eventsByPodUID  = "podUID"
	eventsByPodName = "podName"
)

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

func (w *Watcher) enqueuePod(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if pod, ok := obj.(*corev1.Pod); ok {
		key := pod.Namespace + "/" + pod.Name
		if w.log.Enabled(context.Background(), slog.LevelDebug) && len(workload.FailingContainers(pod)) > 0 {
			w.mu.Lock()
			known := w.podKeys[key] != nil
			w.mu.Unlock()
			if !known {
				w.log.Debug("pod fails to pull", "pod", key)
			}
		}
		w.enqueue(item{kind: itemPod, key: key})
	}
}

func (w *Watcher) enqueueEventPod(obj any) {
	ev, ok := obj.(*corev1.Event)
	if !ok || !strings.HasPrefix(ev.Message, "Failed to pull image") {
		return
	}
	w.enqueue(item{kind: itemPod, key: ev.InvolvedObject.Namespace + "/" + ev.InvolvedObject.Name})
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
