package watch

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/watch/fix"
	"github.com/pullfix/pullfix/internal/watch/workload"
)

// volumePod is a pod whose container "app" mounts the image volume
// "models" (and, when second is not "", "extra"), waiting with reason and
// message as the kubelet writes them.
func volumePod(models, second, reason, msg string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns"},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{
				{Name: "app", Image: goodImage, VolumeMounts: []corev1.VolumeMount{{Name: "models", MountPath: "/m"}}},
				{Name: "side", Image: goodImage, VolumeMounts: []corev1.VolumeMount{{Name: "models", MountPath: "/m"}}},
			},
			Volumes: []corev1.Volume{{Name: "models", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: models}}}},
		},
		Status: corev1.PodStatus{Phase: corev1.PodPending},
	}
	if second != "" {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "extra", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: second}}})
		p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "extra", MountPath: "/e"})
	}
	for _, c := range p.Spec.Containers {
		p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, corev1.ContainerStatus{Name: c.Name, Image: c.Image,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}})
	}
	return p
}

// containerd's words (as kubeletsim writes them, and as in
// /work/shared/data/pull-errors.jsonl) for a missing image.
func notFoundMsg(image string) string {
	return `rpc error: code = NotFound desc = failed to pull and unpack image "` + image + `": failed to resolve reference "` + image + `": ` + image + `: not found`
}

// TestFailingContainersSources: which image a pull failure is about.
func TestFailingContainersSources(t *testing.T) {
	typo := "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1"
	hub := "nginx:1.27-typo"
	other := "public.ecr.aws/aws-containers/retail-store-sample-ui:9.9.9"
	tests := []struct {
		name string
		pod  *corev1.Pod
		want []string // "name image"
	}{
		{"volume, ErrImagePull in containerd's words: one incident for both containers",
			volumePod(typo, "", "ErrImagePull", notFoundMsg(typo)), []string{"volume:models " + typo}},
		{"volume, back-off names the reference as written",
			volumePod(typo, "", "ImagePullBackOff", `Back-off pulling image "`+typo+`": ErrImagePull: `+notFoundMsg(typo)), []string{"volume:models " + typo}},
		{"Docker Hub volume: containerd names it fully qualified",
			volumePod(hub, "", "ErrImagePull", notFoundMsg("docker.io/library/"+hub)), []string{"volume:models " + hub}},
		{"never-pull policy on the volume",
			volumePod(hub, "", "ErrImageNeverPull", `Container image "`+hub+`" is not present with pull policy of Never`), []string{"volume:models " + hub}},
		{"the last failing mount's words name the second volume; the other container's, the first",
			func() *corev1.Pod {
				p := volumePod(typo, other, "ErrImagePull", notFoundMsg(other))
				p.Status.ContainerStatuses[1].State.Waiting.Message = notFoundMsg(typo) // side mounts only models
				return p
			}(), []string{"volume:extra " + other, "volume:models " + typo}},
		{"the container's own image fails (volumes pulled)",
			volumePod(goodImage+"-x", "", "ErrImagePull", notFoundMsg(goodImage)), []string{"app " + goodImage, "side " + goodImage}},
		{"a runtime wording naming only the repository",
			volumePod(typo, "", "ErrImagePull", "reading manifest 1.2.1 in public.ecr.aws/aws-containers/retailing-store-sample-ui: manifest unknown"), []string{"volume:models " + typo}},
		{"a tag that is a prefix of another is not that one",
			volumePod("public.ecr.aws/aws-containers/retail-store-sample-ui:1.2", "", "ErrImagePull", notFoundMsg(goodImage)), []string{"app " + goodImage, "side " + goodImage}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			slim, _ := slimPod(tt.pod)
			for _, pod := range []*corev1.Pod{tt.pod, slim.(*corev1.Pod)} {
				var got []string
				for _, fc := range workload.FailingContainers(pod) {
					got = append(got, fc.Name+" "+fc.Image)
				}
				if strings.Join(got, "|") != strings.Join(tt.want, "|") {
					t.Errorf("got %q, want %q", got, tt.want)
				}
			}
		})
	}

	t.Run("ephemeral container", func(t *testing.T) {
		p := &corev1.Pod{
			Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "ui", Image: goodImage}},
				EphemeralContainers: []corev1.EphemeralContainer{{TargetContainerName: "ui",
					EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: other}}},
			},
			Status: corev1.PodStatus{
				Phase:             corev1.PodRunning,
				ContainerStatuses: []corev1.ContainerStatus{{Name: "ui", Image: goodImage, Ready: true, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}},
				EphemeralContainerStatuses: []corev1.ContainerStatus{{Name: "debugger", Image: other,
					State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: notFoundMsg(other)}}}},
			},
		}
		slim, _ := slimPod(p)
		for _, pod := range []*corev1.Pod{p, slim.(*corev1.Pod)} {
			fcs := workload.FailingContainers(pod)
			if len(fcs) != 1 || fcs[0].Name != "ephemeral:debugger" || fcs[0].Image != other || !fcs[0].Ephemeral {
				t.Errorf("got %+v", fcs)
			}
			if got := sourceWorkload(Workload{Kind: "Deployment", Name: "web"}, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web-1"}}, fcs[0]); got != (Workload{Kind: "Pod", Name: "web-1"}) {
				t.Errorf("workload %v, want the pod itself", got)
			}
			if workload.EphemeralTarget(pod, "debugger") != "ui" {
				t.Error("the slim pod lost the ephemeral container's target")
			}
		}
	})
}

// TestEventFor: the kubelet's events are told apart by fieldPath (an
// ephemeral container's, a container's) and by the reference (an image
// volume's, on the pod itself).
func TestEventFor(t *testing.T) {
	typo := "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1"
	mk := func(fp, img string) *corev1.Event {
		return &corev1.Event{InvolvedObject: corev1.ObjectReference{FieldPath: fp}, Reason: "Failed", Message: `Failed to pull image "` + img + `": ` + notFoundMsg(img)}
	}
	vol := mk("", typo)
	eph := mk("spec.ephemeralContainers{debugger}", badImage+"x")
	ctr := mk("spec.containers{ui}", goodImage)
	hub := &corev1.Event{Reason: "Failed", Message: `Failed to pull image "nginx:1.99": manifest unknown`}
	evs := []*corev1.Event{vol, eph, ctr, hub} // newest first
	for _, tt := range []struct {
		k    Key
		want *corev1.Event
	}{
		{Key{Container: "volume:models", Image: typo}, vol},
		{Key{Container: "ephemeral:debugger", Image: badImage + "x"}, eph},
		{Key{Container: "ui", Image: goodImage}, ctr},
		{Key{Container: "other", Image: goodImage}, nil},
		// An event without fieldPath (written by hand, or by an old
		// kubelet) naming the container's image in Docker Hub's short form.
		{Key{Container: "app", Image: "docker.io/library/nginx:1.99"}, hub},
	} {
		if got := eventFor(tt.k, evs); got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.k.Container, got, tt.want)
		}
	}
}

// TestAdaptToSource: an ephemeral container's remedy is the kubectl debug
// command with the verified image and the old target; other sources keep
// the diagnoser's words.
func TestAdaptToSource(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{EphemeralContainers: []corev1.EphemeralContainer{{TargetContainerName: "ui",
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger"}}}}}
	k := Key{Namespace: "shop", Workload: Workload{Kind: "Pod", Name: "web-1"}, Container: "ephemeral:debugger", Image: badImage}
	d := diagnose.Diagnosis{Cause: diagnose.RepoNotFound, Remedy: "Fix the repository name.", Candidates: []diagnose.Candidate{{Image: goodImage}}}
	adaptToSource(k, pod, &d)
	want := "`kubectl debug -n shop web-1 -it --image=" + goodImage + " --target=ui`"
	if !strings.HasPrefix(d.Remedy, "Fix the repository name. ") || !strings.Contains(d.Remedy, want) {
		t.Errorf("remedy %q, want it to end with %s", d.Remedy, want)
	}
	plain := diagnose.Diagnosis{Remedy: "Fix the repository name."}
	adaptToSource(Key{Container: "volume:models"}, nil, &plain)
	if plain.Remedy != "Fix the repository name." {
		t.Errorf("an image volume's remedy changed: %q", plain.Remedy)
	}
	var nf *fix.NotPatchableError
	if err := fix.NotPatchableSource(k); err == nil || !strings.Contains(err.Error(), "ephemeral") {
		t.Errorf("refusal %v", err)
	} else if !asNotPatchable(err, &nf) {
		t.Errorf("refusal %T, want *fix.NotPatchableError", err)
	}
}

func asNotPatchable(err error, target **fix.NotPatchableError) bool {
	e, ok := err.(*fix.NotPatchableError)
	*target = e
	return ok
}

// TestPatcherRefusesUnpatchableSources: an ephemeral container (any
// workload) and a bare Pod's image volume (a pod's volumes are immutable)
// are refused before any request (the fix.Patcher here has no client at all).
func TestPatcherRefusesUnpatchableSources(t *testing.T) {
	p := newPatcher(t, nil)
	for _, k := range []Key{
		{Namespace: "ns", Workload: Workload{Kind: "Pod", Name: "web-1"}, Container: "ephemeral:debugger", Image: badImage},
		{Namespace: "ns", Workload: Workload{Kind: "Pod", Name: "bare"}, Container: "volume:models", Image: badImage},
	} {
		_, err := p.SetImage(t.Context(), fix.FixRequest{Key: k, NewImage: goodImage, Approver: approver})
		var np *fix.NotPatchableError
		if !asNotPatchable(err, &np) {
			t.Errorf("%s: err %v, want *fix.NotPatchableError", k.Container, err)
		}
		if _, err := p.AddPullSecret(t.Context(), fix.PullSecretRequest{Key: k, Secret: "regcred", Approver: approver}); !asNotPatchable(err, &np) {
			t.Errorf("%s: AddPullSecret err %v, want *fix.NotPatchableError", k.Container, err)
		}
	}
}
