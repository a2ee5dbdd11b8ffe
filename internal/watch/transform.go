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
			NodeName:            pod.Spec.NodeName,
			ServiceAccountName:  pod.Spec.ServiceAccountName,
			ImagePullSecrets:    pod.Spec.ImagePullSecrets,
			InitContainers:      slimContainers(pod.Spec.InitContainers, pod.Spec.Volumes),
			Containers:          slimContainers(pod.Spec.Containers, pod.Spec.Volumes),
			EphemeralContainers: slimEphemeral(pod.Spec.EphemeralContainers),
			Volumes:             slimImageVolumes(pod.Spec.Volumes),
		},
		Status: corev1.PodStatus{
			Phase:                      pod.Status.Phase,
			InitContainerStatuses:      slimStatuses(pod.Status.InitContainerStatuses),
			ContainerStatuses:          slimStatuses(pod.Status.ContainerStatuses),
			EphemeralContainerStatuses: slimStatuses(pod.Status.EphemeralContainerStatuses),
		},
	}
	return out, nil
}

// slimImageVolumes keeps the image volumes (name, reference, pull policy):
// their pull failures are incidents of their own (see failedVolume).
func slimImageVolumes(vs []corev1.Volume) []corev1.Volume {
	var out []corev1.Volume
	for _, v := range vs {
		if v.Image != nil {
			out = append(out, corev1.Volume{Name: v.Name, VolumeSource: corev1.VolumeSource{
				Image: &corev1.ImageVolumeSource{Reference: v.Image.Reference, PullPolicy: v.Image.PullPolicy}}})
		}
	}
	return out
}

// slimEphemeral keeps an ephemeral container's name, image and target
// (the `kubectl debug` command that replaces it names the target again).
func slimEphemeral(cs []corev1.EphemeralContainer) []corev1.EphemeralContainer {
	if len(cs) == 0 {
		return nil
	}
	out := make([]corev1.EphemeralContainer, len(cs))
	for i, c := range cs {
		out[i] = corev1.EphemeralContainer{TargetContainerName: c.TargetContainerName,
			EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: c.Name, Image: c.Image, ImagePullPolicy: c.ImagePullPolicy}}
	}
	return out
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

// slimContainers keeps each container's name, image and pull policy, and
// its mounts of image volumes (by name only): which image a failure is
// about depends on them.
func slimContainers(cs []corev1.Container, vols []corev1.Volume) []corev1.Container {
	if len(cs) == 0 {
		return nil
	}
	var image map[string]bool
	for _, v := range vols {
		if v.Image != nil {
			if image == nil {
				image = map[string]bool{}
			}
			image[v.Name] = true
		}
	}
	out := make([]corev1.Container, len(cs))
	for i, c := range cs {
		out[i] = corev1.Container{Name: c.Name, Image: c.Image, ImagePullPolicy: c.ImagePullPolicy}
		for _, m := range c.VolumeMounts {
			if image[m.Name] {
				out[i].VolumeMounts = append(out[i].VolumeMounts, corev1.VolumeMount{Name: m.Name})
			}
		}
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
