package watch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/watch/fix"
)

// volumeDeployment is a Deployment whose container "ui" runs goodImage and
// mounts the image volume "models" with reference ref.
func (e *env) volumeDeployment(name, ref string, replicas int32) *appsv1.Deployment {
	e.t.Helper()
	tpl := podTemplate(name, goodImage)
	tpl.Spec.Volumes = []corev1.Volume{{Name: "models", VolumeSource: corev1.VolumeSource{Image: &corev1.ImageVolumeSource{Reference: ref}}}}
	tpl.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "models", MountPath: "/models"}}
	d, err := e.cs.AppsV1().Deployments(e.ns).Create(e.t.Context(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr(replicas), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}, Template: tpl},
	}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// TestImageVolumeTypo: a Deployment's image volume (volumes[].image.reference)
// names a repository that does not exist. Its two pods make one incident
// that names the volume, not the container that mounts it; the diagnosis
// offers the verified repository; SetImage patches the volume's reference
// with the compare-and-swap on its exact path (a stale reference writes
// nothing), records the change-cause and the Event; the rollout reaches
// 2/2 Ready on the new reference and the watcher observes the resolution.
func TestImageVolumeTypo(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	p := newPatcher(t, botClient(t, e), fix.WithRolloutDeadline(2*time.Minute))
	e.volumeDeployment("assets", badImage, 2)
	wl := Workload{Kind: "Deployment", Name: "assets"}
	want := Key{Cluster: "test", Namespace: e.ns, Workload: wl, Container: "volume:models", Image: badImage}

	poll(t, 60*time.Second, "one notified incident for both pods", func(context.Context) (bool, error) {
		incs := e.w.Incidents()
		return len(incs) == 1 && len(incs[0].Pods) == 2 && len(e.rec.openedFor("assets")) > 0, nil
	})
	if incs := e.w.Incidents(); incs[0].Key != want {
		t.Fatalf("key %+v, want %+v", incs[0].Key, want)
	}
	opened := e.rec.openedFor("assets")
	if len(opened) != 1 {
		t.Fatalf("%d notifications, want 1", len(opened))
	}
	d := e.diagnosed(want)
	if d == nil || d.Cause != diagnose.RepoNotFound || len(d.Candidates) == 0 || d.Candidates[0].Image != goodImage || d.Candidates[0].Digest == "" {
		t.Fatalf("diagnosis %+v, want repo_not_found with %s verified", d, goodImage)
	}
	if d.Target.Container != "volume:models" || d.Target.Image != badImage || !strings.Contains(d.Target.Message, badImage) {
		t.Errorf("target %+v: want the volume, its reference and the kubelet's words about it", d.Target)
	}

	// A stale reference: changed before the click, then between the dry
	// run and the patch. Nothing is written either time.
	other := "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.0"
	stale := want
	stale.Image = other
	gen := e.getDeployment("assets").Generation
	_, err := p.SetImage(ctx, fix.FixRequest{Key: stale, NewImage: goodImage, Approver: approver})
	var se *fix.StaleError
	if !errors.As(err, &se) || se.Got != badImage || !strings.Contains(err.Error(), `image volume "models"`) {
		t.Fatalf("stale key: err %v, want *fix.StaleError naming the volume and %s", err, badImage)
	}
	e.volumeDeployment("race", badImage, 1)
	race := want
	race.Name = "race"
	pr := newPatcher(t, botClient2(t, e))
	pr.BeforePatch(func() {
		patch := fmt.Sprintf(`[{"op":"replace","path":"/spec/template/spec/volumes/0/image/reference","value":%q}]`, other)
		if _, err := e.cs.AppsV1().Deployments(e.ns).Patch(ctx, "race", types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Error(err)
		}
	})
	if _, err := pr.SetImage(ctx, fix.FixRequest{Key: race, NewImage: goodImage, Approver: approver}); !errors.As(err, &se) || se.Got != other {
		t.Fatalf("race: err %v, want *fix.StaleError naming %s", err, other)
	}
	if r := e.getDeployment("race"); r.Spec.Template.Spec.Volumes[0].Image.Reference != other || writtenByBot(r) {
		t.Errorf("the concurrent edit was overwritten: %s", r.Spec.Template.Spec.Volumes[0].Image.Reference)
	}
	if dep := e.getDeployment("assets"); dep.Generation != gen || writtenByBot(dep) {
		t.Errorf("a refused fix wrote: generation %d → %d", gen, dep.Generation)
	}

	res, err := p.SetImage(ctx, fix.FixRequest{Key: want, NewImage: goodImage, Approver: approver})
	if err != nil {
		t.Fatal(err)
	}
	if res.Container != "volume:models" || res.OldImage != badImage || res.NewImage != goodImage {
		t.Errorf("result %+v", res)
	}
	dep := e.getDeployment("assets")
	if ref := dep.Spec.Template.Spec.Volumes[0].Image.Reference; ref != goodImage || dep.Spec.Template.Spec.Containers[0].Image != goodImage {
		t.Errorf("volume reference %q, container image %q", ref, dep.Spec.Template.Spec.Containers[0].Image)
	}
	if got, wantCause := dep.Annotations[fix.ChangeCauseAnnotation], "pullfix: image "+badImage+" → "+goodImage+", approved by "+approver; got != wantCause {
		t.Errorf("change-cause %q, want %q", got, wantCause)
	}
	if evs := eventsFor(t, e, "Deployment", "assets", fix.ReasonImageUpdated); len(evs) != 1 || !strings.Contains(evs[0].Message, `Image volume "models" reference changed`) {
		t.Errorf("events %+v", evs)
	}

	st, err := p.FollowRollout(ctx, want, nil)
	if err != nil {
		t.Fatalf("follow: %v (%+v)", err, st)
	}
	if wantSum := "assets 2/2 Running on retail-store-sample-ui:1.2.1"; !st.Ready || st.Summary != wantSum || st.Image != goodImage {
		t.Errorf("rollout %+v, want %q", st, wantSum)
	}
	// Ready is observed: every live pod of the Deployment references the
	// new image and is Ready.
	pods, err := e.cs.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=assets"})
	if err != nil {
		t.Fatal(err)
	}
	for _, pod := range pods.Items {
		if pod.DeletionTimestamp == nil && pod.Status.Phase == corev1.PodRunning && pod.Spec.Volumes[0].Image.Reference != goodImage {
			t.Errorf("pod %s runs %s", pod.Name, pod.Spec.Volumes[0].Image.Reference)
		}
	}
	poll(t, 60*time.Second, "the watcher resolves the incident", func(context.Context) (bool, error) {
		_, resolved := e.rec.snapshot()
		for _, r := range resolved {
			if r.Key == want {
				return true, nil
			}
		}
		return false, nil
	})
}

// botClient2 is the bot's identity under a second ServiceAccount name, for
// a second fix.Patcher in one test.
func botClient2(t *testing.T, e *env) kubernetes.Interface {
	return saClient(t, e, "pullfix-bot-2", botRules)
}

// TestEphemeralContainerBadImage: `kubectl debug` adds an ephemeral
// container with a missing image to a Running pod of a Deployment. The pod
// stays Running (outside the Pending cache): the kubelet's Failed event
// brings it in, and one incident opens for the pod itself, naming the
// ephemeral container, diagnosed with the verified image and a remedy that
// is the `kubectl debug` command to start a new one. The fix.Patcher refuses
// every fix of it cleanly and writes nothing; deleting the pod resolves it.
func TestEphemeralContainerBadImage(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	bad := "public.ecr.aws/aws-containers/retail-store-sample-ui:9.9.9"
	e.deployment("web", goodImage, 1)
	var pod *corev1.Pod
	poll(t, 60*time.Second, "web Running", func(ctx context.Context) (bool, error) {
		l, err := e.cs.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(l.Items) != 1 || l.Items[0].Status.Phase != corev1.PodRunning {
			return false, nil
		}
		pod = &l.Items[0]
		return true, nil
	})
	// What kubectl debug -it --image=… --target=ui sends.
	pod.Spec.EphemeralContainers = []corev1.EphemeralContainer{{TargetContainerName: "ui",
		EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debugger", Image: bad, Stdin: true, TTY: true}}}
	if _, err := e.cs.CoreV1().Pods(e.ns).UpdateEphemeralContainers(ctx, pod.Name, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := Key{Cluster: "test", Namespace: e.ns, Workload: Workload{Kind: "Pod", Name: pod.Name}, Container: "ephemeral:debugger", Image: bad}
	poll(t, 60*time.Second, "the ephemeral container reported", func(context.Context) (bool, error) {
		return len(e.rec.openedFor(pod.Name)) > 0, nil
	})
	opened := e.rec.openedFor(pod.Name)
	if len(opened) != 1 || opened[0].Key != want {
		t.Fatalf("opened %+v, want one incident %+v", opened, want)
	}
	if n := len(e.rec.openedFor("web")); n != 0 {
		t.Errorf("%d incidents for the Deployment: the debug container is the pod's own", n)
	}
	d := e.diagnosed(want)
	if d == nil || d.Cause != diagnose.TagNotFound || len(d.Candidates) == 0 {
		t.Fatalf("diagnosis %+v, want tag_not_found with a verified candidate", d)
	}
	cmd := "`kubectl debug -n " + e.ns + " " + pod.Name + " -it --image=" + d.Candidates[0].Image + " --target=ui`"
	if !strings.Contains(d.Remedy, cmd) {
		t.Errorf("remedy %q, want the command %s", d.Remedy, cmd)
	}
	if p, _ := e.cs.CoreV1().Pods(e.ns).Get(ctx, pod.Name, metav1.GetOptions{}); p.Status.Phase != corev1.PodRunning {
		t.Errorf("pod phase %s: the test meant a Running pod", p.Status.Phase)
	}

	// No fix applies: each refusal is a *fix.NotPatchableError, before any request.
	p := newPatcher(t, botClient(t, e))
	_, errSet := p.SetImage(ctx, fix.FixRequest{Key: want, NewImage: d.Candidates[0].Image, Approver: approver})
	_, errSecret := p.AddPullSecret(ctx, fix.PullSecretRequest{Key: want, Secret: "regcred", Approver: approver})
	_, errFollow := p.FollowRollout(ctx, want, nil)
	for name, err := range map[string]error{"SetImage": errSet, "AddPullSecret": errSecret, "FollowRollout": errFollow} {
		var np *fix.NotPatchableError
		if !errors.As(err, &np) || !strings.Contains(err.Error(), "ephemeral") || !strings.Contains(err.Error(), "kubectl debug") {
			t.Errorf("%s: err %v, want a *fix.NotPatchableError saying to start a new debug container", name, err)
		}
	}
	got, err := e.cs.CoreV1().Pods(e.ns).Get(ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.EphemeralContainers[0].Image != bad || writtenByBot(got) {
		t.Errorf("the pod was written: %+v", got.Spec.EphemeralContainers[0])
	}

	// Resolution is observed: the pod goes (its Deployment replaces it).
	if err := e.cs.CoreV1().Pods(e.ns).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, 90*time.Second, "resolved once the pod is gone", func(context.Context) (bool, error) {
		_, resolved := e.rec.snapshot()
		for _, r := range resolved {
			if r.Key == want {
				return true, nil
			}
		}
		return false, nil
	})
}

// diagnosed waits for the incident's full diagnosis (the first post may
// carry the kubelet's words alone when the probe outlasts the budget on a
// loaded machine; the refined one follows) and returns it.
func (e *env) diagnosed(k Key) *diagnose.Diagnosis {
	e.t.Helper()
	var d *diagnose.Diagnosis
	poll(e.t, 30*time.Second, "the full diagnosis of "+k.String(), func(context.Context) (bool, error) {
		inc, ok := e.w.Incident(IncidentID(k))
		if !ok || inc.Diagnosis == nil || len(inc.Diagnosis.Probes) == 0 {
			return false, nil
		}
		d = inc.Diagnosis
		return true, nil
	})
	return d
}
