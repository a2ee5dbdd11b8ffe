package kubeletsim

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/testenv/controlplane"
	"github.com/pullfix/pullfix/internal/testenv/registries"
)

var cp *controlplane.ControlPlane

// TestMain shares one control plane. The controller manager's client limit
// (20 QPS by default) would otherwise pace how fast ReplicaSets create pods.
func TestMain(m *testing.M) {
	os.Exit(controlplane.Run(m, &cp, controlplane.WithControllerManagerArgs("--kube-api-qps=500", "--kube-api-burst=1000")))
}

// env is one test's namespace and simulator on the shared control plane.
type env struct {
	t   *testing.T
	cs  kubernetes.Interface
	ns  string
	sim *Simulator
}

func newEnv(t *testing.T, opts ...Option) *env {
	t.Helper()
	controlplane.Require(t, cp)
	ctx := t.Context()
	cfg := cp.AdminConfig()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ns := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(ns) > 50 {
		ns = ns[:50]
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
	// The ServiceAccount admission plugin refuses pods until the
	// controller-manager has created "default".
	poll(t, 30*time.Second, "default ServiceAccount", func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	opts = append([]Option{WithNamespace(ns), WithNodeNames(ns + "-node"), WithPullTimeout(time.Second)}, opts...)
	sim, err := NewForConfig(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Stop)
	return &env{t: t, cs: sim.cs, ns: ns, sim: sim}
}

func poll(t *testing.T, timeout time.Duration, what string, cond wait.ConditionWithContextFunc) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, timeout, true, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func (e *env) pod(name, image string, mutate ...func(*corev1.Pod)) *corev1.Pod {
	e.t.Helper()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{{Name: "app", Image: image}},
			TerminationGracePeriodSeconds: ptrTo(int64(1)),
		},
	}
	for _, m := range mutate {
		m(p)
	}
	p, err := e.cs.CoreV1().Pods(e.ns).Create(e.t.Context(), p, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return p
}

// waitWaiting waits until the pod's container named c waits with reason.
func (e *env) waitWaiting(podName, c, reason string) corev1.ContainerStateWaiting {
	e.t.Helper()
	var got corev1.ContainerStateWaiting
	poll(e.t, 30*time.Second, podName+" "+reason, func(ctx context.Context) (bool, error) {
		p, err := e.cs.CoreV1().Pods(e.ns).Get(ctx, podName, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, cs := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
			if cs.Name == c && cs.State.Waiting != nil && cs.State.Waiting.Reason == reason {
				got = *cs.State.Waiting
				return true, nil
			}
		}
		return false, nil
	})
	return got
}

// waitRunning waits until the pod is Running with Ready=True.
func (e *env) waitRunning(podName string) *corev1.Pod {
	e.t.Helper()
	var got *corev1.Pod
	poll(e.t, 30*time.Second, podName+" Running and Ready", func(ctx context.Context) (bool, error) {
		p, err := e.cs.CoreV1().Pods(e.ns).Get(ctx, podName, metav1.GetOptions{})
		if err != nil || p.Status.Phase != corev1.PodRunning {
			return false, nil
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				got = p
				return true, nil
			}
		}
		return false, nil
	})
	return got
}

type ev struct{ typ, reason, msg string }

// events lists the pod's events in creation order (event names carry the
// creation time in hex nanoseconds).
func (e *env) events(pod *corev1.Pod) []corev1.Event {
	e.t.Helper()
	l, err := e.cs.CoreV1().Events(e.ns).List(e.t.Context(), metav1.ListOptions{FieldSelector: "involvedObject.uid=" + string(pod.UID)})
	if err != nil {
		e.t.Fatal(err)
	}
	sort.Slice(l.Items, func(i, j int) bool { return l.Items[i].Name < l.Items[j].Name })
	return l.Items
}

// waitEvents waits until the pod's events contain want in order, all from
// the kubelet on the simulator's node.
func (e *env) waitEvents(pod *corev1.Pod, want ...ev) []corev1.Event {
	e.t.Helper()
	var got []corev1.Event
	poll(e.t, 30*time.Second, fmt.Sprintf("events %v", want), func(ctx context.Context) (bool, error) {
		got = e.events(pod)
		i := 0
		for _, x := range got {
			if i < len(want) && x.Type == want[i].typ && x.Reason == want[i].reason && x.Message == want[i].msg &&
				x.Source.Component == "kubelet" && x.Source.Host == pod.Spec.NodeName+e.nodeIfUnbound(pod) {
				i++
			}
		}
		return i == len(want), nil
	})
	return got
}

func (e *env) nodeIfUnbound(p *corev1.Pod) string {
	if p.Spec.NodeName == "" {
		return e.sim.Nodes()[0]
	}
	return ""
}

// TestRunbookNotFoundThenFix replays seeds/000: Deployment ui-new points at a
// repository that does not exist on public ECR; the pod ends in
// ImagePullBackOff with the runbook's events; patching the image makes a new
// pod Running and the Deployment 1/1 available.
func TestRunbookNotFoundThenFix(t *testing.T) {
	reg := registries.New(t)
	registries.SeedRunbook(t, reg)
	var firstFailing sync.Map
	e := newEnv(t, WithMirrors(map[string]string{registries.PublicECR: reg.Host}))
	e.sim.OnStatusWrite(func(w StatusWrite) {
		p, reason, at := w.Pod, w.Reason, w.Written
		if reason == "ErrImagePull" || reason == "ImagePullBackOff" {
			firstFailing.LoadOrStore(p, at)
		}
	})
	bad := "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1"
	good := "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1"
	labels := map[string]string{"app": "app-new"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "ui-new", Namespace: e.ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptrTo(int32(1)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers:                    []corev1.Container{{Name: "ui", Image: bad}},
					TerminationGracePeriodSeconds: ptrTo(int64(1)),
				},
			},
		},
	}
	start := time.Now()
	if _, err := e.cs.AppsV1().Deployments(e.ns).Create(t.Context(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pod *corev1.Pod
	poll(t, 30*time.Second, "ui-new pod", func(ctx context.Context) (bool, error) {
		l, err := e.cs.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=app-new"})
		if err != nil || len(l.Items) == 0 {
			return false, nil
		}
		pod = &l.Items[0]
		return true, nil
	})
	notFound := `rpc error: code = NotFound desc = failed to pull and unpack image "` + bad + `": failed to resolve reference "` + bad + `": ` + bad + `: not found`
	w := e.waitWaiting(pod.Name, "ui", "ImagePullBackOff")
	t.Logf("ImagePullBackOff after %s", time.Since(start).Round(time.Millisecond))
	if want := `Back-off pulling image "` + bad + `": ErrImagePull: ` + notFound; w.Message != want {
		t.Errorf("waiting message\n got %q\nwant %q", w.Message, want)
	}
	evs := e.waitEvents(pod,
		ev{"Normal", "Pulling", `Pulling image "` + bad + `"`},
		ev{"Warning", "Failed", `Failed to pull image "` + bad + `": ` + notFound},
		ev{"Warning", "Failed", "Error: ErrImagePull"},
		ev{"Normal", "BackOff", `Back-off pulling image "` + bad + `"`},
		ev{"Warning", "Failed", "Error: ImagePullBackOff"},
	)
	for _, x := range evs {
		t.Logf("event %s %s x%d %s: %s", x.Type, x.Reason, x.Count, x.InvolvedObject.FieldPath, x.Message)
	}
	if _, ok := firstFailing.Load(types.NamespacedName{Namespace: e.ns, Name: pod.Name}); !ok {
		t.Error("OnStatusWrite never saw a failing status")
	}
	p, _ := e.cs.CoreV1().Pods(e.ns).Get(t.Context(), pod.Name, metav1.GetOptions{})
	if p.Status.Phase != corev1.PodPending {
		t.Errorf("phase %s, want Pending", p.Status.Phase)
	}

	// The runbook's fix.
	patch := fmt.Sprintf(`{"spec":{"template":{"spec":{"containers":[{"name":"ui","image":%q}]}}}}`, good)
	fixed := time.Now()
	if _, err := e.cs.AppsV1().Deployments(e.ns).Patch(t.Context(), "ui-new", types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, 60*time.Second, "ui-new 1/1 available", func(ctx context.Context) (bool, error) {
		d, err := e.cs.AppsV1().Deployments(e.ns).Get(ctx, "ui-new", metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		s := d.Status
		return d.Generation == s.ObservedGeneration && s.ReadyReplicas == 1 && s.AvailableReplicas == 1 && s.UpdatedReplicas == 1 && s.Replicas == 1, nil
	})
	t.Logf("1/1 available %s after the patch", time.Since(fixed).Round(time.Millisecond))
	l, err := e.cs.CoreV1().Pods(e.ns).List(t.Context(), metav1.ListOptions{LabelSelector: "app=app-new"})
	if err != nil {
		t.Fatal(err)
	}
	var running *corev1.Pod
	for i := range l.Items {
		if l.Items[i].Spec.Containers[0].Image == good {
			running = &l.Items[i]
		}
	}
	if running == nil {
		t.Fatal("no pod with the fixed image")
	}
	running = e.waitRunning(running.Name)
	cs := running.Status.ContainerStatuses[0]
	if cs.State.Running == nil || !cs.Ready || cs.Started == nil || !*cs.Started ||
		!strings.HasPrefix(cs.ImageID, "public.ecr.aws/aws-containers/retail-store-sample-ui@sha256:") ||
		!strings.HasPrefix(cs.ContainerID, "containerd://") || cs.Image != good {
		t.Errorf("container status %+v", cs)
	}
	e.waitEvents(running,
		ev{"Normal", "Pulling", `Pulling image "` + good + `"`},
		ev{"Normal", "Created", "Container created"},
		ev{"Normal", "Started", "Container started"},
	)
	// The old pod's deletion was finished by the kubelet.
	poll(t, 30*time.Second, "old pod gone", func(ctx context.Context) (bool, error) {
		_, err := e.cs.CoreV1().Pods(e.ns).Get(ctx, pod.Name, metav1.GetOptions{})
		return err != nil, nil
	})
	// The node the runbook's pod landed on is a Ready kubelet.
	n, err := e.cs.CoreV1().Nodes().Get(t.Context(), running.Spec.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Status.NodeInfo.KubeletVersion != "v1.37.2" || n.Status.NodeInfo.Architecture != "amd64" ||
		!strings.HasPrefix(n.Status.NodeInfo.ContainerRuntimeVersion, "containerd://2.") || n.Labels[corev1.LabelArchStable] != "amd64" {
		t.Errorf("node %+v %v", n.Status.NodeInfo, n.Labels)
	}
}

// switchKeychain is a node keychain for ECR that can be granted credentials
// later (an IAM policy attached while the pod backs off).
type switchKeychain struct {
	on   atomic.Bool
	auth authn.Authenticator
}

func (k *switchKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if k.on.Load() && r.RegistryStr() == ecr {
		return k.auth, nil
	}
	return authn.Anonymous, nil
}

// TestUnauthorizedThenCredentials: ECR answers 401 to a node without
// credentials; the node role gets them and the pod runs. Docker Hub answers
// insufficient_scope for a private repository; an imagePullSecret created
// after the pod makes the next attempt work.
func TestUnauthorizedThenCredentials(t *testing.T) {
	ecrReg := registries.New(t, registries.WithBasicAuth(registries.BasicAuth{Users: map[string]registries.BasicUser{"AWS": {Password: "token"}}}))
	ecrReg.Push(t, "team/app:2.0", "linux/amd64", "linux/arm64")
	hub := registries.New(t, registries.WithBearerAuth(registries.HubLike(map[string]string{"alice": "pw"}, "acme/*")))
	hub.Push(t, "acme/private-app:1.0", "linux/amd64")
	kc := &switchKeychain{auth: authn.FromConfig(authn.AuthConfig{Username: "AWS", Password: "token"})}
	e := newEnv(t, WithKeychain(kc), WithMirrors(map[string]string{ecr: ecrReg.Host, "docker.io": hub.Host}))

	img := ecr + "/team/app:2.0"
	p := e.pod("ecr-app", img)
	w := e.waitWaiting(p.Name, "app", "ErrImagePull")
	want := `failed to pull and unpack image "` + img + `": failed to resolve reference "` + img + `": unexpected status from HEAD request to https://` + ecr + `/v2/team/app/manifests/2.0: 401 Unauthorized`
	if w.Message != want {
		t.Errorf("got  %q\nwant %q", w.Message, want)
	}
	kc.on.Store(true)
	e.waitRunning(p.Name)

	h := e.pod("hub-app", "acme/private-app:1.0", func(p *corev1.Pod) {
		p.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "hub-creds"}}
	})
	w = e.waitWaiting(h.Name, "app", "ImagePullBackOff")
	denied := `failed to pull and unpack image "docker.io/acme/private-app:1.0": failed to resolve reference "docker.io/acme/private-app:1.0": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed`
	if want := `Back-off pulling image "acme/private-app:1.0": ErrImagePull: ` + denied; w.Message != want {
		t.Errorf("got  %q\nwant %q", w.Message, want)
	}
	e.waitEvents(h, ev{"Warning", "FailedToRetrieveImagePullSecret", "Unable to retrieve some image pull secrets (hub-creds); attempting to pull the image may not succeed."})
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{"https://index.docker.io/v1/": map[string]string{
		"auth": base64.StdEncoding.EncodeToString([]byte("alice:pw")),
	}}})
	if _, err := e.cs.CoreV1().Secrets(e.ns).Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "hub-creds"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: cfg},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitRunning(h.Name)
}

// TestNeverPullAndInvalidName covers the two failures that never reach a
// registry.
func TestNeverPullAndInvalidName(t *testing.T) {
	e := newEnv(t, WithPresentImages("busybox:1.36"))
	never := e.pod("never", "registry.example.com/tools/never:1", func(p *corev1.Pod) {
		p.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
	})
	msg := `Container image "registry.example.com/tools/never:1" is not present with pull policy of Never`
	if w := e.waitWaiting(never.Name, "app", "ErrImageNeverPull"); w.Message != msg {
		t.Errorf("got %q", w.Message)
	}
	e.waitEvents(never, ev{"Warning", "ErrImageNeverPull", msg}, ev{"Warning", "Failed", "Error: ErrImageNeverPull"})

	present := e.pod("present", "busybox:1.36", func(p *corev1.Pod) {
		p.Spec.Containers[0].ImagePullPolicy = corev1.PullNever
	})
	e.waitRunning(present.Name)
	e.waitEvents(present, ev{"Normal", "Pulled", `Container image "busybox:1.36" already present on machine and can be accessed by the pod`})

	bad := "taigaio/taiga-back: {{ .Chart.AppVersion }}"
	inv := e.pod("invalid", bad)
	msg = `Failed to apply default image tag "` + bad + `": couldn't parse image name "` + bad + `": invalid reference format`
	if w := e.waitWaiting(inv.Name, "app", "InvalidImageName"); w.Message != msg {
		t.Errorf("got %q", w.Message)
	}
	e.waitEvents(inv, ev{"Warning", "InspectFailed", msg}, ev{"Warning", "Failed", "Error: InvalidImageName"})
}

// TestPlatformMismatchOnArm64 runs an amd64-only index on an arm64 node, in
// an init container, so the regular container waits behind it.
func TestPlatformMismatchOnArm64(t *testing.T) {
	reg := registries.New(t)
	registries.SeedRunbook(t, reg)
	e := newEnv(t, WithPlatform("linux", "arm64", ""), WithMirrors(map[string]string{registries.PublicECR: reg.Host}))
	img := "public.ecr.aws/" + registries.RetailUtilsAMD64Index + ":1.2.1"
	p := e.pod("arm", "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1", func(p *corev1.Pod) {
		p.Spec.InitContainers = []corev1.Container{{Name: "utils", Image: img}}
		p.Spec.NodeSelector = map[string]string{corev1.LabelArchStable: "arm64"}
	})
	w := e.waitWaiting(p.Name, "utils", "ErrImagePull")
	want := `rpc error: code = NotFound desc = failed to pull and unpack image "` + img + `": no match for platform in manifest: not found`
	if w.Message != want {
		t.Errorf("got  %q\nwant %q", w.Message, want)
	}
	got, _ := e.cs.CoreV1().Pods(e.ns).Get(t.Context(), p.Name, metav1.GetOptions{})
	if cs := got.Status.ContainerStatuses; len(cs) != 1 || cs[0].State.Waiting == nil || cs[0].State.Waiting.Reason != "PodInitializing" {
		t.Errorf("regular container %+v", cs)
	}
	if !slices.ContainsFunc(got.Status.Conditions, func(c corev1.PodCondition) bool {
		return c.Type == corev1.PodInitialized && c.Status == corev1.ConditionFalse && c.Message == "containers with incomplete status: [utils]"
	}) {
		t.Errorf("conditions %+v", got.Status.Conditions)
	}
	e.waitEvents(got, ev{"Warning", "Failed", `Failed to pull image "` + img + `": ` + want})
}

// TestBlackHoleThenRestore black-holes the node's route to public ECR (the
// registry itself is fine), then restores it.
func TestBlackHoleThenRestore(t *testing.T) {
	reg := registries.New(t)
	registries.SeedRunbook(t, reg)
	hole := registries.BlackHole(t)
	e := newEnv(t, WithPullTimeout(500*time.Millisecond), WithMirrors(map[string]string{registries.PublicECR: reg.Host}))
	e.sim.SetRoute(registries.PublicECR, hole.Host)
	img := "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1"
	p := e.pod("ui", img)
	w := e.waitWaiting(p.Name, "app", "ErrImagePull")
	want := `rpc error: code = DeadlineExceeded desc = failed to pull and unpack image "` + img + `": failed to resolve reference "` + img +
		`": failed to do request: Head "https://public.ecr.aws/v2/aws-containers/retail-store-sample-ui/manifests/1.2.1": dial tcp ` + dialAddr("public.ecr.aws") + `: i/o timeout`
	if w.Message != want {
		t.Errorf("got  %q\nwant %q", w.Message, want)
	}
	if hole.Accepted() == 0 {
		t.Error("the black hole saw no connection")
	}
	e.sim.SetRoute(registries.PublicECR, "")
	e.waitRunning(p.Name)
}

// TestInPlaceImageChange changes the image of a running bare pod: the
// container is restarted on the new image, which fails, and the pod stays
// Running but not Ready.
func TestInPlaceImageChange(t *testing.T) {
	reg := registries.New(t)
	registries.SeedRunbook(t, reg)
	e := newEnv(t, WithMirrors(map[string]string{registries.PublicECR: reg.Host}))
	p := e.pod("ui", "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1")
	e.waitRunning(p.Name)
	bad := "public.ecr.aws/aws-containers/retail-store-sample-ui:9.9.9"
	patch := fmt.Sprintf(`{"spec":{"containers":[{"name":"app","image":%q}]}}`, bad)
	if _, err := e.cs.CoreV1().Pods(e.ns).Patch(t.Context(), p.Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitWaiting(p.Name, "app", "ImagePullBackOff")
	got, _ := e.cs.CoreV1().Pods(e.ns).Get(t.Context(), p.Name, metav1.GetOptions{})
	cs := got.Status.ContainerStatuses[0]
	if got.Status.Phase != corev1.PodRunning || cs.RestartCount != 1 || cs.LastTerminationState.Terminated == nil || cs.Ready {
		t.Errorf("phase %s, status %+v", got.Status.Phase, cs)
	}
}
