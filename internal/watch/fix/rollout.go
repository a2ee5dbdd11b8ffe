package fix

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/watch/workload"
)

// ErrRolloutDeadline is returned by FollowRollout when the workload is not
// ready by the Patcher's rollout deadline; the status returned with it says
// what is still failing.
var ErrRolloutDeadline = errors.New("rollout not ready by the deadline")

// PodFailure is a pod of the workload whose container is not running, and
// what the kubelet says about it.
type PodFailure struct {
	Pod     string `json:"pod"`
	Image   string `json:"image"`
	Reason  string `json:"reason"`            // e.g. ImagePullBackOff
	Message string `json:"message,omitempty"` // the kubelet's message
	// Cause is the offline classification of the message (design §3), so
	// the report can say "still failing: Tag not found" without a probe.
	Cause diagnose.Cause `json:"cause,omitempty"`
}

// RolloutStatus is a snapshot of a rollout of one container of a workload.
type RolloutStatus struct {
	Namespace string   `json:"namespace"`
	Workload  Workload `json:"workload"`
	Container string   `json:"container"`
	// Image is the container's image in the workload's template: what the
	// rollout is rolling out.
	Image string `json:"image"`
	// Desired, Updated, ReadyPods and Available count pods (replicas, or
	// scheduled daemon pods); for a Pod, 1 when it counts.
	Desired   int32 `json:"desired"`
	Updated   int32 `json:"updated"`
	ReadyPods int32 `json:"readyPods"`
	Available int32 `json:"available"`
	// Ready is true when the controller has observed the change and every
	// pod of the workload runs Image and is ready.
	Ready bool `json:"ready"`
	// Summary is one line for people: "ui-new 1/1 Running on
	// retail-store-sample-ui:1.2.1", "ui-new: 1/3 updated, 0/3 ready".
	Summary string `json:"summary"`
	// Failing are the pods whose container waits, with the kubelet's reason.
	Failing []PodFailure `json:"failing,omitempty"`
	// Elapsed is the time since FollowRollout began.
	Elapsed time.Duration `json:"elapsed"`
}

// FollowRollout watches the workload of key and its pods (informers: a
// list, then a watch from its resourceVersion, re-listing after a broken
// watch) until the container's pods run the template's image and are ready,
// or the Patcher's deadline passes. progress, when not nil, is called with
// each status that differs from the last one reported. The final status is
// returned with a nil error when ready, with an error wrapping
// ErrRolloutDeadline at the deadline (its Failing says e.g. still
// ImagePullBackOff), or with ctx's error.
//
// A CronJob has nothing to roll out: the next Job it creates uses the new
// template, so it is reported ready at once, saying so.
func (p *Patcher) FollowRollout(ctx context.Context, key Key, progress func(RolloutStatus)) (RolloutStatus, error) {
	start := time.Now()
	st := RolloutStatus{Namespace: key.Namespace, Workload: key.Workload, Container: key.Container}
	if err := NotPatchableSource(key); err != nil {
		return st, err
	}
	lw, err := p.read(ctx, key.Namespace, key.Workload)
	if err != nil {
		return st, err
	}
	c, ok := lw.container(key.Container)
	if !ok {
		return st, fmt.Errorf("%s in %s has no container %q", key.Workload, key.Namespace, key.Container)
	}
	st.Image = c.image
	if key.Kind == "CronJob" {
		st.Ready = true
		st.Summary = fmt.Sprintf("%s: the next Job it creates runs %s (Jobs created before keep their image)", key.Name, shortImage(c.image))
		if progress != nil {
			progress(st)
		}
		return st, nil
	}

	// The informers and the deadline watcher are this call's: they stop
	// when it returns (cancel runs first, then the wait).
	var wg sync.WaitGroup
	defer wg.Wait()
	dctx, cancel := context.WithTimeout(ctx, p.deadline)
	defer cancel()
	f, err := p.newFollower(lw, key.Container)
	if err != nil {
		return st, err
	}
	changed := make(chan struct{}, 1)
	notify := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}
	// A watch the bot may not make (RBAC) would otherwise be retried
	// silently until the deadline: stop at once, saying what is missing.
	var (
		once      sync.Once
		deniedErr error
	)
	syncStop := make(chan struct{})
	stopSync := func(err error) { once.Do(func() { deniedErr = err; close(syncStop) }) }
	wg.Go(func() { <-dctx.Done(); stopSync(nil) })
	var synced []cache.InformerSynced
	for _, inf := range f.informers {
		if _, err := inf.AddEventHandler(handler); err != nil {
			return st, fmt.Errorf("follow %s: %w", key.Workload, err)
		}
		if err := inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
			if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
				stopSync(err)
				return
			}
			cache.DefaultWatchErrorHandler(ctx, r, err)
		}); err != nil {
			return st, fmt.Errorf("follow %s: %w", key.Workload, err)
		}
		wg.Go(func() { inf.RunWithContext(dctx) })
		synced = append(synced, inf.HasSynced)
	}
	if !cache.WaitForCacheSync(syncStop, synced...) {
		st.Elapsed = time.Since(start)
		if deniedErr != nil {
			return st, fmt.Errorf("follow %s in %s: the bot may not list and watch it and its pods: %w", key.Workload, key.Namespace, deniedErr)
		}
		return st, p.deadlineErr(ctx, key, st)
	}

	var last string
	for {
		st = f.status()
		st.Elapsed = time.Since(start)
		if sig := st.signature(); sig != last {
			last = sig
			if progress != nil {
				progress(st)
			}
		}
		if st.Ready {
			return st, nil
		}
		select {
		case <-changed:
		case <-dctx.Done():
			st = f.status()
			st.Elapsed = time.Since(start)
			st.Summary = f.deadlineSummary(st, p.deadline)
			if progress != nil {
				progress(st)
			}
			return st, p.deadlineErr(ctx, key, st)
		}
	}
}

func (p *Patcher) deadlineErr(ctx context.Context, key Key, st RolloutStatus) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("%s in %s: %w (%s): %s", key.Workload, key.Namespace, ErrRolloutDeadline, p.deadline, st.Summary)
}

// signature is what makes a status worth reporting: the summary carries
// the counts and the failing reasons; which pod fails does not matter to
// people.
func (s RolloutStatus) signature() string { return s.Summary }

// follower holds the informers of one rollout and judges it.
type follower struct {
	wl        Workload
	kind      *workload.Kind
	ns        string
	container string
	workload  cache.SharedIndexInformer // nil for a Pod
	pods      cache.SharedIndexInformer
	informers []cache.SharedIndexInformer
	// owns says whether a pod belongs to the workload (a selector may
	// match other owners' pods).
	owns func(*corev1.Pod) bool
}

func (p *Patcher) newFollower(lw *liveWorkload, container string) (*follower, error) {
	ns, name := lw.obj.GetNamespace(), lw.obj.GetName()
	k := lw.kind
	f := &follower{wl: lw.wl, kind: k, ns: ns, container: container}
	byName := fields.OneTermEqualSelector("metadata.name", name).String()
	podOpts := func(lo *metav1.ListOptions) { lo.FieldSelector = byName }
	switch {
	case k.Name == "Pod":
	case k.HasRollout() && k.Listable():
		example := lw.obj.DeepCopyObject()
		f.workload = cache.NewSharedIndexInformer(&cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, lo metav1.ListOptions) (runtime.Object, error) {
				lo.FieldSelector = byName
				return k.List(ctx, p.cs, ns, lo)
			},
			WatchFuncWithContext: func(ctx context.Context, lo metav1.ListOptions) (watch.Interface, error) {
				lo.FieldSelector = byName
				return k.Watch(ctx, p.cs, ns, lo)
			},
		}, example, 0, cache.Indexers{})
		f.informers = append(f.informers, f.workload)
		s, err := k.Selector(lw.obj)
		if err != nil {
			return nil, err
		}
		podOpts = func(lo *metav1.ListOptions) { lo.LabelSelector = s.String() }
	default:
		return nil, &NotPatchableError{Workload: lw.wl, Reason: "no rollout to follow"}
	}
	obj := lw.obj
	f.owns = func(pod *corev1.Pod) bool { return k.Owns(obj, pod) }
	pods := p.cs.CoreV1().Pods(ns)
	f.pods = cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, lo metav1.ListOptions) (runtime.Object, error) {
			podOpts(&lo)
			return pods.List(ctx, lo)
		},
		WatchFuncWithContext: func(ctx context.Context, lo metav1.ListOptions) (watch.Interface, error) {
			podOpts(&lo)
			return pods.Watch(ctx, lo)
		},
	}, &corev1.Pod{}, 0, cache.Indexers{})
	f.informers = append(f.informers, f.pods)
	return f, nil
}

// status judges the rollout from the informers' caches.
func (f *follower) status() RolloutStatus {
	st := RolloutStatus{Namespace: f.ns, Workload: f.wl, Container: f.container}
	controllerDone := true
	if f.workload != nil {
		items := f.workload.GetStore().List()
		if len(items) == 0 {
			st.Summary = fmt.Sprintf("%s: %s was deleted", f.wl.Name, f.wl)
			return st
		}
		obj := items[0].(workload.Object)
		st.Image = workload.TemplateImage(f.kind.PodSpec(obj), f.container)
		r := f.kind.Rollout(obj)
		st.Desired, st.Updated, st.ReadyPods, st.Available = r.Desired, r.Updated, r.Ready, r.Available
		controllerDone = r.Done
	}

	// Every live pod of the workload must run the template's image for the
	// container and be ready.
	var live []*corev1.Pod
	for _, obj := range f.pods.GetStore().List() {
		pod := obj.(*corev1.Pod)
		if pod.DeletionTimestamp != nil || !f.owns(pod) || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			continue
		}
		live = append(live, pod)
	}
	slices.SortFunc(live, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	if f.workload == nil { // a bare Pod
		st.Desired = 1
		if len(live) == 0 {
			st.Summary = fmt.Sprintf("%s: the pod is gone", f.wl.Name)
			return st
		}
		st.Image = workload.TemplateImage(&live[0].Spec, f.container)
	}
	var good int32
	for _, pod := range live {
		ok, running, failure := podRuns(pod, f.container, st.Image)
		if ok {
			good++
		}
		if f.workload == nil {
			if running {
				st.Updated = 1
			}
			if ok {
				st.ReadyPods, st.Available = 1, 1
			}
		}
		if failure != nil {
			st.Failing = append(st.Failing, *failure)
		}
	}
	st.Ready = controllerDone && st.Desired > 0 && good >= st.Desired && int(good) == len(live)
	if f.workload == nil {
		st.Ready = len(live) == 1 && good == 1
	}
	switch {
	case st.Ready:
		st.Summary = fmt.Sprintf("%s %d/%d Running on %s", f.wl.Name, st.ReadyPods, st.Desired, shortImage(st.Image))
	default:
		st.Summary = fmt.Sprintf("%s: %d/%d updated, %d/%d ready", f.wl.Name, st.Updated, st.Desired, st.ReadyPods, st.Desired)
		if cur, _ := splitFailing(st.Failing, st.Image); len(cur) > 0 {
			st.Summary += ", " + failingText(cur)
		}
	}
	return st
}

// deadlineSummary says the rollout is not ready, naming what still fails.
func (f *follower) deadlineSummary(st RolloutStatus, deadline time.Duration) string {
	s := fmt.Sprintf("%s %d/%d ready after %s", f.wl.Name, st.ReadyPods, st.Desired, deadline)
	cur, old := splitFailing(st.Failing, st.Image)
	switch {
	case len(cur) > 0:
		// Name the pods: at the deadline the person wants to know which pod
		// to look at, and its reason is whichever phase of the kubelet's
		// back-off cycle it is in (ErrImagePull or ImagePullBackOff).
		s += ": still failing: " + failingPods(cur)
		cls := diagnose.Classify(cur[0].Reason, cur[0].Message)
		s += ": " + cls.Cause.Title()
		if ev := cls.Evidence; ev != "" {
			s += " (" + clipText(ev, 200) + ")"
		} else if m := cur[0].Message; m != "" {
			s += " (" + clipText(m, 200) + ")"
		}
	case len(old) > 0:
		names := make([]string, len(old))
		for i, o := range old {
			names[i] = o.Pod
		}
		s += fmt.Sprintf(": %s still on the old image (%s), not replaced", strings.Join(names, ", "), failingText(old))
	default:
		s += "; no pod reports an error yet"
	}
	if f.workload != nil {
		if items := f.workload.GetStore().List(); len(items) > 0 {
			if ss, ok := items[0].(*appsv1.StatefulSet); ok {
				switch {
				case ss.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType:
					s += "; the StatefulSet updates OnDelete: delete its pods to roll them"
				case len(old) > 0 && ss.Spec.PodManagementPolicy != appsv1.ParallelPodManagement:
					s += "; an OrderedReady StatefulSet does not replace a pod that is not ready: delete it to roll it"
				}
			}
		}
	}
	return s
}

// splitFailing separates failures on the image being rolled out from those
// of old pods not yet replaced.
func splitFailing(fs []PodFailure, image string) (cur, old []PodFailure) {
	for _, f := range fs {
		if f.Image == image {
			cur = append(cur, f)
		} else {
			old = append(old, f)
		}
	}
	return cur, old
}

func failingText(fs []PodFailure) string {
	counts := map[string]int{}
	var order []string
	for _, f := range fs {
		if counts[f.Reason] == 0 {
			order = append(order, f.Reason)
		}
		counts[f.Reason]++
	}
	parts := make([]string, 0, len(order))
	for _, r := range order {
		if counts[r] == 1 {
			parts = append(parts, "1 pod "+r)
		} else {
			parts = append(parts, fmt.Sprintf("%d pods %s", counts[r], r))
		}
	}
	return strings.Join(parts, ", ")
}

// failingPods names up to three failing pods with their reasons,
// "ui-new-7d9c-x2v4q ImagePullBackOff", then counts the rest.
func failingPods(fs []PodFailure) string {
	const named = 3
	parts := make([]string, 0, named+1)
	for i, f := range fs {
		if i == named {
			parts = append(parts, fmt.Sprintf("and %d more", len(fs)-named))
			break
		}
		parts = append(parts, f.Pod+" "+f.Reason)
	}
	return strings.Join(parts, ", ")
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// podRuns reports whether pod runs image in container and is ready
// (running: the container runs image, ready or not), or else what the
// kubelet says is wrong.
func podRuns(pod *corev1.Pod, container, image string) (ok, running bool, failure *PodFailure) {
	if _, isVol := workload.ImageVolumeName(container); isVol {
		return podRunsVolume(pod, container, image)
	}
	own := workload.TemplateImage(&pod.Spec, container)
	var cs *corev1.ContainerStatus
	init := false
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == container {
			cs = &pod.Status.ContainerStatuses[i]
		}
	}
	for i := range pod.Status.InitContainerStatuses {
		if pod.Status.InitContainerStatuses[i].Name == container {
			cs, init = &pod.Status.InitContainerStatuses[i], true
		}
	}
	podReady := false
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			podReady = true
		}
	}
	if cs != nil && own != image {
		// An old pod not yet replaced: report it only if it fails.
		if w := cs.State.Waiting; w != nil && workload.IsImagePullReason(w.Reason) {
			failure = &PodFailure{Pod: pod.Name, Image: own, Reason: w.Reason, Message: w.Message,
				Cause: diagnose.Classify(w.Reason, w.Message).Cause}
		}
		return false, false, failure
	}
	if cs != nil {
		// A waiting status that still names another image (an in-place
		// change the kubelet has not acted on yet) is about that image.
		failImage := image
		if cs.Image != "" && !sameImage(cs.Image, image) {
			failImage = cs.Image
		}
		// An in-place change (bare pods) leaves the old container's status
		// until the kubelet restarts it: the status must name the new image.
		onImage := sameImage(cs.Image, image)
		switch {
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "" && cs.State.Waiting.Reason != "ContainerCreating" && cs.State.Waiting.Reason != "PodInitializing":
			w := cs.State.Waiting
			failure = &PodFailure{Pod: pod.Name, Image: failImage, Reason: w.Reason, Message: w.Message}
			if workload.IsImagePullReason(w.Reason) {
				failure.Cause = diagnose.Classify(w.Reason, w.Message).Cause
			}
		case init && onImage && cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			running = true
		case onImage && cs.State.Running != nil:
			running = true
		}
		ok = running && podReady && (init || cs.Ready)
		return ok, running, failure
	}
	return false, false, nil
}

// sameImage compares a status image (the runtime's normalised name,
// "docker.io/library/nginx:1.27") with a spec image ("nginx:1.27").
func sameImage(status, spec string) bool {
	if status == spec {
		return true
	}
	a, err1 := reference.ParseNormalizedNamed(status)
	b, err2 := reference.ParseNormalizedNamed(spec)
	if err1 != nil || err2 != nil {
		return false
	}
	return reference.TagNameOnly(a).String() == reference.TagNameOnly(b).String()
}

// shortImage is the last path element with its tag or digest:
// "retail-store-sample-ui:1.2.1".
func shortImage(image string) string {
	if i := strings.LastIndex(image, "/"); i >= 0 {
		return image[i+1:]
	}
	return image
}

// podRunsVolume judges a pod for an image volume's rollout: the pod's
// volume references image and the pod is Running and Ready (the kubelet
// starts no container that mounts the volume until the volume's image is
// pulled, so a Ready pod has it), or else the kubelet's words about the
// volume.
func podRunsVolume(pod *corev1.Pod, container, image string) (ok, running bool, failure *PodFailure) {
	own := workload.TemplateImage(&pod.Spec, container)
	for _, fc := range workload.FailingContainers(pod) {
		if fc.Name == container {
			failure = &PodFailure{Pod: pod.Name, Image: fc.Image, Reason: fc.Reason, Message: fc.Message,
				Cause: diagnose.Classify(fc.Reason, fc.Message).Cause}
			break
		}
	}
	if own != image || failure != nil {
		return false, false, failure
	}
	podReady := false
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			podReady = true
		}
	}
	running = pod.Status.Phase == corev1.PodRunning
	return running && podReady, running, nil
}
