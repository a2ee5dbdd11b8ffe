package watch

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/testenv/controlplane"
	"github.com/pullfix/pullfix/internal/testenv/kubeletsim"
	"github.com/pullfix/pullfix/internal/testenv/registries"
	"github.com/pullfix/pullfix/internal/watch/creds"
)

var cp *controlplane.ControlPlane

func TestMain(m *testing.M) { os.Exit(controlplane.Run(m, &cp)) }

const (
	badImage  = "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1"
	goodImage = "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1"
)

// recorder is a Notifier that remembers every call, for assertions.
// Opened returns "ref-N", unique across the recorder.
type recorder struct {
	mu       sync.Mutex
	opened   []Incident
	openedAt []time.Time
	updated  []Incident
	resolved []Incident
	groups   []Group
}

func (r *recorder) Opened(_ context.Context, inc Incident) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.opened = append(r.opened, inc)
	r.openedAt = append(r.openedAt, time.Now())
	return fmt.Sprintf("ref-%d", len(r.opened)), nil
}

func (r *recorder) Updated(_ context.Context, inc Incident) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.updated = append(r.updated, inc)
	return nil
}

func (r *recorder) Resolved(_ context.Context, inc Incident) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resolved = append(r.resolved, inc)
	return nil
}

func (r *recorder) UpdatedGroup(_ context.Context, g Group) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.groups = append(r.groups, g)
	return nil
}

func (r *recorder) snapshot() (opened, resolved []Incident) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Incident(nil), r.opened...), append([]Incident(nil), r.resolved...)
}

func (r *recorder) updates() []Incident {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Incident(nil), r.updated...)
}

func (r *recorder) groupUpdates() []Group {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Group(nil), r.groups...)
}

// openedFor lists the Opened calls for one workload.
func (r *recorder) openedFor(workload string) []Incident {
	opened, _ := r.snapshot()
	var out []Incident
	for _, inc := range opened {
		if inc.Key.Name == workload {
			out = append(out, inc)
		}
	}
	return out
}

// env is one test's namespace with a kubelet simulator, a registry that
// serves the runbook's images as public.ecr.aws, and (newEnv) a running
// Watcher.
type env struct {
	t    *testing.T
	cs   kubernetes.Interface
	ns   string
	rec  *recorder
	w    *Watcher
	diag *diagnose.Diagnoser
	reg  *registries.Registry
	sim  *kubeletsim.Simulator
}

// newEnv is newCluster plus a Watcher without persistence or election.
func newEnv(t *testing.T) *env {
	t.Helper()
	e := newCluster(t)
	e.w = e.start(e.rec).w
	return e
}

// newCluster makes the test's namespace, registry, simulator and
// diagnoser; start runs Watchers against them.
func newCluster(t *testing.T) *env {
	t.Helper()
	controlplane.Require(t, cp)
	ctx := t.Context()
	cfg := cp.AdminConfig()
	cfg.QPS, cfg.Burst = 200, 400
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ns := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(ns) > 40 {
		ns = ns[:40]
	}
	// Unique per run: a namespace from an earlier -count run may still be
	// terminating.
	ns = strings.TrimRight(ns, "-") + "-" + rand.Text()[:5]
	ns = strings.ToLower(ns)
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	poll(t, 30*time.Second, "default ServiceAccount", func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	reg := registries.New(t)
	registries.SeedRunbook(t, reg)
	sim, err := kubeletsim.NewForConfig(cfg,
		kubeletsim.WithNamespace(ns), kubeletsim.WithNodeNames(ns+"-node"),
		kubeletsim.WithMirrors(map[string]string{registries.PublicECR: reg.Host}),
		kubeletsim.WithBackoff(100*time.Millisecond, time.Second), kubeletsim.WithPullTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Stop)
	p, err := diagnose.NewProber(diagnose.WithMirrors(diagnose.Mirrors{registries.PublicECR: reg.Host}), diagnose.WithTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, cs: cs, ns: ns, rec: &recorder{}, diag: diagnose.NewDiagnoser(p), reg: reg, sim: sim}
}

// running is a Watcher started by env.start.
type running struct {
	w      *Watcher
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// stop cancels the Watcher's context and waits for Run to return.
func (r *running) stop() error {
	r.once.Do(func() {
		r.cancel()
		r.err = <-r.done
	})
	return r.err
}

// start runs a Watcher on the test namespace that reports to n, and waits
// for its informers to sync. Options add to the test defaults.
//
// The first notification waits for the full diagnosis (no budget): a test
// that asserts what a diagnosis says must not depend on whether a loaded
// machine probed within 500 ms. The budget has tests of its own
// (refine_test.go), which set it.
func (e *env) start(n Notifier, opts ...Option) *running {
	e.t.Helper()
	opts = append([]Option{WithCluster("test"), WithNamespaces(e.ns), WithResolveTimeout(time.Minute), WithDiagnosisBudget(0)}, opts...)
	w, err := New(e.cs, e.diag, n, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	r := &running{w: w, done: make(chan error, 1)}
	var runCtx context.Context
	runCtx, r.cancel = context.WithCancel(context.Background())
	go func() { r.done <- r.w.Run(runCtx) }()
	e.t.Cleanup(func() {
		if err := r.stop(); err != nil {
			e.t.Errorf("watcher: %v", err)
		}
	})
	poll(e.t, 30*time.Second, "watcher synced", func(context.Context) (bool, error) { return r.w.HasSynced(), nil })
	return r
}

func poll(t *testing.T, timeout time.Duration, what string, cond wait.ConditionWithContextFunc) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, timeout, true, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func ptr[T any](v T) *T { return &v }

func podTemplate(app, image string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{
			Containers:                    []corev1.Container{{Name: "ui", Image: image}},
			TerminationGracePeriodSeconds: ptr(int64(0)),
		},
	}
}

func (e *env) deployment(name, image string, replicas int32) *appsv1.Deployment {
	e.t.Helper()
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: podTemplate(name, image),
		},
	}
	d, err := e.cs.AppsV1().Deployments(e.ns).Create(e.t.Context(), d, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func (e *env) setImage(name, image string) {
	e.t.Helper()
	patch := fmt.Sprintf(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":%q}]`, image)
	if _, err := e.cs.AppsV1().Deployments(e.ns).Patch(e.t.Context(), name, types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// TestDeploymentStormIsOneIncident: 20 failing pods of one Deployment make
// one incident with one notification, diagnosed as the runbook's missing
// repository with the verified fix; fixing the image resolves it once.
func TestDeploymentStormIsOneIncident(t *testing.T) {
	e := newEnv(t)
	e.deployment("ui-new", badImage, 20)

	poll(t, 60*time.Second, "20 failing pods in one notified incident", func(context.Context) (bool, error) {
		incs := e.w.Incidents()
		opened, _ := e.rec.snapshot()
		return len(incs) == 1 && len(incs[0].Pods) == 20 && len(opened) > 0, nil
	})
	opened, _ := e.rec.snapshot()
	if len(opened) != 1 {
		t.Fatalf("%d notifications for one broken Deployment, want 1", len(opened))
	}
	inc := opened[0]
	wantKey := Key{Cluster: "test", Namespace: e.ns, Workload: Workload{Kind: "Deployment", Name: "ui-new"}, Container: "ui", Image: badImage}
	if inc.Key != wantKey {
		t.Errorf("key = %+v, want %+v", inc.Key, wantKey)
	}
	d := inc.Diagnosis
	if d == nil {
		t.Fatal("notified without a diagnosis")
	}
	if d.Cause != diagnose.RepoNotFound {
		t.Errorf("cause = %s, want repo_not_found (summary %q)", d.Cause, d.Summary)
	}
	if len(d.Candidates) == 0 || d.Candidates[0].Image != goodImage {
		t.Errorf("candidates = %+v, want first %s", d.Candidates, goodImage)
	}
	if d.Target.Platform.String() != "linux/amd64" {
		t.Errorf("platform = %s, want the node's linux/amd64", d.Target.Platform)
	}

	e.setImage("ui-new", goodImage)
	poll(t, 90*time.Second, "resolved notification", func(context.Context) (bool, error) {
		_, resolved := e.rec.snapshot()
		return len(resolved) == 1, nil
	})
	opened, resolved := e.rec.snapshot()
	if len(opened) != 1 || len(resolved) != 1 || resolved[0].Key != wantKey || resolved[0].State != StateResolved {
		t.Errorf("after the fix: opened %d, resolved %+v", len(opened), resolved)
	}
	dep, err := e.cs.AppsV1().Deployments(e.ns).Get(t.Context(), "ui-new", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dep.Status.ReadyReplicas != 20 {
		t.Errorf("resolved with %d/20 ready: resolution must be observed, not assumed", dep.Status.ReadyReplicas)
	}
	if n := len(e.w.Incidents()); n != 0 {
		t.Errorf("%d incidents left after resolution", n)
	}
}

// TestWorkloadKinds: each kind of owner resolves to the workload a person
// names, one incident each.
func TestWorkloadKinds(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	sel := func(app string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}
	}
	if _, err := e.cs.AppsV1().StatefulSets(e.ns).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec:       appsv1.StatefulSetSpec{Replicas: ptr(int32(1)), Selector: sel("db"), Template: podTemplate("db", badImage)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.AppsV1().DaemonSets(e.ns).Create(ctx, &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec:       appsv1.DaemonSetSpec{Selector: sel("agent"), Template: podTemplate("agent", badImage)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A CronJob's Job: created by hand (the schedule would take a minute),
	// owned by the CronJob as the cronjob controller would.
	jobTpl := podTemplate("nightly", badImage)
	jobTpl.Spec.RestartPolicy = corev1.RestartPolicyNever
	cj, err := e.cs.BatchV1().CronJobs(e.ns).Create(ctx, &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
		Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", Suspend: ptr(true), JobTemplate: batchv1.JobTemplateSpec{
			Spec: batchv1.JobSpec{Template: jobTpl},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.BatchV1().Jobs(e.ns).Create(ctx, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly-1", OwnerReferences: []metav1.OwnerReference{{
			APIVersion: "batch/v1", Kind: "CronJob", Name: cj.Name, UID: cj.UID, Controller: ptr(true),
		}}},
		Spec: batchv1.JobSpec{Template: jobTpl},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bare := podTemplate("bare", badImage)
	if _, err := e.cs.CoreV1().Pods(e.ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bare", Labels: bare.Labels}, Spec: bare.Spec}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"StatefulSet/db": true, "DaemonSet/agent": true, "CronJob/nightly": true, "Pod/bare": true}
	poll(t, 60*time.Second, "one notification per workload", func(context.Context) (bool, error) {
		opened, _ := e.rec.snapshot()
		return len(opened) >= len(want), nil
	})
	opened, _ := e.rec.snapshot()
	got := map[string]bool{}
	for _, inc := range opened {
		if got[inc.Key.Workload.String()] {
			t.Errorf("%s notified twice", inc.Key.Workload)
		}
		got[inc.Key.Workload.String()] = true
	}
	for k := range want {
		if !got[k] {
			t.Errorf("no incident for %s; got %v", k, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("incidents for %v, want exactly %v", got, want)
	}
}

// TestDiagnoseWorkload: the on-demand path behind `bot diagnose` and
// `/pullfix`: the runbook's Deployment, a healthy one, an unknown one.
func TestDiagnoseWorkload(t *testing.T) {
	e := newEnv(t)
	e.deployment("ui-new", badImage, 2)
	e.deployment("ui-ok", goodImage, 1)
	poll(t, 60*time.Second, "ui-new failing, ui-ok ready", func(ctx context.Context) (bool, error) {
		ok, err := e.cs.AppsV1().Deployments(e.ns).Get(ctx, "ui-ok", metav1.GetOptions{})
		if err != nil || ok.Status.ReadyReplicas != 1 {
			return false, nil
		}
		return len(e.w.Incidents()) == 1 && len(e.w.Incidents()[0].Pods) == 2, nil
	})
	incs, err := DiagnoseWorkload(t.Context(), e.cs, e.diag, nil, "test", e.ns, Workload{Kind: "Deployment", Name: "ui-new"})
	if err != nil {
		t.Fatal(err)
	}
	if len(incs) != 1 || len(incs[0].Pods) != 2 || incs[0].Diagnosis.Cause != diagnose.RepoNotFound {
		t.Fatalf("ui-new: %+v", incs)
	}
	// The kubelet's bare "not found" says image_not_found; the registry
	// settled it (issue #12).
	if d := incs[0].Diagnosis; d.Certainty != diagnose.CertaintyRegistry || !strings.Contains(d.Summary, "the registry said so") {
		t.Errorf("ui-new: certainty %s, summary %q: want repo_not_found confirmed by the registry", d.Certainty, d.Summary)
	}
	if c := incs[0].Diagnosis.Candidates; len(c) == 0 || c[0].Image != goodImage {
		t.Errorf("ui-new candidates %+v", c)
	}
	incs, err = DiagnoseWorkload(t.Context(), e.cs, e.diag, nil, "test", e.ns, Workload{Kind: "Deployment", Name: "ui-ok"})
	if err != nil || len(incs) != 0 {
		t.Errorf("healthy ui-ok: %+v, %v", incs, err)
	}
	_, err = DiagnoseWorkload(t.Context(), e.cs, e.diag, nil, "test", e.ns, Workload{Kind: "Deployment", Name: "nope"})
	if !errors.Is(err, ErrWorkloadNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf("unknown workload: err = %v, want ErrWorkloadNotFound naming it", err)
	}
}

// TestOldClusterTakesErrorFromEvents: before Kubernetes 1.32 the back-off
// message names no error; the watcher takes the kubelet's Failed event.
func TestOldClusterTakesErrorFromEvents(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	// A pod on a node the simulator does not manage: the test plays an
	// old kubelet by hand.
	pod, err := e.cs.CoreV1().Pods(e.ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "legacy"},
		Spec:       corev1.PodSpec{NodeName: "old-node", Containers: []corev1.Container{{Name: "app", Image: "docker.io/library/nginx:1.99"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	msg := `Failed to pull image "nginx:1.99": rpc error: code = Unknown desc = Error response from daemon: manifest for nginx:1.99 not found: manifest unknown: manifest unknown`
	if _, err := e.cs.CoreV1().Events(e.ns).Create(ctx, &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Name: "legacy.1"},
		InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: e.ns, Name: pod.Name, UID: pod.UID},
		Reason:         "Failed", Message: msg, Type: corev1.EventTypeWarning,
		Source:        corev1.EventSource{Component: "kubelet", Host: "old-node"},
		LastTimestamp: metav1.Now(), FirstTimestamp: metav1.Now(), Count: 1,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod.Status.Phase = corev1.PodPending
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: "app", Image: "nginx:1.99",
		State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: `Back-off pulling image "nginx:1.99"`}},
	}}
	if _, err := e.cs.CoreV1().Pods(e.ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "legacy pod notified", func(context.Context) (bool, error) {
		opened, _ := e.rec.snapshot()
		return len(opened) == 1, nil
	})
	opened, _ := e.rec.snapshot()
	d := opened[0].Diagnosis
	if d.Target.Message != msg {
		t.Errorf("diagnosed message %q, want the event's %q", d.Target.Message, msg)
	}
	// The registry for docker.io is not mapped here, so only the offline
	// reading counts: the event says the tag is missing.
	if off := diagnose.Classify(d.Target.Reason, d.Target.Message); off.Cause != diagnose.TagNotFound {
		t.Errorf("event classified %s, want tag_not_found", off.Cause)
	}
}

// TestKeychainFromSecrets: a pull secret in the pod's namespace is matched
// the way the kubelet matches it, Docker Hub keys included.
func TestKeychainFromSecrets(t *testing.T) {
	mk := func(name, key, user string) *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Type:       corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(fmt.Sprintf(
				`{"auths":{%q:{"username":%q,"password":"pw"}}}`, key, user))},
		}
	}
	kc, errs := creds.KeychainFromSecrets([]*corev1.Secret{
		mk("hub", "https://index.docker.io/v1/", "hubuser"),
		mk("ecr", "123456789012.dkr.ecr.us-west-2.amazonaws.com", "AWS"),
		mk("glob", "*.example.com:5000", "globuser"),
		mk("team", "registry.example.com:5000/team", "teamuser"),
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "opaque"}, Type: corev1.SecretTypeOpaque},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "broken"}, Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte("{")}},
	})
	if len(errs) != 2 {
		t.Errorf("errors %v, want two (opaque, broken)", errs)
	}
	cases := []struct {
		host, repo string
		want       []string // users, most specific first
	}{
		{"index.docker.io", "library/nginx", []string{"hubuser"}},
		{"docker.io", "library/nginx", []string{"hubuser"}},
		{"123456789012.dkr.ecr.us-west-2.amazonaws.com", "app", []string{"AWS"}},
		{"registry.example.com:5000", "team/app", []string{"teamuser", "globuser"}},
		{"registry.example.com:5000", "other/app", []string{"globuser"}},
		{"registry.example.com", "team/app", nil}, // ports must agree
		{"quay.io", "x/y", nil},
	}
	for _, c := range cases {
		var got []string
		for _, cred := range kc.Matching(c.host, c.repo) {
			got = append(got, cred.Config.Username)
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("%s/%s: %v, want %v", c.host, c.repo, got, c.want)
		}
	}
	auth, err := kc.Resolve(name.MustParseReference("nginx:1").Context())
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := auth.Authorization()
	if cfg.Username != "hubuser" {
		t.Errorf("Docker Hub image resolved to %q, want hubuser", cfg.Username)
	}
}
