package kubeletsim

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// syncPod is one pass of the kubelet's pod worker for a bound pod: re-read
// the pod, start what can be started, write the status if it changed. It
// returns when to look again (a failing container is re-evaluated every
// re-sync period, the kubelet's 10 s compressed, jittered like the kubelet's
// pod workers).
func (s *Simulator) syncPod(ctx context.Context, key podKey) (time.Duration, error) {
	n := s.byName[key.node]
	obj, exists, err := n.informer.GetIndexer().GetByKey(key.namespace + "/" + key.name)
	if err != nil {
		return 0, err
	}
	if !exists {
		s.forget(key)
		return 0, nil
	}
	pod := obj.(*corev1.Pod)
	if pod.Spec.NodeName != n.name || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return 0, nil
	}
	rt := s.runtimeFor(key, pod, n)
	if pod.DeletionTimestamp != nil {
		return 0, s.terminate(ctx, key, pod, rt, n)
	}
	failing := s.startContainers(ctx, pod, rt, n)
	if err := s.writeStatus(ctx, pod, rt, s.buildStatus(pod, rt, n)); err != nil {
		return 0, err
	}
	if failing {
		return wait.Jitter(s.cfg.backoffInitial, 0.5), nil
	}
	return 0, nil
}

// runtimeFor returns the pod's runtime state, new for a new pod UID.
func (s *Simulator) runtimeFor(key podKey, pod *corev1.Pod, n *node) *podRuntime {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.pods[key]
	if !ok || rt.uid != pod.UID {
		if ok {
			s.dropBackoff(rt)
		}
		ip := pod.Status.PodIP // pod IPs may not change once set
		if ip == "" {
			ip = n.ip
			if !pod.Spec.HostNetwork {
				ip = n.nextPodIP()
			}
		}
		rt = newPodRuntime(pod.UID, ip)
		if pod.Status.StartTime != nil {
			rt.startTime = *pod.Status.StartTime
		}
		adopt(rt, pod)
		s.pods[key] = rt
	}
	return rt
}

func (s *Simulator) forget(key podKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rt, ok := s.pods[key]; ok {
		s.dropBackoff(rt)
		delete(s.pods, key)
	}
}

func (s *Simulator) dropBackoff(rt *podRuntime) {
	for _, c := range rt.containers {
		s.backoff.DeleteEntry(fmt.Sprintf("%s_%s", rt.uid, c.image))
	}
}

// terminate stops the pod's containers and finishes the graceful deletion
// the API server started, as the kubelet's status manager does once the pod
// is terminated, so a rolled-over ReplicaSet's pods go away.
func (s *Simulator) terminate(ctx context.Context, key podKey, pod *corev1.Pod, rt *podRuntime, n *node) error {
	kill := func(cs []corev1.Container, init bool) {
		for i := range cs {
			if st, ok := rt.containers[cs[i].Name]; ok && st.state == stateRunning {
				n.recorder.Event(containerRef(pod, cs[i].Name, init), corev1.EventTypeNormal, reasonKilling, "Stopping container "+cs[i].Name)
			}
		}
	}
	kill(pod.Spec.Containers, false)
	kill(pod.Spec.InitContainers, true)
	err := s.cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptrTo(int64(0)),
		Preconditions:      metav1.NewUIDPreconditions(string(pod.UID)),
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return err
	}
	s.forget(key)
	return nil
}

// startContainers runs the init containers in order, then the regular ones,
// as kuberuntime's SyncPod does; it reports whether any start failed.
func (s *Simulator) startContainers(ctx context.Context, pod *corev1.Pod, rt *podRuntime, n *node) bool {
	at := now()
	// lazyStart (kuberuntime_manager.go l. 1880–1903): the image volumes
	// are pulled once per sync, before the first container that is
	// started, and not at all when none is.
	var vols volumePulls
	pulled := false
	start := func(c *corev1.Container, kind containerKind, st *container) bool {
		if !pulled {
			vols, pulled = s.ensureImageVolumes(ctx, pod, rt, n), true
		}
		return s.startContainer(ctx, pod, c, kind, rt, st, n, vols)
	}
	// Step 7 of SyncPod: ephemeral containers first (l. 1905–1912); one
	// that ran is never started again, and one that fails does not stop
	// the others.
	failing := false
	for i := range pod.Spec.EphemeralContainers {
		c := (*corev1.Container)(&pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
		st := rt.container(c.Name, c.Image)
		if st.state == stateRunning || st.state == stateTerminated {
			continue
		}
		if !start(c, kindEphemeral, st) {
			failing = true
		}
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		st := rt.container(c.Name, c.Image)
		sidecar := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		if st.image != c.Image && st.state == stateRunning {
			n.recorder.Event(containerRef(pod, c.Name, true), corev1.EventTypeNormal, reasonKilling, fmt.Sprintf("Init container %s definition changed", c.Name))
			st.kill(at)
		}
		if st.state == stateRunning || st.state == stateTerminated {
			continue
		}
		if !start(c, kindInit, st) {
			return true
		}
		if !sidecar {
			st.state, st.finishedAt = stateTerminated, now()
		}
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		st := rt.container(c.Name, c.Image)
		if st.image != c.Image && st.state == stateRunning {
			n.recorder.Event(containerRef(pod, c.Name, false), corev1.EventTypeNormal, reasonKilling, fmt.Sprintf("Container %s definition changed, will be restarted", c.Name))
			st.kill(at)
		}
		if st.state == stateRunning {
			continue
		}
		if !start(c, kindRegular, st) {
			failing = true
		}
	}
	return failing
}

// startContainer is kuberuntime's startContainer: ensure the image, then
// create and start. A failure records the kubelet's "Error: <reason>" event
// and leaves the container waiting with the reason and message.
func (s *Simulator) startContainer(ctx context.Context, pod *corev1.Pod, c *corev1.Container, kind containerKind, rt *podRuntime, st *container, n *node, vols volumePulls) bool {
	ref := containerRefOf(pod, c.Name, kind)
	st.image = c.Image
	// toKubeContainerImageVolumes (kuberuntime_manager.go l. 2000–2033):
	// the container fails on its mounted image volumes that could not be
	// pulled, before its own image is pulled — one "Error: <reason>" event
	// per such mount, and the last one's reason and message.
	var volErr error
	var volMsg string
	for _, m := range c.VolumeMounts {
		res, ok := vols[m.Name]
		if !ok || res.err == nil {
			continue
		}
		n.recorder.Event(ref, corev1.EventTypeWarning, reasonFailed, "Error: "+res.err.Error())
		volErr, volMsg = res.err, res.msg
	}
	if volErr != nil {
		st.state, st.reason, st.message = stateWaiting, volErr.Error(), volMsg
		return false
	}
	img, msg, err := s.ensureImage(ctx, pod, c.Image, c.ImagePullPolicy, ref, rt, n)
	if err != nil {
		n.recorder.Event(ref, corev1.EventTypeWarning, reasonFailed, "Error: "+err.Error())
		st.state, st.reason, st.message = stateWaiting, err.Error(), msg
		return false
	}
	st.containerID = containerID()
	n.recorder.Event(ref, corev1.EventTypeNormal, reasonCreated, "Container created")
	n.recorder.Event(ref, corev1.EventTypeNormal, reasonStarted, "Container started")
	st.state, st.reason, st.message = stateRunning, "", ""
	st.imageID, st.imageName = img.imageID, img.name
	st.startedAt = now()
	return true
}

// ensureImage is the kubelet's imageManager.EnsureImageExists (v1.37.2,
// pkg/kubelet/images/image_manager.go), event for event, for a requested
// image (a container's, or an image volume's reference) with its pull
// policy; the events go to ref. It returns the image, the message for the
// container's waiting state and the reason error.
func (s *Simulator) ensureImage(ctx context.Context, pod *corev1.Pod, requested string, pullPolicy corev1.PullPolicy, ref *corev1.ObjectReference, rt *podRuntime, n *node) (presentImage, string, error) {
	r, err := parseImage(requested)
	if err != nil {
		msg := fmt.Sprintf("Failed to apply default image tag %q: %v", requested, err)
		n.recorder.Event(ref, corev1.EventTypeWarning, reasonInspectFailed, msg)
		return presentImage{}, msg, errInvalidImageName
	}
	policy := pullPolicy
	if policy == "" {
		policy = corev1.PullIfNotPresent
		if r.digest == "" && r.tag == "latest" {
			policy = corev1.PullAlways
		}
	}
	if policy != corev1.PullAlways {
		img, present := n.image(r.full)
		if present && (img.nodeAccessible || podHasSecret(pod, img.secrets)) {
			n.recorder.Event(ref, corev1.EventTypeNormal, reasonPulled, fmt.Sprintf("Container image %q already present on machine and can be accessed by the pod", requested))
			return img, "", nil
		}
		if policy == corev1.PullNever {
			msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", requested)
			n.recorder.Event(ref, corev1.EventTypeWarning, reasonErrNeverPull, msg)
			return presentImage{}, msg, errImageNeverPull
		}
	}

	backOffKey := fmt.Sprintf("%s_%s", pod.UID, requested)
	if s.backoff.IsInBackOffSinceUpdate(backOffKey, s.backoff.Clock.Now()) {
		msg := fmt.Sprintf("Back-off pulling image %q", requested)
		n.recorder.Event(ref, corev1.EventTypeNormal, reasonBackOff, msg)
		if prev, ok := rt.prevPullErr[backOffKey]; ok {
			msg = fmt.Sprintf("%s: %s", msg, prev)
		}
		return presentImage{}, msg, errImagePullBackOff
	}
	delete(rt.prevPullErr, backOffKey)

	// Secrets are read only when a pull is due (the kubelet reads them every
	// sync, from a watch-based cache): at 10,000 pods a GET per back-off tick
	// would be the load, not the simulation.
	creds, missing := s.credentials(ctx, pod, r)
	if len(missing) > 0 {
		n.recorder.Eventf(pod, corev1.EventTypeWarning, reasonMissingSecret,
			"Unable to retrieve some image pull secrets (%s); attempting to pull the image may not succeed.", strings.Join(missing, ", "))
	}

	n.recorder.Event(ref, corev1.EventTypeNormal, reasonPulling, fmt.Sprintf("Pulling image %q", requested))
	start := time.Now()
	p, cred, err := s.pull(ctx, n, r, creds)
	if err != nil {
		n.recorder.Event(ref, corev1.EventTypeWarning, reasonFailed, fmt.Sprintf("Failed to pull image %q: %v", requested, err))
		s.backoff.Next(backOffKey, s.backoff.Clock.Now())
		rt.prevPullErr[backOffKey] = fmt.Sprintf("%s: %s", errImagePull, err.Error())
		return presentImage{}, err.Error(), errImagePull
	}
	secret := ""
	if cred != nil {
		secret = cred.secret
	}
	n.storeImage(r.full, p, secret)
	n.recorder.Event(ref, corev1.EventTypeNormal, reasonPulled, fmt.Sprintf("Successfully pulled image %q in %v (%v including waiting). Image size: %v bytes.",
		requested, p.duration.Truncate(time.Millisecond), time.Since(start).Truncate(time.Millisecond), p.size))
	s.backoff.GC()
	return presentImage{imageID: p.imageID, name: p.name, size: p.size}, "", nil
}

// volumePull is the pull of one image volume in a sync: err and msg as
// EnsureImageExists returned them (nil when pulled).
type volumePull struct {
	err error
	msg string
}

// volumePulls are a sync's image volume pulls, by volume name.
type volumePulls map[string]volumePull

// ensureImageVolumes is getImageVolumes (kuberuntime_manager.go l.
// 2035–2072): EnsureImageExists for each image volume's reference with its
// pull policy (defaulted by the API server: Always for :latest, else
// IfNotPresent), the pod's pull secrets, and the pod itself as the event's
// object (ref.GetReference: no fieldPath). A failure is kept per volume and
// does not stop the others.
func (s *Simulator) ensureImageVolumes(ctx context.Context, pod *corev1.Pod, rt *podRuntime, n *node) volumePulls {
	var out volumePulls
	for _, v := range pod.Spec.Volumes {
		if v.Image == nil {
			continue
		}
		if out == nil {
			out = volumePulls{}
		}
		_, msg, err := s.ensureImage(ctx, pod, v.Image.Reference, v.Image.PullPolicy, podRef(pod), rt, n)
		out[v.Name] = volumePull{err: err, msg: msg}
	}
	return out
}

func podHasSecret(pod *corev1.Pod, secrets map[string]bool) bool {
	for _, ref := range pod.Spec.ImagePullSecrets {
		if secrets[pod.Namespace+"/"+ref.Name] {
			return true
		}
	}
	return false
}

// adopt takes over containers a previous simulator (a kubelet before its
// restart) left running, as a kubelet re-reads them from the runtime.
func adopt(rt *podRuntime, pod *corev1.Pod) {
	specImage := map[string]string{}
	for _, c := range append(append([]corev1.Container(nil), pod.Spec.InitContainers...), pod.Spec.Containers...) {
		specImage[c.Name] = c.Image
	}
	for _, cs := range append(append([]corev1.ContainerStatus(nil), pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
		image, ok := specImage[cs.Name]
		if !ok || cs.ImageID == "" || !strings.HasPrefix(cs.ContainerID, "containerd://") {
			continue
		}
		if r, err := parseImage(image); err != nil || r.name() != cs.Image {
			image = cs.Image // the spec changed while nobody watched: restart it
		}
		c := &container{
			image:        image,
			containerID:  strings.TrimPrefix(cs.ContainerID, "containerd://"),
			imageName:    cs.Image,
			imageID:      cs.ImageID,
			restartCount: cs.RestartCount,
		}
		c.lastTerminated = cs.LastTerminationState.Terminated
		switch {
		case cs.State.Running != nil:
			c.state, c.startedAt = stateRunning, cs.State.Running.StartedAt
		case cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0:
			c.state, c.startedAt, c.finishedAt = stateTerminated, cs.State.Terminated.StartedAt, cs.State.Terminated.FinishedAt
		default:
			continue
		}
		rt.containers[cs.Name] = c
	}
}
