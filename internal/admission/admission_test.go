package admission_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	typedapps "k8s.io/client-go/kubernetes/typed/apps/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"

	"github.com/pullfix/pullfix/internal/admission"
	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/testenv/controlplane"
	"github.com/pullfix/pullfix/internal/testenv/registries"
	"github.com/pullfix/pullfix/internal/watch/creds"
)

var cp *controlplane.ControlPlane

func TestMain(m *testing.M) { os.Exit(controlplane.Run(m, &cp)) }

const (
	badImage  = "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1"
	goodImage = "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1"
	// otherGood is a good image that is never a candidate, so its probe
	// is not answered by a candidate's verification.
	otherGood = "public.ecr.aws/aws-containers/retail-store-sample-catalog:1.2.1"
	botNS     = "pullfix-system"
)

// headsUps records the notifier's calls.
type headsUps struct {
	mu   sync.Mutex
	list []admission.HeadsUp
}

func (h *headsUps) HeadsUp(_ context.Context, hu admission.HeadsUp) {
	h.mu.Lock()
	h.list = append(h.list, hu)
	h.mu.Unlock()
}

func (h *headsUps) all() []admission.HeadsUp {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]admission.HeadsUp(nil), h.list...)
}

type env struct {
	// namespaces maps the test's names to the namespaces made for this
	// run (a random suffix: a -count run's namespaces may still be
	// terminating).
	namespaces map[string]string
	cs         kubernetes.Interface // admin, collecting warnings into warn
	warn       *controlplane.Warnings
	metrics    *admission.Metrics
	notes      *headsUps
	budget     time.Duration
}

type envConfig struct {
	registryHost string // what public.ecr.aws is mirrored to
	budget       time.Duration
	deny         []string
	timeout      int32 // the webhook's timeoutSeconds
	namespaces   []string
	mirrors      map[string]string // more registry hosts → loopback registries
}

// newEnv runs the webhook on 127.0.0.1 with the bot's own certificates
// (the CA Secret in botNS, the caBundle patched into the configuration)
// and registers it with the real API server the way the chart does:
// failurePolicy Ignore, kube-system and the bot's namespace excluded.
func newEnv(t *testing.T, c envConfig) *env {
	t.Helper()
	controlplane.Require(t, cp)
	ctx := t.Context()
	cfg := cp.AdminConfig()
	admin, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	suffix := strings.ToLower(rand.Text()[:5])
	names := map[string]string{}
	for _, ns := range c.namespaces {
		names[ns] = ns + "-" + suffix
	}
	var deny []string
	for _, ns := range c.deny {
		deny = append(deny, names[ns])
	}
	for _, ns := range append([]string{botNS}, c.namespaces...) {
		if n, ok := names[ns]; ok {
			ns = n
			t.Cleanup(func() { _ = admin.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
		}
		_, err := admin.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	mirrors := diagnose.Mirrors{registries.PublicECR: c.registryHost}
	for k, v := range c.mirrors {
		mirrors[k] = v
	}
	prober, err := diagnose.NewProber(diagnose.WithMirrors(mirrors), diagnose.WithTimeout(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := &env{namespaces: names, warn: &controlplane.Warnings{}, metrics: admission.NewMetrics(nil), notes: &headsUps{}, budget: c.budget}
	checker := admission.NewChecker(admission.CheckerConfig{Client: admin, Prober: prober, Diagnoser: diagnose.NewDiagnoser(prober),
		ReadSecrets: true, Logger: log, ECR: creds.ECRKeychainFromEnv(os.Getenv)})
	h := admission.NewHandler(admission.HandlerConfig{Checker: checker, Budget: c.budget, Deny: deny, Notifier: e.notes, Metrics: e.metrics, Logger: log})

	name := "pullfix-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	timeout := c.timeout
	if timeout == 0 {
		timeout = 5
	}
	createWebhookConfig(t, admin, name, timeout)
	_, cert, err := admission.SelfSigned(ctx, admin, botNS, "pullfix-admission-ca", name, []string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	sctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	addr, err := admission.Serve(sctx, "127.0.0.1:0", func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert, nil }, h, log)
	if err != nil {
		t.Fatal(err)
	}
	setURL(t, admin, name, fmt.Sprintf("https://%s%s", addr, admission.Path))

	wcfg := rest.CopyConfig(cfg)
	wcfg.WarningHandler = e.warn
	if e.cs, err = kubernetes.NewForConfig(wcfg); err != nil {
		t.Fatal(err)
	}
	waitActive(t, e, e.ns(c.namespaces[0]))
	return e
}

// ns is the namespace made for the test's name base.
func (e *env) ns(base string) string {
	if n, ok := e.namespaces[base]; ok {
		return n
	}
	panic("no namespace " + base + " in this env")
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// createWebhookConfig registers the webhook as the chart does (its URL is
// set once the server listens); removed when the test ends.
func createWebhookConfig(t *testing.T, cs kubernetes.Interface, name string, timeout int32) {
	t.Helper()
	ignore := admissionregistrationv1.Ignore
	none := admissionregistrationv1.SideEffectClassNone
	equivalent := admissionregistrationv1.Equivalent
	url := "https://127.0.0.1:1/validate" // replaced by setURL
	ops := []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update}
	rule := func(group, version string, resources ...string) admissionregistrationv1.RuleWithOperations {
		scope := admissionregistrationv1.NamespacedScope
		return admissionregistrationv1.RuleWithOperations{Operations: ops, Rule: admissionregistrationv1.Rule{
			APIGroups: []string{group}, APIVersions: []string{version}, Resources: resources, Scope: &scope}}
	}
	vwc := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{{
			Name:                    "images.pullfix.dev",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url},
			AdmissionReviewVersions: []string{"v1"},
			SideEffects:             &none,
			FailurePolicy:           &ignore,
			MatchPolicy:             &equivalent,
			TimeoutSeconds:          &timeout,
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system", botNS}}}},
			Rules: []admissionregistrationv1.RuleWithOperations{
				rule("apps", "v1", "deployments", "statefulsets", "daemonsets"),
				rule("batch", "v1", "cronjobs", "jobs"),
				rule("", "v1", "pods"),
			},
			MatchConditions: []admissionregistrationv1.MatchCondition{{
				Name:       "not-controller-owned",
				Expression: admission.MatchNotControllerOwned,
			}},
		}},
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(t.Context(), vwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, name, metav1.DeleteOptions{})
	})
}

func setURL(t *testing.T, cs kubernetes.Interface, name, url string) {
	t.Helper()
	api := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	vwc, err := api.Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	vwc.Webhooks[0].ClientConfig.URL = &url
	if _, err := api.Update(t.Context(), vwc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitActive waits until the API server calls the webhook: a dry-run
// Deployment with an invalid reference (no registry request) is warned.
func waitActive(t *testing.T, e *env, ns string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		d := deployment("probe-active", "Not:A:Valid:Ref")
		_, err := e.cs.AppsV1().Deployments(ns).Create(t.Context(), d, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil && !apierrors.IsForbidden(err) {
			t.Fatalf("dry-run create: %v", err)
		}
		if err != nil || len(e.warn.Take()) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the API server never called the webhook")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func deployment(name, image string) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "ui", Image: image}}},
			},
		},
	}
}

func TestAdmissionWarnsOnMissingImage(t *testing.T) {
	reg := registries.New(t)
	registries.SeedRunbook(t, reg)
	e := newEnv(t, envConfig{registryHost: reg.Host, budget: admission.DefaultBudget, namespaces: []string{"shop"}})
	ctx := t.Context()
	deps := e.cs.AppsV1().Deployments(e.ns("shop"))

	// The runbook's ui-new: the warning names what the registry showed and
	// the verified candidate.
	if _, err := deps.Create(ctx, deployment("ui-new", badImage), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := "image " + badImage + ": repository not found at public.ecr.aws; " + goodImage + " exists"
	if got := e.warn.Take(); len(got) != 1 || got[0] != want {
		t.Fatalf("warnings = %q, want [%q]", got, want)
	}
	t.Logf("kubectl apply would print:\nWarning: %s\ndeployment.apps/ui-new created", want)
	waitFor(t, "one heads-up", func() bool { return len(e.notes.all()) == 1 })
	hu := e.notes.all()[0]
	if hu.Namespace != e.ns("shop") || hu.Kind != "Deployment" || hu.Name != "ui-new" || len(hu.Findings) != 1 || hu.Findings[0].Text != want {
		t.Errorf("heads-up = %+v", hu)
	}

	// A good image: no warning; asked once, then from the cache.
	reg.ResetLog()
	if _, err := deps.Create(ctx, deployment("catalog", otherGood), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := e.warn.Take(); len(got) != 0 {
		t.Fatalf("good image warned: %q", got)
	}
	if n := reg.CountPath("/manifests/"); n != 1 {
		t.Fatalf("first apply of a good image: %d manifest requests, want 1 (%v)", n, reg.Requests())
	}
	reg.ResetLog()
	if _, err := deps.Create(ctx, deployment("catalog-2", otherGood), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	update(t, e, deps, "catalog", func(d *appsv1.Deployment) { // a change that keeps the image
		d.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "X", Value: "1"}}
	})
	if got := e.warn.Take(); len(got) != 0 {
		t.Fatalf("warned: %q", got)
	}
	if n := reg.Count(); n != 0 {
		t.Fatalf("second apply of a good image and an update that keeps it: %d registry requests, want 0: %v", n, reg.Requests())
	}

	// Changing the image to the bad one warns (update path); its answer is cached.
	reg.ResetLog()
	update(t, e, deps, "catalog", func(d *appsv1.Deployment) { d.Spec.Template.Spec.Containers[0].Image = badImage })
	got := e.warn.Take()
	if len(got) != 1 || !strings.HasPrefix(got[0], "image "+badImage+": repository not found at public.ecr.aws; ") {
		t.Fatalf("update to the bad image: warnings %q", got)
	}
	if n := reg.Count(); n != 0 {
		t.Errorf("the bad image again: %d registry requests, want 0 (cached): %v", n, reg.Requests())
	}

	// A dry run is warned but sends no heads-up.
	before := len(e.notes.all())
	if _, err := deps.Create(ctx, deployment("ui-dry", badImage), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatal(err)
	}
	if got := e.warn.Take(); len(got) != 1 || got[0] != want {
		t.Fatalf("dry run: warnings = %q", got)
	}

	// Every reviewed kind: a bare Pod, a Job, a CronJob, a StatefulSet, a DaemonSet.
	spec := corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "ui", Image: badImage}}}
	tmpl := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "k"}}, Spec: spec}
	kinds := []struct {
		kind   string
		create func() error
	}{
		{"Pod", func() error {
			_, err := e.cs.CoreV1().Pods(e.ns("shop")).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bare"}, Spec: spec}, metav1.CreateOptions{})
			return err
		}},
		{"Job", func() error {
			_, err := e.cs.BatchV1().Jobs(e.ns("shop")).Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "job"}, Spec: batchv1.JobSpec{Template: tmpl}}, metav1.CreateOptions{})
			return err
		}},
		{"CronJob", func() error {
			_, err := e.cs.BatchV1().CronJobs(e.ns("shop")).Create(ctx, cronJob("cron", tmpl), metav1.CreateOptions{})
			return err
		}},
		{"StatefulSet", func() error {
			tm := tmpl
			tm.Spec.RestartPolicy = corev1.RestartPolicyAlways
			_, err := e.cs.AppsV1().StatefulSets(e.ns("shop")).Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "sts"},
				Spec: appsv1.StatefulSetSpec{Selector: &metav1.LabelSelector{MatchLabels: tm.Labels}, Template: tm}}, metav1.CreateOptions{})
			return err
		}},
		{"DaemonSet", func() error {
			tm := tmpl
			tm.Spec.RestartPolicy = corev1.RestartPolicyAlways
			_, err := e.cs.AppsV1().DaemonSets(e.ns("shop")).Create(ctx, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "ds"},
				Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: tm.Labels}, Template: tm}}, metav1.CreateOptions{})
			return err
		}},
	}
	for _, k := range kinds {
		if err := k.create(); err != nil {
			t.Fatalf("%s: %v", k.kind, err)
		}
		if got := e.warn.Take(); len(got) != 1 || got[0] != want {
			t.Errorf("%s: warnings = %q, want [%q]", k.kind, got, want)
		}
	}
	// One heads-up per workload applied with a warning: ui-new, catalog
	// (its update, however many times it was retried), and the five kinds;
	// none for a dry run.
	waitFor(t, "a heads-up per applied workload", func() bool { return len(e.notes.all()) == before+len(kinds) })
	names := map[string]int{}
	for _, hu := range e.notes.all() {
		names[hu.Kind+"/"+hu.Name]++
	}
	wantNames := map[string]int{"Deployment/ui-new": 1, "Deployment/catalog": 1, "Pod/bare": 1, "Job/job": 1, "CronJob/cron": 1, "StatefulSet/sts": 1, "DaemonSet/ds": 1}
	if fmt.Sprint(names) != fmt.Sprint(wantNames) {
		t.Errorf("heads-ups = %v, want %v", names, wantNames)
	}

	// The namespaces the chart excludes are never reviewed.
	reviewed := e.metrics.Total()
	for _, ns := range []string{"kube-system", botNS} {
		if _, err := e.cs.AppsV1().Deployments(ns).Create(ctx, deployment("excluded", badImage), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Fatal(err)
		}
		if got := e.warn.Take(); len(got) != 0 {
			t.Errorf("%s: warned %q", ns, got)
		}
	}
	if n := e.metrics.Total(); n != reviewed {
		t.Errorf("reviews in excluded namespaces: %v", n-reviewed)
	}
	if n := e.metrics.Count(admission.ResultWarned); n < 8 {
		t.Errorf("warned reviews counted: %v", n)
	}
}

func TestAdmissionDenyRefusesWithSameWords(t *testing.T) {
	reg := registries.New(t)
	registries.SeedRunbook(t, reg)
	e := newEnv(t, envConfig{registryHost: reg.Host, budget: admission.DefaultBudget, deny: []string{"strict"}, namespaces: []string{"strict", "lenient"}})
	ctx := t.Context()
	want := "image " + badImage + ": repository not found at public.ecr.aws; " + goodImage + " exists"
	denied := e.metrics.Count(admission.ResultDenied) // waitActive's may have been denied

	_, err := e.cs.AppsV1().Deployments(e.ns("strict")).Create(ctx, deployment("ui-new", badImage), metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("deny namespace: err = %v, want Forbidden", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("denial %q does not carry the warning's words %q", err, want)
	}
	t.Logf("kubectl apply would print:\nError from server: %v", err)
	if _, gerr := e.cs.AppsV1().Deployments(e.ns("strict")).Get(ctx, "ui-new", metav1.GetOptions{}); !apierrors.IsNotFound(gerr) {
		t.Fatalf("denied Deployment exists: %v", gerr)
	}
	// A good image in the deny namespace is admitted, and the other
	// namespace only warns.
	if _, err := e.cs.AppsV1().Deployments(e.ns("strict")).Create(ctx, deployment("ui", goodImage), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.AppsV1().Deployments(e.ns("lenient")).Create(ctx, deployment("ui-new", badImage), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := e.warn.Take(); len(got) != 1 || got[0] != want {
		t.Fatalf("lenient namespace: warnings = %q", got)
	}
	if n := e.metrics.Count(admission.ResultDenied) - denied; n != 1 {
		t.Errorf("denied reviews: %v, want 1", n)
	}
}

func TestAdmissionNeverBlocksWhenRegistryHangs(t *testing.T) {
	hole := registries.BlackHole(t)
	budget := time.Second
	// The webhook's own timeout is far above the budget: only the budget
	// can make the apply quick.
	e := newEnv(t, envConfig{registryHost: hole.Host, budget: budget, timeout: 15, deny: []string{"hang"}, namespaces: []string{"hang"}})
	start := time.Now()
	_, err := e.cs.AppsV1().Deployments(e.ns("hang")).Create(t.Context(), deployment("ui-new", badImage), metav1.CreateOptions{})
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("apply refused while the registry hangs (deny mode on): %v", err)
	}
	t.Logf("apply answered in %s with a %s budget", elapsed.Round(time.Millisecond), budget)
	if elapsed > budget+3*time.Second {
		t.Errorf("apply took %s; the budget is %s", elapsed, budget)
	}
	if got := e.warn.Take(); len(got) != 0 {
		t.Errorf("warnings while the registry hangs: %q", got)
	}
	if hole.Accepted() == 0 {
		t.Error("the black hole was never dialled: the budget was not what ended the review")
	}
	if n := e.metrics.Count(admission.ResultBudget); n != 1 {
		t.Errorf("budget_exceeded reviews = %v, want 1", n)
	}

	// While it hangs, the next apply naming it is not held at all: the
	// registry is not dialled again.
	dialled := hole.Accepted()
	if _, err := e.cs.AppsV1().Deployments(e.ns("hang")).Create(t.Context(), deployment("ui-new-2", badImage+"-2"), metav1.CreateOptions{}); err != nil {
		t.Fatalf("second apply: %v", err)
	}
	if got := e.warn.Take(); len(got) != 0 {
		t.Errorf("warnings: %q", got)
	}
	if hole.Accepted() != dialled {
		t.Errorf("the hanging registry was dialled again within %s", admission.SlowHostTTL)
	}
	if n := e.metrics.Count(admission.ResultSlowRegistry); n != 1 {
		t.Errorf("slow_registry reviews = %v, want 1", n)
	}
}

// update changes a Deployment, retrying on a conflict with the controller's
// status writes.
// Only the last attempt's warnings are kept (each attempt is reviewed: the
// webhook runs before the write's conflict check).
func update(t *testing.T, e *env, deps typedapps.DeploymentInterface, name string, change func(*appsv1.Deployment)) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		e.warn.Take()
		d, err := deps.Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		change(d)
		_, err = deps.Update(t.Context(), d, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func newAdmin(t *testing.T) kubernetes.Interface {
	t.Helper()
	controlplane.Require(t, cp)
	cs, err := kubernetes.NewForConfig(cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func cronJob(name string, tmpl corev1.PodTemplateSpec) *batchv1.CronJob {
	return &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: batchv1.CronJobSpec{
		Schedule: "0 0 1 1 *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: tmpl}}}}
}
