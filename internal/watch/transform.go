package watch

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// slimPod is the informer transform: it keeps only what diagnosis and
// incident keying read, so the cache of Pending pods stays small even in a
// storm (design §5, §9: ≤64 MiB with 1,000 failing pods).
func slimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // tombstones and others pass through untouched
	}
	out := &corev1.Pod{
		TypeMeta: pod.TypeMeta,
		ObjectMeta: metav1.ObjectMeta{
			Name:              pod.Name,
			Namespace:         pod.Namespace,
			UID:               pod.UID,
			ResourceVersion:   pod.ResourceVersion,
			Labels:            ownerLabels(pod.Labels),
			OwnerReferences:   pod.OwnerReferences,
			CreationTimestamp: pod.CreationTimestamp,
			DeletionTimestamp: pod.DeletionTimestamp,
		},
		Spec: corev1.PodSpec{
			NodeName:           pod.Spec.NodeName,
			ServiceAccountName: pod.Spec.ServiceAccountName,
			ImagePullSecrets:   pod.Spec.ImagePullSecrets,
			InitContainers:     slimContainers(pod.Spec.InitContainers),
			Containers:         slimContainers(pod.Spec.Containers),
		},
		Status: corev1.PodStatus{
			Phase:                 pod.Status.Phase,
			InitContainerStatuses: slimStatuses(pod.Status.InitContainerStatuses),
			ContainerStatuses:     slimStatuses(pod.Status.ContainerStatuses),
		},
	}
	return out, nil
}

// ownerLabels keeps the one label owner resolution reads: the Deployment
// controller's pod-template-hash, which names the Deployment without a
// request (deploymentByName).
func ownerLabels(l map[string]string) map[string]string {
	if h, ok := l[appsv1.DefaultDeploymentUniqueLabelKey]; ok {
		return map[string]string{appsv1.DefaultDeploymentUniqueLabelKey: h}
	}
	return nil
}

func slimContainers(cs []corev1.Container) []corev1.Container {
	if len(cs) == 0 {
		return nil
	}
	out := make([]corev1.Container, len(cs))
	for i, c := range cs {
		out[i] = corev1.Container{Name: c.Name, Image: c.Image, ImagePullPolicy: c.ImagePullPolicy}
	}
	return out
}

func slimStatuses(ss []corev1.ContainerStatus) []corev1.ContainerStatus {
	if len(ss) == 0 {
		return nil
	}
	out := make([]corev1.ContainerStatus, len(ss))
	for i, s := range ss {
		out[i] = corev1.ContainerStatus{Name: s.Name, Image: s.Image, Ready: s.Ready}
		if w := s.State.Waiting; w != nil {
			out[i].State.Waiting = &corev1.ContainerStateWaiting{Reason: w.Reason, Message: w.Message}
		}
		if s.State.Running != nil {
			out[i].State.Running = &corev1.ContainerStateRunning{}
		}
	}
	return out
}

// slimEvent keeps the parts of a kubelet event that diagnosis reads.
func slimEvent(obj any) (any, error) {
	ev, ok := obj.(*corev1.Event)
	if !ok {
		return obj, nil
	}
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name: ev.Name, Namespace: ev.Namespace, ResourceVersion: ev.ResourceVersion,
		},
		InvolvedObject: corev1.ObjectReference{
			Kind: ev.InvolvedObject.Kind, Namespace: ev.InvolvedObject.Namespace,
			Name: ev.InvolvedObject.Name, UID: ev.InvolvedObject.UID, FieldPath: ev.InvolvedObject.FieldPath,
		},
		Reason:         ev.Reason,
		Message:        ev.Message,
		Type:           ev.Type,
		Count:          ev.Count,
		LastTimestamp:  ev.LastTimestamp,
		FirstTimestamp: ev.FirstTimestamp,
		EventTime:      ev.EventTime,
	}, nil
}
