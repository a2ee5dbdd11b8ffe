package kubeletsim

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
)

// buildStatus derives the pod status the kubelet would report from the
// runtime state and the spec (generateAPIPodStatus, simplified to what a
// pull-only runtime can know).
func (s *Simulator) buildStatus(pod *corev1.Pod, rt *podRuntime, n *node) corev1.PodStatus {
	st := *pod.Status.DeepCopy()
	st.HostIP, st.HostIPs = n.ip, []corev1.HostIP{{IP: n.ip}}
	st.PodIP, st.PodIPs = rt.podIP, []corev1.PodIP{{IP: rt.podIP}}
	if st.StartTime == nil {
		st.StartTime = ptrTo(rt.startTime)
	}
	st.ObservedGeneration = pod.Generation

	var incomplete []string
	initDone := true
	st.InitContainerStatuses = nil
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cs := containerStatus(c, rt.containers[c.Name], "PodInitializing", true)
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
		sidecar := c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		done := cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0
		if sidecar {
			done = cs.State.Running != nil
		}
		if !done {
			incomplete = append(incomplete, c.Name)
			initDone = false
		}
	}
	var unready []string
	running, waiting := 0, 0
	st.ContainerStatuses = nil
	defaultReason := "ContainerCreating"
	if !initDone {
		defaultReason = "PodInitializing"
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		cs := containerStatus(c, rt.containers[c.Name], defaultReason, false)
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
		if !cs.Ready {
			unready = append(unready, c.Name)
		}
		switch {
		case cs.State.Running != nil:
			running++
		case cs.State.Waiting != nil && cs.LastTerminationState.Terminated == nil:
			waiting++
		}
	}
	// Ephemeral containers: their own list, converted like the others
	// (kubelet_pods.go l. 2157–2172: default waiting reason PodInitializing
	// when the pod has init containers, else ContainerCreating), and
	// counted in neither the phase nor readiness.
	st.EphemeralContainerStatuses = nil
	ephDefault := "ContainerCreating"
	if len(pod.Spec.InitContainers) > 0 {
		ephDefault = "PodInitializing"
	}
	for i := range pod.Spec.EphemeralContainers {
		c := (*corev1.Container)(&pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
		cs := containerStatus(c, rt.containers[c.Name], ephDefault, false)
		// The prober sets Started and Ready for containers and init
		// containers only (prober/prober_manager.go l. 346–400).
		cs.Ready, cs.Started = false, nil
		st.EphemeralContainerStatuses = append(st.EphemeralContainerStatuses, cs)
	}
	switch {
	case !initDone, waiting > 0:
		st.Phase = corev1.PodPending
	case running > 0:
		st.Phase = corev1.PodRunning
	default:
		st.Phase = corev1.PodRunning // restarting after a definition change
	}

	cond := func(t corev1.PodConditionType, ok bool, reason, msg string) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, ObservedGeneration: pod.Generation, LastTransitionTime: now()}
		if !ok {
			c.Status, c.Reason, c.Message = corev1.ConditionFalse, reason, msg
		}
		for _, old := range pod.Status.Conditions {
			if old.Type == t && old.Status == c.Status {
				c.LastTransitionTime = old.LastTransitionTime
			}
		}
		return c
	}
	notReadyMsg := fmt.Sprintf("containers with unready status: %s", unready)
	conds := []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, true, "", ""),
		cond(corev1.PodInitialized, initDone, "ContainersNotInitialized", fmt.Sprintf("containers with incomplete status: %s", incomplete)),
		cond(corev1.PodReady, len(unready) == 0, "ContainersNotReady", notReadyMsg),
		cond(corev1.ContainersReady, len(unready) == 0, "ContainersNotReady", notReadyMsg),
	}
	scheduled := corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now()}
	var others []corev1.PodCondition
	for _, old := range pod.Status.Conditions {
		switch old.Type {
		case corev1.PodScheduled:
			scheduled = old
		case corev1.PodReadyToStartContainers, corev1.PodInitialized, corev1.PodReady, corev1.ContainersReady:
		default:
			others = append(others, old)
		}
	}
	st.Conditions = append(append(conds, scheduled), others...)
	return st
}

// containerStatus is one container's status. A container never tried waits
// with defaultReason (ContainerCreating, or PodInitializing behind init
// containers).
func containerStatus(c *corev1.Container, st *container, defaultReason string, init bool) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, Started: ptrTo(false)}
	if st == nil {
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: defaultReason}
		return cs
	}
	cs.RestartCount = st.restartCount
	cs.LastTerminationState.Terminated = st.lastTerminated
	switch st.state {
	case stateRunning:
		cs.Image, cs.ImageID, cs.ContainerID = st.imageName, st.imageID, "containerd://"+st.containerID
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: st.startedAt}
		cs.Ready, cs.Started = true, ptrTo(true)
	case stateTerminated:
		cs.Image, cs.ImageID, cs.ContainerID = st.imageName, st.imageID, "containerd://"+st.containerID
		cs.State.Terminated = &corev1.ContainerStateTerminated{
			ExitCode: 0, Reason: "Completed", StartedAt: st.startedAt, FinishedAt: st.finishedAt,
			ContainerID: "containerd://" + st.containerID,
		}
		cs.Ready = init
	default:
		reason := st.reason
		if reason == "" {
			reason = defaultReason
		}
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: st.message}
	}
	return cs
}

// writeStatus patches pods/status with a strategic merge patch against the
// cached status, as the kubelet's status manager does (statusutil.PatchPodStatus,
// the UID in the patch guards against a recreated pod), and only when the
// status changed.
func (s *Simulator) writeStatus(ctx context.Context, pod *corev1.Pod, rt *podRuntime, status corev1.PodStatus) error {
	if equality.Semantic.DeepEqual(pod.Status, status) ||
		(rt.lastWritten != nil && equality.Semantic.DeepEqual(*rt.lastWritten, status)) {
		return nil
	}
	oldData, err := json.Marshal(corev1.Pod{Status: pod.Status})
	if err != nil {
		return err
	}
	newData, err := json.Marshal(corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: pod.UID}, Status: status})
	if err != nil {
		return err
	}
	patch, err := strategicpatch.CreateTwoWayMergePatch(oldData, newData, corev1.Pod{})
	if err != nil {
		return err
	}
	sent := time.Now()
	if _, err := s.cs.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("patch status of %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	written := time.Now()
	rt.lastWritten = status.DeepCopy()
	if hook := s.statusHook(); hook != nil {
		hook(StatusWrite{Pod: types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}, Reason: statusReason(status), Sent: sent, Written: written})
	}
	return nil
}

// statusReason is what `kubectl get pods` would show, roughly: the first
// waiting reason of an init container, else of a container, else the phase.
func statusReason(st corev1.PodStatus) string {
	for _, list := range [][]corev1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses} {
		for _, cs := range list {
			if cs.State.Waiting != nil && cs.State.Waiting.Reason != "" {
				return cs.State.Waiting.Reason
			}
		}
	}
	return string(st.Phase)
}
