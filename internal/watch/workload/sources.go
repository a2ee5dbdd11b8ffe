package workload

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
	corev1 "k8s.io/api/core/v1"
)

// Image sources besides a pod's containers and init containers. An
// incident's Key.Container names where the failing image is used: a
// container's name, or one of these prefixes and a name. Container and
// volume names are DNS labels, which hold no ':', so the three never clash
// and the key stays readable ("volume:models", "ephemeral:debugger-x7k2p").
const (
	// VolumePrefix marks an image volume (volumes[].image.reference,
	// KEP-4639; GA and always on since Kubernetes 1.36).
	VolumePrefix = "volume:"
	// EphemeralPrefix marks an ephemeral container (`kubectl debug`).
	EphemeralPrefix = "ephemeral:"
)

// ImageVolumeName returns the volume an incident's container field names,
// when it names an image volume.
func ImageVolumeName(container string) (string, bool) {
	return strings.CutPrefix(container, VolumePrefix)
}

// EphemeralContainerName returns the ephemeral container an incident's
// container field names, when it names one.
func EphemeralContainerName(container string) (string, bool) {
	return strings.CutPrefix(container, EphemeralPrefix)
}

// What the kubelet v1.37.2 writes when an image volume cannot be pulled
// (k8s.io/kubernetes@v1.37.2, pkg/kubelet/kuberuntime/kuberuntime_manager.go):
//
//   - SyncPod's lazyStart (l. 1889–1897) calls getImageVolumes once per
//     sync, before the first container it starts. getImageVolumes (l.
//     2035–2072) calls imagePuller.EnsureImageExists(ctx, objectRef, pod,
//     volume.Image.Reference, pullSecrets, …, volume.Image.PullPolicy) for
//     every image volume, with objectRef = ref.GetReference(pod): the pod
//     itself, no fieldPath. So the image manager's events (Pulling, Failed
//     "Failed to pull image %q: %v", BackOff "Back-off pulling image %q",
//     ErrImageNeverPull, InspectFailed; pkg/kubelet/images/image_manager.go
//     l. 183–187, 344–377) name the volume's reference and involve the pod
//     with an empty fieldPath. The pod's pull secrets are used, as for
//     containers.
//   - A failed pull does not stop the sync (l. 2057–2060 keep the error per
//     volume). Each container is then started through startWithInitState,
//     whose toKubeContainerImageVolumes (l. 1832, 2000–2033) checks the
//     container's volumeMounts in order: for each mounted image volume whose
//     pull failed it records a Warning "Failed" event "Error: ErrImagePull"
//     (or "Error: ImagePullBackOff") on the container (fieldPath
//     spec.containers{NAME}), and the container fails with the last such
//     volume's error and message — before its own image is pulled. So the
//     container waits with reason ErrImagePull / ImagePullBackOff and the
//     volume's pull message (which names the volume's image), while its
//     status's image is still the container's own. Containers that mount no
//     failing image volume start normally; the pod stays Pending.
//
// Ephemeral containers (`kubectl debug`) are started first in SyncPod
// (step 7, l. 1905–1912) through the same startWithInitState and
// EnsureImageExists, with the container's reference
// (pkg/kubelet/container/ref.go l. 72–74: fieldPath
// spec.ephemeralContainers{NAME}); their statuses go to
// status.ephemeralContainerStatuses (pkg/kubelet/kubelet_pods.go l.
// 2157–2172) and do not change the pod's phase, so the pod is usually
// Running and outside the Pending cache: the kubelet's Failed event brings
// it in (getPod).

// imageVolumes returns the pod's image volumes by name.
func imageVolumes(spec *corev1.PodSpec) map[string]string {
	var out map[string]string
	for _, v := range spec.Volumes {
		if v.Image == nil {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[v.Name] = v.Image.Reference
	}
	return out
}

// failedVolume says which image volume a container's pull failure is about,
// if any. The kubelet fails a container on its mounted image volumes before
// it pulls the container's own image (see above), with the last failing
// volume's message in mount order; the message names the image it is
// about: quoted as written in the image manager's own messages (back-off,
// never-pull, invalid name) or normalised in the runtime's
// ("docker.io/library/…"). A message that names none of them (a runtime
// wording without the reference) is matched by repository; failing that,
// it is the container's own image.
func failedVolume(c *corev1.Container, vols map[string]string, msg string) (name, ref string, ok bool) {
	if len(vols) == 0 {
		return "", "", false
	}
	var mounted []string
	for _, m := range c.VolumeMounts {
		if _, isImage := vols[m.Name]; isImage {
			mounted = append(mounted, m.Name)
		}
	}
	if len(mounted) == 0 {
		return "", "", false
	}
	for _, exact := range []bool{true, false} {
		for i := len(mounted) - 1; i >= 0; i-- {
			if MentionsImage(msg, vols[mounted[i]], exact) {
				return mounted[i], vols[mounted[i]], true
			}
		}
		if MentionsImage(msg, c.Image, exact) {
			return "", "", false
		}
	}
	return "", "", false
}

// MentionsImage reports whether a kubelet message names image: exactly
// (as written or fully qualified, with its tag or digest), or with exact
// false by its repository alone.
func MentionsImage(msg, image string, exact bool) bool {
	if msg == "" || image == "" {
		return false
	}
	forms := []string{image}
	if named, err := reference.ParseNormalizedNamed(image); err == nil {
		if exact {
			// Also the short form Docker Hub images are often written in
			// ("nginx:1.27" for docker.io/library/nginx:1.27).
			forms = append(forms, reference.TagNameOnly(named).String(), reference.FamiliarString(reference.TagNameOnly(named)))
		} else {
			forms = []string{named.Name(), reference.FamiliarName(named)}
		}
	} else if !exact {
		return false
	}
	for _, f := range forms {
		if containsBounded(msg, f) {
			return true
		}
	}
	return false
}

// containsBounded finds s in msg as a whole reference: the characters
// around it cannot continue a reference ("x:1" is not in "x:1.2").
func containsBounded(msg, s string) bool {
	refChar := func(b byte) bool {
		return b == '.' || b == '-' || b == '_' || b == ':' || b == '@' || b == '/' ||
			(b >= '0' && b <= '9') || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z')
	}
	for from := 0; ; {
		i := strings.Index(msg[from:], s)
		if i < 0 {
			return false
		}
		i += from
		end := i + len(s)
		before := i == 0 || !refChar(msg[i-1])
		// A trailing '.' or ':' ends a sentence or starts the error text.
		after := end == len(msg) || !refChar(msg[end]) ||
			((msg[end] == '.' || msg[end] == ':') && (end+1 == len(msg) || msg[end+1] == ' '))
		if before && after {
			return true
		}
		from = i + 1
	}
}

// EphemeralTarget returns the container an ephemeral container targets
// (`kubectl debug --target`), "" when none or unknown.
func EphemeralTarget(pod *corev1.Pod, name string) string {
	if pod == nil {
		return ""
	}
	for _, ec := range pod.Spec.EphemeralContainers {
		if ec.Name == name {
			return ec.TargetContainerName
		}
	}
	return ""
}

// DebugCommand is the `kubectl debug` command that adds a new ephemeral
// container running image to pod, targeting target when it is not "".
func DebugCommand(namespace, pod, image, target string) string {
	cmd := fmt.Sprintf("kubectl debug -n %s %s -it --image=%s", namespace, pod, image)
	if target != "" {
		cmd += " --target=" + target
	}
	return cmd
}
