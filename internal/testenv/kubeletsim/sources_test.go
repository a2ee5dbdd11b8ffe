package kubeletsim

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pullfix/pullfix/internal/testenv/registries"
)

// TestImageVolumeNotFound: a pod whose image volume's reference is a typo
// stays Pending; the kubelet's image manager pulls the reference for the
// pod (events with no fieldPath, the reference as written), the container
// that mounts it waits with the volume's pull error (kuberuntime_manager.go
// toKubeContainerImageVolumes) before its own image is pulled, and a
// container that mounts nothing runs. Fixing the reference (a new pod: a
// pod's volumes are immutable) runs.
func TestImageVolumeNotFound(t *testing.T) {
	reg := registries.New(t)
	registries.SeedRunbook(t, reg)
	e := newEnv(t, WithMirrors(map[string]string{registries.PublicECR: reg.Host}))
	good := "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1"
	bad := "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1"
	withVolume := func(ref string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "assets", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: ref}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "assets", MountPath: "/assets"}}
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "side", Image: good})
		}
	}
	p := e.pod("vol", good, withVolume(bad))
	if got := p.Spec.Volumes[0].Image.PullPolicy; got != corev1.PullIfNotPresent {
		t.Errorf("the API server defaulted the volume's pull policy to %q, want IfNotPresent", got)
	}
	notFound := `rpc error: code = NotFound desc = failed to pull and unpack image "` + bad + `": failed to resolve reference "` + bad + `": ` + bad + `: not found`
	w := e.waitWaiting(p.Name, "app", "ImagePullBackOff")
	if want := `Back-off pulling image "` + bad + `": ErrImagePull: ` + notFound; w.Message != want {
		t.Errorf("waiting message\n got %q\nwant %q", w.Message, want)
	}
	evs := e.waitEvents(p,
		ev{"Normal", "Pulling", `Pulling image "` + bad + `"`},
		ev{"Warning", "Failed", `Failed to pull image "` + bad + `": ` + notFound},
		ev{"Warning", "Failed", "Error: ErrImagePull"},
		ev{"Normal", "BackOff", `Back-off pulling image "` + bad + `"`},
		ev{"Warning", "Failed", "Error: ImagePullBackOff"},
	)
	for _, x := range evs {
		t.Logf("event %s %s x%d %q: %s", x.Type, x.Reason, x.Count, x.InvolvedObject.FieldPath, x.Message)
		switch {
		case x.Message == `Pulling image "`+good+`"`:
			// The containers' own image: pulled for "side" only.
			if x.InvolvedObject.FieldPath != "spec.containers{side}" {
				t.Errorf("the container's own image was pulled for %s: the volume must fail it first", x.InvolvedObject.FieldPath)
			}
		case x.Reason == "Pulling" || x.Reason == "BackOff" || (x.Reason == "Failed" && x.Message != "Error: ErrImagePull" && x.Message != "Error: ImagePullBackOff"):
			if x.InvolvedObject.FieldPath != "" || x.InvolvedObject.Kind != "Pod" || x.InvolvedObject.UID != p.UID {
				t.Errorf("volume pull event %q involves %+v, want the pod with no fieldPath", x.Message, x.InvolvedObject)
			}
		case x.Reason == "Failed":
			if x.InvolvedObject.FieldPath != "spec.containers{app}" {
				t.Errorf("%q involves %q, want spec.containers{app}", x.Message, x.InvolvedObject.FieldPath)
			}
		}
	}
	got, _ := e.cs.CoreV1().Pods(e.ns).Get(t.Context(), p.Name, metav1.GetOptions{})
	if got.Status.Phase != corev1.PodPending {
		t.Errorf("phase %s, want Pending", got.Status.Phase)
	}
	for _, cs := range got.Status.ContainerStatuses {
		switch cs.Name {
		case "app":
			if cs.Image != good || cs.ImageID != "" {
				t.Errorf("app status names image %q (id %q): the kubelet keeps the container's own spec image", cs.Image, cs.ImageID)
			}
		case "side":
			if cs.State.Running == nil {
				t.Errorf("side (mounts nothing) is %+v, want running", cs.State)
			}
		}
	}

	fixed := e.pod("vol-fixed", good, withVolume(good))
	e.waitRunning(fixed.Name)
}

// TestEphemeralContainerNotFound: `kubectl debug` adds an ephemeral
// container whose image does not exist to a Running pod; the kubelet's
// events name it by spec.ephemeralContainers{NAME}, its status is in
// ephemeralContainerStatuses, and the pod stays Running and Ready.
func TestEphemeralContainerNotFound(t *testing.T) {
	reg := registries.New(t)
	registries.SeedRunbook(t, reg)
	e := newEnv(t, WithMirrors(map[string]string{registries.PublicECR: reg.Host}))
	good := "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1"
	bad := "public.ecr.aws/aws-containers/retail-store-sample-ui:9.9.9"
	p := e.pod("debugme", good)
	p = e.waitRunning(p.Name)
	p.Spec.EphemeralContainers = []corev1.EphemeralContainer{{
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: bad, Stdin: true, TTY: true},
		TargetContainerName:      "app",
	}}
	if _, err := e.cs.CoreV1().Pods(e.ns).UpdateEphemeralContainers(t.Context(), p.Name, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var w corev1.ContainerStateWaiting
	poll(t, 30*time.Second, "debugger ImagePullBackOff", func(ctx context.Context) (bool, error) {
		got, err := e.cs.CoreV1().Pods(e.ns).Get(ctx, p.Name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, cs := range got.Status.EphemeralContainerStatuses {
			if cs.Name == "debugger" && cs.State.Waiting != nil && cs.State.Waiting.Reason == "ImagePullBackOff" {
				w = *cs.State.Waiting
				if cs.Image != bad || cs.Ready || cs.Started != nil {
					t.Errorf("ephemeral status %+v", cs)
				}
				return got.Status.Phase == corev1.PodRunning, nil
			}
		}
		return false, nil
	})
	notFound := `rpc error: code = NotFound desc = failed to pull and unpack image "` + bad + `": failed to resolve reference "` + bad + `": ` + bad + `: not found`
	if want := `Back-off pulling image "` + bad + `": ErrImagePull: ` + notFound; w.Message != want {
		t.Errorf("waiting message\n got %q\nwant %q", w.Message, want)
	}
	evs := e.waitEvents(p,
		ev{"Normal", "Pulling", `Pulling image "` + bad + `"`},
		ev{"Warning", "Failed", `Failed to pull image "` + bad + `": ` + notFound},
		ev{"Warning", "Failed", "Error: ErrImagePull"},
	)
	for _, x := range evs {
		if x.Message == `Pulling image "`+bad+`"` && x.InvolvedObject.FieldPath != "spec.ephemeralContainers{debugger}" {
			t.Errorf("%q involves %q", x.Message, x.InvolvedObject.FieldPath)
		}
	}
	e.waitRunning(p.Name) // still Running and Ready
}
