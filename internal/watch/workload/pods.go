package workload

import (
	"sort"

	corev1 "k8s.io/api/core/v1"
)

// imagePullReasons are the container waiting reasons that mean "the image
// could not be pulled" (kubelet images/types.go; RegistryUnavailable and
// SignatureValidationFailed are runtime-classified variants since 1.28).
var imagePullReasons = map[string]bool{
	"ErrImagePull":              true,
	"ImagePullBackOff":          true,
	"InvalidImageName":          true,
	"ErrImageNeverPull":         true,
	"RegistryUnavailable":       true,
	"SignatureValidationFailed": true,
}

// IsImagePullReason reports whether a waiting reason is an image-pull failure.
func IsImagePullReason(reason string) bool { return imagePullReasons[reason] }

// FailingContainer is one image of a pod that cannot be pulled: a
// container's, an ephemeral container's or an image volume's.
type FailingContainer struct {
	// Name is the incident key's container field: the container's name,
	// EphemeralPrefix+name for an ephemeral container, VolumePrefix+name
	// for an image volume.
	Name  string
	Image string
	Init  bool
	// Ephemeral marks an ephemeral container (`kubectl debug`): it belongs
	// to this one pod, not to the pod's workload.
	Ephemeral bool
	Reason    string
	Message   string
}

// FailingContainers lists the pod's images that cannot be pulled (init
// containers first, then containers, then ephemeral containers), with the
// image from the pod spec (the status may carry a normalised form). A
// container that waits on an image volume it mounts (see failedVolume)
// yields the volume, once however many containers mount it.
func FailingContainers(pod *corev1.Pod) []FailingContainer {
	var out []FailingContainer
	vols := imageVolumes(&pod.Spec)
	seen := map[string]bool{}
	collect := func(specs []corev1.Container, statuses []corev1.ContainerStatus, init, ephemeral bool) {
		byName := make(map[string]*corev1.Container, len(specs))
		for i := range specs {
			byName[specs[i].Name] = &specs[i]
		}
		for _, st := range statuses {
			w := st.State.Waiting
			if w == nil || !IsImagePullReason(w.Reason) {
				continue
			}
			fc := FailingContainer{Name: st.Name, Image: st.Image, Init: init, Ephemeral: ephemeral, Reason: w.Reason, Message: w.Message}
			if c := byName[st.Name]; c != nil {
				fc.Image = c.Image
				if vol, ref, ok := failedVolume(c, vols, w.Message); ok {
					fc.Name, fc.Image, fc.Ephemeral = VolumePrefix+vol, ref, false
				}
			}
			if ephemeral && fc.Ephemeral {
				fc.Name = EphemeralPrefix + st.Name
			}
			if seen[fc.Name] {
				continue
			}
			seen[fc.Name] = true
			out = append(out, fc)
		}
	}
	collect(pod.Spec.InitContainers, pod.Status.InitContainerStatuses, true, false)
	collect(pod.Spec.Containers, pod.Status.ContainerStatuses, false, false)
	if len(pod.Spec.EphemeralContainers) > 0 || len(pod.Status.EphemeralContainerStatuses) > 0 {
		eph := make([]corev1.Container, len(pod.Spec.EphemeralContainers))
		for i := range pod.Spec.EphemeralContainers {
			eph[i] = corev1.Container(pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
		}
		collect(eph, pod.Status.EphemeralContainerStatuses, false, true)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Init && !out[j].Init })
	return out
}
