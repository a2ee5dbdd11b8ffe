package kubeletsim

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
)

// Event reasons and types, from pkg/kubelet/events/event.go (v1.37.2).
const (
	reasonPulling          = "Pulling"
	reasonPulled           = "Pulled"
	reasonFailed           = "Failed"
	reasonInspectFailed    = "InspectFailed"
	reasonErrNeverPull     = "ErrImageNeverPull"
	reasonBackOff          = "BackOff"
	reasonCreated          = "Created"
	reasonStarted          = "Started"
	reasonKilling          = "Killing"
	reasonMissingSecret    = "FailedToRetrieveImagePullSecret"
	reasonScheduled        = "Scheduled"
	fieldPathContainer     = "spec.containers{%s}"
	fieldPathInitContainer = "spec.initContainers{%s}"
	// pkg/kubelet/container/ref.go l. 72–74 (v1.37.2).
	fieldPathEphemeralContainer = "spec.ephemeralContainers{%s}"
)

// containerKind says which list of the pod spec a container is in.
type containerKind int

const (
	kindRegular containerKind = iota
	kindInit
	kindEphemeral
)

// containerRefOf is containerRef for any kind of container.
func containerRefOf(pod *corev1.Pod, name string, kind containerKind) *corev1.ObjectReference {
	r := containerRef(pod, name, kind == kindInit)
	if kind == kindEphemeral {
		r.FieldPath = fmt.Sprintf(fieldPathEphemeralContainer, name)
	}
	return r
}

// podRef is ref.GetReference(legacyscheme.Scheme, pod): the pod itself, no
// fieldPath — the object of an image volume's pull events
// (kuberuntime_manager.go l. 2053).
func podRef(pod *corev1.Pod) *corev1.ObjectReference {
	return &corev1.ObjectReference{
		Kind:            "Pod",
		APIVersion:      "v1",
		Namespace:       pod.Namespace,
		Name:            pod.Name,
		UID:             pod.UID,
		ResourceVersion: pod.ResourceVersion,
	}
}

// containerRef is kubecontainer.GenerateContainerRef: the pod, with the
// container's field path, so `kubectl describe` and the bot can tell which
// container an event is about.
func containerRef(pod *corev1.Pod, name string, init bool) *corev1.ObjectReference {
	fp := fmt.Sprintf(fieldPathContainer, name)
	if init {
		fp = fmt.Sprintf(fieldPathInitContainer, name)
	}
	return &corev1.ObjectReference{
		Kind:            "Pod",
		APIVersion:      "v1",
		Namespace:       pod.Namespace,
		Name:            pod.Name,
		UID:             pod.UID,
		ResourceVersion: pod.ResourceVersion,
		FieldPath:       fp,
	}
}
