package watch

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/watch/workload"
)

// adaptToSource completes a diagnosis for where its image is used. An
// ephemeral container cannot be patched: the API accepts ephemeral
// containers only through the pods/ephemeralcontainers subresource, and an
// existing one can be neither changed nor removed (core validation,
// ValidatePodEphemeralContainersUpdate). So the remedy says to start a new
// debug container with the verified image, as a command to copy; pullfix
// offers no patch for it (the Patcher refuses such a key).
func adaptToSource(k Key, pod *corev1.Pod, d *diagnose.Diagnosis) {
	name, ok := workload.EphemeralContainerName(k.Container)
	if !ok {
		return
	}
	img := "IMAGE"
	if len(d.Candidates) > 0 {
		img = d.Candidates[0].Image
	} else if !prefetchHints(d.Cause) {
		// Fixed outside the image (credentials, network): the same image
		// works once that is fixed.
		img = k.Image
	}
	note := fmt.Sprintf("Debug container %s is an ephemeral container: its image cannot be changed, so pullfix offers no patch. "+
		"Start a new debug container with a verified image: `%s`", name, workload.DebugCommand(k.Namespace, k.Name, img, workload.EphemeralTarget(pod, name)))
	if strings.TrimSpace(d.Remedy) == "" {
		d.Remedy = note
		return
	}
	d.Remedy = strings.TrimRight(d.Remedy, " ") + " " + note
}

// eventFor picks, from a pod's pull-failure events (newest first), the
// newest one about the key's image source: the kubelet names an ephemeral
// container by the fieldPath spec.ephemeralContainers{NAME}, and pulls an
// image volume for the pod as a whole (empty fieldPath, the message naming
// the reference). A container's event is one that is about neither, as
// before image volumes and ephemeral containers were told apart.
func eventFor(k Key, evs []*corev1.Event) *corev1.Event {
	for _, ev := range evs {
		fp := ev.InvolvedObject.FieldPath
		switch {
		case strings.HasPrefix(k.Container, workload.EphemeralPrefix):
			if name, _ := workload.EphemeralContainerName(k.Container); fp == "spec.ephemeralContainers{"+name+"}" {
				return ev
			}
		case strings.HasPrefix(k.Container, workload.VolumePrefix):
			if fp == "" && workload.MentionsImage(ev.Message, k.Image, true) {
				return ev
			}
		default:
			if fp == "spec.containers{"+k.Container+"}" || fp == "spec.initContainers{"+k.Container+"}" ||
				(fp == "" && workload.MentionsImage(ev.Message, k.Image, true)) {
				return ev
			}
		}
	}
	return nil
}
