package watch

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/testenv/registries"
	"github.com/pullfix/pullfix/internal/watch/creds"
	"github.com/pullfix/pullfix/internal/watch/fix"
	"github.com/pullfix/pullfix/internal/watch/workload"
)

const approver = "@alice (U123)"

// botRules is everything the fix.Patcher needs, and nothing more: in
// particular no list on secrets and no update (only patch).
var botRules = []rbacv1.PolicyRule{
	{APIGroups: []string{"apps"}, Resources: []string{"deployments", "statefulsets", "daemonsets"}, Verbs: []string{"get", "list", "watch", "patch"}},
	{APIGroups: []string{"batch"}, Resources: []string{"cronjobs", "jobs"}, Verbs: []string{"get", "list", "watch", "patch"}},
	{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "patch", "delete"}},
	{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"list"}},
	{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}},
	// list: CheckFix looks for a resumed fix's audit Event (reconcile.go).
	{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "list"}},
}

// botClient creates the bot's ServiceAccount and Role in e's namespace and
// returns a client authenticated as it with a real token, so every fix in
// these tests runs under the least privilege the chart grants.
func botClient(t *testing.T, e *env) kubernetes.Interface {
	t.Helper()
	return saClient(t, e, "pullfix-bot", botRules)
}

// saClient creates a ServiceAccount bound to a Role with rules and returns
// a client acting as it, once the Role is in effect.
func saClient(t *testing.T, e *env, name string, rules []rbacv1.PolicyRule) kubernetes.Interface {
	t.Helper()
	ctx := t.Context()
	if _, err := e.cs.CoreV1().ServiceAccounts(e.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.RbacV1().Roles(e.ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.RbacV1().RoleBindings(e.ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: e.ns}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cfg, err := cp.ServiceAccountConfig(ctx, e.ns, name)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "the Role in effect", func(ctx context.Context) (bool, error) {
		_, err := cs.AppsV1().Deployments(e.ns).Get(ctx, "no-such-deployment", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	return cs
}

// waitIncident waits for the watcher's incident on a workload and returns
// its key: the fixes below act on exactly what the Slack side would pass.
func waitIncident(t *testing.T, e *env, wl Workload) Key {
	t.Helper()
	var key Key
	poll(t, 60*time.Second, "incident for "+wl.String(), func(context.Context) (bool, error) {
		for _, inc := range e.w.Incidents() {
			if inc.Key.Workload == wl {
				key = inc.Key
				return true, nil
			}
		}
		return false, nil
	})
	return key
}

// eventsFor lists the Events on a workload with a reason.
func eventsFor(t *testing.T, e *env, kind, name, reason string) []corev1.Event {
	t.Helper()
	sel := fields.Set{"involvedObject.kind": kind, "involvedObject.name": name, "reason": reason}.AsSelector().String()
	list, err := e.cs.CoreV1().Events(e.ns).List(t.Context(), metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	return list.Items
}

// writtenByBot reports whether pullfix ever wrote the object: its
// managedFields then name the bot's field manager. (The resourceVersion
// moves with every status write of the controllers, so on a live workload
// it proves nothing.)
func writtenByBot(obj metav1.Object) bool {
	for _, mf := range obj.GetManagedFields() {
		if mf.Manager == fix.DefaultFieldManager {
			return true
		}
	}
	return false
}

func (e *env) getDeployment(name string) *appsv1.Deployment {
	e.t.Helper()
	d, err := e.cs.AppsV1().Deployments(e.ns).Get(e.t.Context(), name, metav1.GetOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// TestFixRunbook is the runbook's fix end to end, as the bot's own
// identity: ui-new's image is set to the verified candidate, the revision
// carries the approver in its change-cause, an Event says who approved,
// the rollout is followed to 1/1 and the watcher resolves the incident.
func TestFixRunbook(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	p := newPatcher(t, botClient(t, e), fix.WithRolloutDeadline(2*time.Minute))
	e.deployment("ui-new", badImage, 1)
	key := waitIncident(t, e, Workload{Kind: "Deployment", Name: "ui-new"})
	if key.Image != badImage || key.Container != "ui" {
		t.Fatalf("incident key %+v", key)
	}

	began := time.Now()
	res, err := p.SetImage(ctx, fix.FixRequest{Key: key, NewImage: goodImage, Approver: approver})
	if err != nil {
		t.Fatal(err)
	}
	patched := time.Since(began)
	if res.OldImage != badImage || res.NewImage != goodImage || res.Container != "ui" || res.Workload != key.Workload ||
		res.Generation != 2 || res.Applied.IsZero() || len(res.Warnings) != 0 {
		t.Errorf("result %+v", res)
	}
	d := e.getDeployment("ui-new")
	if img := d.Spec.Template.Spec.Containers[0].Image; img != goodImage {
		t.Errorf("image %q, want exactly %q", img, goodImage)
	}
	wantCause := "pullfix: image " + badImage + " → " + goodImage + ", approved by " + approver
	if got := d.Annotations[fix.ChangeCauseAnnotation]; got != wantCause {
		t.Errorf("change-cause %q, want %q", got, wantCause)
	}
	if !writtenByBot(d) {
		t.Errorf("no managedFields entry for %q: %+v", fix.DefaultFieldManager, d.ManagedFields)
	}

	var updates []fix.RolloutStatus
	st, err := p.FollowRollout(ctx, key, func(s fix.RolloutStatus) { updates = append(updates, s) })
	if err != nil {
		t.Fatalf("follow: %v (status %+v)", err, st)
	}
	ready := time.Since(began)
	if want := "ui-new 1/1 Running on retail-store-sample-ui:1.2.1"; !st.Ready || st.Summary != want {
		t.Errorf("final status %+v, want ready %q", st, want)
	}
	if len(updates) == 0 || updates[len(updates)-1].Summary != st.Summary {
		t.Errorf("progress %+v, want the final status last", updates)
	}
	t.Logf("patched in %s, ready after %s; progress: %v", patched.Round(time.Millisecond), ready.Round(time.Millisecond), summaries(updates))

	// kubectl rollout history: the new revision's ReplicaSet carries the
	// change-cause.
	rss, err := e.cs.AppsV1().ReplicaSets(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=ui-new"})
	if err != nil {
		t.Fatal(err)
	}
	history := map[string]string{}
	for _, rs := range rss.Items {
		history[rs.Annotations["deployment.kubernetes.io/revision"]] = rs.Spec.Template.Spec.Containers[0].Image + " | " + rs.Annotations[fix.ChangeCauseAnnotation]
	}
	if history["2"] != goodImage+" | "+wantCause || history["1"] != badImage+" | " {
		t.Errorf("rollout history %q", history)
	}

	evs := eventsFor(t, e, "Deployment", "ui-new", fix.ReasonImageUpdated)
	if len(evs) != 1 {
		t.Fatalf("%d ImageUpdated events, want 1", len(evs))
	}
	ev := evs[0]
	if ev.Type != corev1.EventTypeNormal || ev.Source.Component != "pullfix" || ev.ReportingController != "pullfix" ||
		ev.InvolvedObject.UID != d.UID || !strings.Contains(ev.Message, badImage) || !strings.Contains(ev.Message, goodImage) ||
		!strings.Contains(ev.Message, approver) {
		t.Errorf("event %+v", ev)
	}

	poll(t, 60*time.Second, "the watcher resolves the incident", func(context.Context) (bool, error) {
		_, resolved := e.rec.snapshot()
		return len(resolved) == 1, nil
	})
}

func summaries(sts []fix.RolloutStatus) []string {
	out := make([]string, len(sts))
	for i, s := range sts {
		out[i] = s.Summary
	}
	return out
}

// TestPatchRefusesStaleImage: someone changed the image after the
// diagnosis, before or during the fix; pullfix writes nothing.
func TestPatchRefusesStaleImage(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	bot := botClient(t, e)
	other := "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.0"
	key := Key{Namespace: e.ns, Workload: Workload{Kind: "Deployment", Name: "before"}, Container: "ui", Image: badImage}

	t.Run("changed before the click", func(t *testing.T) {
		e.deployment("before", badImage, 1)
		e.setImage("before", other)
		gen := e.getDeployment("before").Generation
		_, err := newPatcher(t, bot).SetImage(ctx, fix.FixRequest{Key: key, NewImage: goodImage, Approver: approver})
		var se *fix.StaleError
		if !errors.As(err, &se) || se.Container != "ui" || se.Want != badImage || se.Got != other || !errors.Is(err, fix.ErrConflict) {
			t.Fatalf("err = %v, want *fix.StaleError{ui, %s, %s}", err, badImage, other)
		}
		if d := e.getDeployment("before"); d.Generation != gen || writtenByBot(d) || d.Annotations[fix.ChangeCauseAnnotation] != "" {
			t.Errorf("written: generation %d → %d, annotations %v", gen, d.Generation, d.Annotations)
		}
	})

	t.Run("changed between dry run and patch", func(t *testing.T) {
		e.deployment("during", badImage, 1)
		p := newPatcher(t, bot)
		p.BeforePatch(func() { e.setImage("during", other) })
		k := key
		k.Name = "during"
		_, err := p.SetImage(ctx, fix.FixRequest{Key: k, NewImage: goodImage, Approver: approver})
		var se *fix.StaleError
		if !errors.As(err, &se) || se.Got != other {
			t.Fatalf("err = %v, want *fix.StaleError naming %s", err, other)
		}
		d := e.getDeployment("during")
		if img := d.Spec.Template.Spec.Containers[0].Image; img != other || writtenByBot(d) || d.Annotations[fix.ChangeCauseAnnotation] != "" {
			t.Errorf("the concurrent edit was overwritten: image %s, annotations %v", img, d.Annotations)
		}
	})
	for _, name := range []string{"before", "during"} {
		if evs := eventsFor(t, e, "Deployment", name, fix.ReasonImageUpdated); len(evs) != 0 {
			t.Errorf("%s: %d ImageUpdated events for a refused fix", name, len(evs))
		}
	}
}

// barrier lets n callers through together.
type barrier struct {
	mu   sync.Mutex
	n    int
	open chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, open: make(chan struct{})} }

func (b *barrier) wait() {
	b.mu.Lock()
	if b.n--; b.n == 0 {
		close(b.open)
	}
	b.mu.Unlock()
	<-b.open
}

// TestSecondPatchDoesNothing: a second click, after the first or racing
// it, changes nothing: the generation moves once, one Event is recorded.
func TestSecondPatchDoesNothing(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	bot := botClient(t, e)

	t.Run("after", func(t *testing.T) {
		e.deployment("twice", badImage, 1)
		gen := e.getDeployment("twice").Generation
		p := newPatcher(t, bot)
		req := fix.FixRequest{Key: Key{Namespace: e.ns, Workload: Workload{Kind: "Deployment", Name: "twice"}, Container: "ui", Image: badImage}, NewImage: goodImage, Approver: approver}
		if _, err := p.SetImage(ctx, req); err != nil {
			t.Fatal(err)
		}
		first := e.getDeployment("twice")
		_, err := p.SetImage(ctx, req)
		var se *fix.StaleError
		if !errors.As(err, &se) || se.Got != goodImage || !errors.Is(err, fix.ErrConflict) {
			t.Fatalf("second click: err = %v, want *fix.StaleError (already %s)", err, goodImage)
		}
		second := e.getDeployment("twice")
		if first.Generation != gen+1 || second.Generation != first.Generation {
			t.Errorf("generation %d → %d → %d: want one bump", gen, first.Generation, second.Generation)
		}
		if evs := eventsFor(t, e, "Deployment", "twice", fix.ReasonImageUpdated); len(evs) != 1 {
			t.Errorf("%d events, want 1", len(evs))
		}
	})

	t.Run("racing", func(t *testing.T) {
		e.deployment("race", badImage, 1)
		gen := e.getDeployment("race").Generation
		// Both clicks pass the re-read and the dry run before either
		// patches: only the test operation can keep the second out.
		p := newPatcher(t, bot)
		b := newBarrier(2)
		p.BeforePatch(b.wait)
		req := fix.FixRequest{Key: Key{Namespace: e.ns, Workload: Workload{Kind: "Deployment", Name: "race"}, Container: "ui", Image: badImage}, NewImage: goodImage, Approver: approver}
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() { _, errs[i] = p.SetImage(ctx, req) })
		}
		wg.Wait()
		ok, conflicts := 0, 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, fix.ErrConflict):
				conflicts++
			default:
				t.Errorf("unexpected error %v", err)
			}
		}
		if ok != 1 || conflicts != 1 {
			t.Errorf("%d applied, %d conflicts (%v), want 1 and 1", ok, conflicts, errs)
		}
		if d := e.getDeployment("race"); d.Generation != gen+1 {
			t.Errorf("generation %d → %d, want one bump", gen, d.Generation)
		}
		if evs := eventsFor(t, e, "Deployment", "race", fix.ReasonImageUpdated); len(evs) != 1 {
			t.Errorf("%d events, want 1", len(evs))
		}
	})
}

// TestDryRunCatchesInvalidChange: a change the API server refuses (here an
// admission policy that forbids :latest, as a cluster's Kyverno or
// Gatekeeper would) is caught by the dry run; nothing is written and no
// Event claims a change.
func TestDryRunCatchesInvalidChange(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	bot := botClient(t, e)
	name := "pullfix-no-latest-" + e.ns
	const msg = "images must be pinned: no :latest"
	pol := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
					Rule:       admissionv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"deployments"}},
				},
			}}},
			Validations: []admissionv1.Validation{{
				Expression: "object.spec.template.spec.containers.all(c, !c.image.endsWith(':latest'))",
				Message:    msg,
			}},
		},
	}
	if _, err := e.cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, pol, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	if _, err := e.cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources: &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{corev1.LabelMetadataName: e.ns},
			}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	e.deployment("ui-new", badImage, 1)
	latest := "public.ecr.aws/aws-containers/retail-store-sample-ui:latest"
	poll(t, 30*time.Second, "the policy in effect", func(ctx context.Context) (bool, error) {
		patch := fmt.Sprintf(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":%q}]`, latest)
		_, err := e.cs.AppsV1().Deployments(e.ns).Patch(ctx, "ui-new", types.JSONPatchType, []byte(patch), metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), msg), nil
	})
	before := e.getDeployment("ui-new")

	key := Key{Namespace: e.ns, Workload: Workload{Kind: "Deployment", Name: "ui-new"}, Container: "ui", Image: badImage}
	_, err := newPatcher(t, bot).SetImage(ctx, fix.FixRequest{Key: key, NewImage: latest, Approver: approver})
	var dre *fix.DryRunError
	if !errors.As(err, &dre) || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("err = %v, want *fix.DryRunError with the policy's message", err)
	}
	t.Logf("refused: %v", err)
	after := e.getDeployment("ui-new")
	if after.Generation != before.Generation || writtenByBot(after) || after.Spec.Template.Spec.Containers[0].Image != badImage {
		t.Errorf("written despite the dry run: generation %d → %d, image %s", before.Generation, after.Generation, after.Spec.Template.Spec.Containers[0].Image)
	}
	if evs := eventsFor(t, e, "Deployment", "ui-new", fix.ReasonImageUpdated); len(evs) != 0 {
		t.Errorf("%d events for a change that did not happen", len(evs))
	}
	// A pinned image passes the same policy.
	if _, err := newPatcher(t, bot).SetImage(ctx, fix.FixRequest{Key: key, NewImage: goodImage, Approver: approver}); err != nil {
		t.Errorf("pinned image: %v", err)
	}
}

// TestSetImageRefusals: requests refused before anything is written, each
// with an error a person can act on.
func TestSetImageRefusals(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	p := newPatcher(t, botClient(t, e))
	e.deployment("ui-new", badImage, 1)
	jobTpl := podTemplate("batch", badImage)
	jobTpl.Spec.RestartPolicy = corev1.RestartPolicyNever
	if _, err := e.cs.BatchV1().Jobs(e.ns).Create(ctx, &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "batch"}, Spec: batchv1.JobSpec{Template: jobTpl}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dep := Key{Namespace: e.ns, Workload: Workload{Kind: "Deployment", Name: "ui-new"}, Container: "ui", Image: badImage}
	with := func(f func(*Key)) Key { k := dep; f(&k); return k }
	cases := []struct {
		name     string
		req      fix.FixRequest
		check    func(error) bool
		contains string
	}{
		{"upper-case repository", fix.FixRequest{Key: dep, NewImage: "public.ecr.aws/aws-containers/Retail-UI:1", Approver: approver},
			func(err error) bool { var re *diagnose.ReferenceError; return errors.As(err, &re) }, "upper-case"},
		{"unrendered template", fix.FixRequest{Key: dep, NewImage: "public.ecr.aws/ui:{{ .Values.tag }}", Approver: approver},
			func(err error) bool { var re *diagnose.ReferenceError; return errors.As(err, &re) }, "unrendered template"},
		{"no approver", fix.FixRequest{Key: dep, NewImage: goodImage},
			func(err error) bool { return err != nil }, "approver"},
		{"container gone", fix.FixRequest{Key: with(func(k *Key) { k.Container = "sidecar" }), NewImage: goodImage, Approver: approver},
			func(err error) bool { var se *fix.StaleError; return errors.As(err, &se) && se.Got == "" }, `no container "sidecar"`},
		{"workload gone", fix.FixRequest{Key: with(func(k *Key) { k.Name = "ui-old" }), NewImage: goodImage, Approver: approver},
			func(err error) bool { return errors.Is(err, ErrWorkloadNotFound) }, `"ui-old"`},
		{"job", fix.FixRequest{Key: with(func(k *Key) { k.Workload = Workload{Kind: "Job", Name: "batch"} }), NewImage: goodImage, Approver: approver},
			func(err error) bool { var ne *fix.NotPatchableError; return errors.As(err, &ne) }, "immutable"},
	}
	before := e.getDeployment("ui-new").Generation
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := p.SetImage(ctx, c.req)
			if err == nil || !c.check(err) || !strings.Contains(err.Error(), c.contains) {
				t.Errorf("err = %v, want one saying %q", err, c.contains)
			}
		})
	}
	if after := e.getDeployment("ui-new"); after.Generation != before || writtenByBot(after) {
		t.Errorf("generation %d → %d: a refused request wrote", before, after.Generation)
	}
	if j, _ := e.cs.BatchV1().Jobs(e.ns).Get(ctx, "batch", metav1.GetOptions{}); j.Spec.Template.Spec.Containers[0].Image != badImage {
		t.Errorf("job changed")
	}
}

// TestSetImageWorkloadKinds: each patchable kind, at its own image path
// (an init container, a CronJob's jobTemplate, a bare pod in place), is
// fixed and followed to ready.
func TestSetImageWorkloadKinds(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	p := newPatcher(t, botClient(t, e), fix.WithRolloutDeadline(90*time.Second), fix.WithDeleteStuckStatefulSetPods(true))
	sel := func(app string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}
	}
	type kindCase struct {
		wl        Workload
		container string
		create    func() error
		image     func() (string, map[string]string) // image at the path, annotations
		summary   string
	}
	cases := []kindCase{
		{
			wl: Workload{Kind: "StatefulSet", Name: "db"}, container: "ui",
			create: func() error {
				_, err := e.cs.AppsV1().StatefulSets(e.ns).Create(ctx, &appsv1.StatefulSet{
					ObjectMeta: metav1.ObjectMeta{Name: "db"},
					Spec:       appsv1.StatefulSetSpec{Replicas: ptr(int32(2)), Selector: sel("db"), Template: podTemplate("db", badImage)},
				}, metav1.CreateOptions{})
				return err
			},
			image: func() (string, map[string]string) {
				s, _ := e.cs.AppsV1().StatefulSets(e.ns).Get(ctx, "db", metav1.GetOptions{})
				return s.Spec.Template.Spec.Containers[0].Image, s.Annotations
			},
			summary: "db 2/2 Running on retail-store-sample-ui:1.2.1",
		},
		{
			wl: Workload{Kind: "DaemonSet", Name: "agent"}, container: "ui",
			create: func() error {
				tpl := podTemplate("agent", badImage)
				// Only this test's node: nodes of earlier tests linger.
				tpl.Spec.NodeSelector = map[string]string{corev1.LabelHostname: e.ns + "-node"}
				_, err := e.cs.AppsV1().DaemonSets(e.ns).Create(ctx, &appsv1.DaemonSet{
					ObjectMeta: metav1.ObjectMeta{Name: "agent"},
					Spec:       appsv1.DaemonSetSpec{Selector: sel("agent"), Template: tpl},
				}, metav1.CreateOptions{})
				return err
			},
			image: func() (string, map[string]string) {
				s, _ := e.cs.AppsV1().DaemonSets(e.ns).Get(ctx, "agent", metav1.GetOptions{})
				return s.Spec.Template.Spec.Containers[0].Image, s.Annotations
			},
			summary: "agent 1/1 Running on retail-store-sample-ui:1.2.1",
		},
		{
			wl: Workload{Kind: "Deployment", Name: "init"}, container: "setup",
			create: func() error {
				tpl := podTemplate("init", goodImage)
				tpl.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: badImage}}
				_, err := e.cs.AppsV1().Deployments(e.ns).Create(ctx, &appsv1.Deployment{
					ObjectMeta: metav1.ObjectMeta{Name: "init"},
					Spec:       appsv1.DeploymentSpec{Replicas: ptr(int32(1)), Selector: sel("init"), Template: tpl},
				}, metav1.CreateOptions{})
				return err
			},
			image: func() (string, map[string]string) {
				d := e.getDeployment("init")
				return d.Spec.Template.Spec.InitContainers[0].Image, d.Annotations
			},
			summary: "init 1/1 Running on retail-store-sample-ui:1.2.1",
		},
		{
			wl: Workload{Kind: "Pod", Name: "bare"}, container: "ui",
			create: func() error {
				tpl := podTemplate("bare", badImage)
				_, err := e.cs.CoreV1().Pods(e.ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bare", Labels: tpl.Labels}, Spec: tpl.Spec}, metav1.CreateOptions{})
				return err
			},
			image: func() (string, map[string]string) {
				po, _ := e.cs.CoreV1().Pods(e.ns).Get(ctx, "bare", metav1.GetOptions{})
				return po.Spec.Containers[0].Image, po.Annotations
			},
			summary: "bare 1/1 Running on retail-store-sample-ui:1.2.1",
		},
		{
			wl: Workload{Kind: "CronJob", Name: "nightly"}, container: "ui",
			create: func() error {
				tpl := podTemplate("nightly", badImage)
				tpl.Spec.RestartPolicy = corev1.RestartPolicyNever
				_, err := e.cs.BatchV1().CronJobs(e.ns).Create(ctx, &batchv1.CronJob{
					ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
					Spec: batchv1.CronJobSpec{Schedule: "0 3 * * *", Suspend: ptr(true), JobTemplate: batchv1.JobTemplateSpec{
						Spec: batchv1.JobSpec{Template: tpl},
					}},
				}, metav1.CreateOptions{})
				return err
			},
			image: func() (string, map[string]string) {
				c, _ := e.cs.BatchV1().CronJobs(e.ns).Get(ctx, "nightly", metav1.GetOptions{})
				return c.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image, c.Annotations
			},
			summary: "nightly: the next Job it creates runs retail-store-sample-ui:1.2.1 (Jobs created before keep their image)",
		},
	}
	for _, c := range cases {
		if err := c.create(); err != nil {
			t.Fatalf("%s: %v", c.wl, err)
		}
	}
	for _, c := range cases {
		t.Run(c.wl.Kind, func(t *testing.T) {
			key := Key{Namespace: e.ns, Workload: c.wl, Container: c.container, Image: badImage}
			if c.wl.Kind != "CronJob" {
				// Fix what is actually failing, as the incident would.
				key = waitIncident(t, e, c.wl)
				if key.Container != c.container {
					t.Fatalf("incident key %+v", key)
				}
			}
			res, err := p.SetImage(ctx, fix.FixRequest{Key: key, NewImage: goodImage, Approver: approver})
			if err != nil {
				t.Fatal(err)
			}
			// An OrderedReady StatefulSet never replaces its stuck db-0:
			// the patcher deletes it (it never ran); nothing else is deleted.
			if want := map[string]string{"StatefulSet": "db-0"}[c.wl.Kind]; strings.Join(res.Recreated, ",") != want || len(res.Warnings) != 0 {
				t.Errorf("recreated %v (warnings %v), want %q", res.Recreated, res.Warnings, want)
			}
			img, ann := c.image()
			if img != goodImage || !strings.HasPrefix(ann[fix.ChangeCauseAnnotation], "pullfix: image "+badImage+" → "+goodImage) {
				t.Errorf("image %q, annotations %v", img, ann)
			}
			if evs := eventsFor(t, e, c.wl.Kind, c.wl.Name, fix.ReasonImageUpdated); len(evs) != 1 {
				t.Errorf("%d events", len(evs))
			}
			st, err := p.FollowRollout(ctx, key, nil)
			if err != nil || !st.Ready || st.Summary != c.summary {
				t.Errorf("follow: %v; status %+v, want %q", err, st, c.summary)
			}
		})
	}
}

// TestFollowRolloutDeadline: a fix to an image that does not pull either
// is reported as still failing, with the kubelet's reason, at the deadline.
func TestFollowRolloutDeadline(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	p := newPatcher(t, botClient(t, e), fix.WithRolloutDeadline(8*time.Second))
	e.deployment("ui-new", badImage, 2)
	key := waitIncident(t, e, Workload{Kind: "Deployment", Name: "ui-new"})
	still := "public.ecr.aws/aws-containers/retail-store-sample-ui:9.9.9"
	if _, err := p.SetImage(ctx, fix.FixRequest{Key: key, NewImage: still, Approver: approver}); err != nil {
		t.Fatal(err)
	}
	var last fix.RolloutStatus
	st, err := p.FollowRollout(ctx, key, func(s fix.RolloutStatus) { last = s })
	if !errors.Is(err, fix.ErrRolloutDeadline) || st.Ready {
		t.Fatalf("err = %v, status %+v: want the deadline", err, st)
	}
	// What the deadline promises: the failing pod by name, its image-pull
	// reason (ErrImagePull or ImagePullBackOff: whichever phase of the
	// kubelet's back-off cycle the deadline lands in, both are true) and the
	// cause classified from the kubelet's words (containerd's bare "not found":
	// the repository or the tag). Not which phase it is.
	if len(st.Failing) == 0 || last.Summary != st.Summary {
		t.Fatalf("status %+v (last progress %q)", st, last.Summary)
	}
	f := st.Failing[0]
	want := diagnose.Classify(f.Reason, f.Message).Cause
	if !workload.IsImagePullReason(f.Reason) || f.Image != still || f.Cause != want || want != diagnose.ImageNotFound ||
		!strings.Contains(st.Summary, "still failing: "+f.Pod+" "+f.Reason) || !strings.Contains(st.Summary, want.Title()) {
		t.Errorf("status %+v: want the pod %s, its reason %s and the cause %q named", st, f.Pod, f.Reason, want.Title())
	}
	t.Logf("deadline summary: %s", st.Summary)
}

// TestFollowRolloutForbidden: without list/watch on pods the follow-up
// fails at once, naming the missing permission, instead of retrying
// silently until the deadline.
func TestFollowRolloutForbidden(t *testing.T) {
	e := newEnv(t)
	cs := saClient(t, e, "get-only", []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list", "watch"}},
	})
	e.deployment("ui-new", goodImage, 1)
	began := time.Now()
	_, err := newPatcher(t, cs, fix.WithRolloutDeadline(time.Minute)).FollowRollout(t.Context(),
		Key{Namespace: e.ns, Workload: Workload{Kind: "Deployment", Name: "ui-new"}, Container: "ui", Image: badImage}, nil)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "may not list and watch") || time.Since(began) > 45*time.Second {
		t.Errorf("err = %v after %s, want a prompt forbidden error", err, time.Since(began))
	}
}

// TestAddPullSecretFor401: a registry that requires login refuses the
// pods; among the namespace's referenced secrets (found without listing
// Secrets) the one that works is proven by a probe, added to the template,
// and the pods pull and run.
func TestAddPullSecretFor401(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	bot := botClient(t, e)
	p := newPatcher(t, bot, fix.WithRolloutDeadline(90*time.Second))
	reg := registries.New(t, registries.WithBearerAuth(registries.BearerAuth{
		Users: map[string]string{"ci": "s3cret", "team": "t3am"}, RequireLogin: true,
	}))
	reg.Push(t, "team/app:1.0", "linux/amd64")
	image := reg.Ref("team/app:1.0")

	pullSecret := func(name, host, user, pw string) {
		cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{
			"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pw)),
		}}})
		if _, err := e.cs.CoreV1().Secrets(e.ns).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Type: corev1.SecretTypeDockerConfigJson,
			Data: map[string][]byte{corev1.DockerConfigJsonKey: cfg},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	pullSecret("regcred", reg.Host, "ci", "s3cret")                 // works; named by a ServiceAccount
	pullSecret("stale-cred", reg.Host, "ci", "expired")             // wrong password
	pullSecret("team-cred", reg.Host, "team", "t3am")               // works; named only by a pod
	pullSecret("hub-cred", "https://index.docker.io/v1/", "x", "y") // another registry
	pullSecret("unlisted", reg.Host, "ci", "s3cret")                // works, but nothing references it
	if _, err := e.cs.CoreV1().Secrets(e.ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "opaque"}, Type: corev1.SecretTypeOpaque, Data: map[string][]byte{"k": []byte("v")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.CoreV1().ServiceAccounts(e.ns).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta:       metav1.ObjectMeta{Name: "builder"},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}, {Name: "stale-cred"}, {Name: "opaque"}, {Name: "gone"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A pod bound to a node nobody runs: it only carries a reference.
	if _, err := e.cs.CoreV1().Pods(e.ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "worker"},
		Spec: corev1.PodSpec{NodeName: "elsewhere", ImagePullSecrets: []corev1.LocalObjectReference{{Name: "team-cred"}},
			Containers: []corev1.Container{{Name: "w", Image: image}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The broken workload already names a secret, for another registry.
	tpl := podTemplate("app", image)
	tpl.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "hub-cred"}}
	if _, err := e.cs.AppsV1().Deployments(e.ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: tpl.Labels}, Template: tpl},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	key := waitIncident(t, e, Workload{Kind: "Deployment", Name: "app"})
	if key.Image != image {
		t.Fatalf("incident key %+v", key)
	}

	if _, err := bot.CoreV1().Secrets(e.ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("the bot may list secrets (err %v): the test would prove nothing", err)
	}
	prober, err := diagnose.NewProber(diagnose.WithTimeout(2 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	amd64 := diagnose.Platform{OS: "linux", Architecture: "amd64"}
	began := time.Now()
	found, err := creds.FindWorkingPullSecrets(ctx, bot, e.ns, image, amd64, prober)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("found %v in %s", found, time.Since(began).Round(time.Millisecond))
	if strings.Join(found, ",") != "regcred,team-cred" {
		t.Errorf("working secrets %v, want [regcred team-cred]", found)
	}
	if found, err := creds.FindWorkingPullSecrets(ctx, bot, e.ns, image, amd64, prober, creds.WithMaxSecrets(1)); err != nil || strings.Join(found, ",") != "regcred" {
		t.Errorf("bounded to 1: %v, %v", found, err)
	}

	for _, bad := range []struct{ secret, says string }{{"opaque", "not a pull secret"}, {"gone", "does not exist"}} {
		if _, err := p.AddPullSecret(ctx, fix.PullSecretRequest{Key: key, Secret: bad.secret, Approver: approver}); err == nil || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("add %s: err = %v, want %q", bad.secret, err, bad.says)
		}
	}
	res, err := p.AddPullSecret(ctx, fix.PullSecretRequest{Key: key, Secret: "regcred", Approver: approver})
	if err != nil {
		t.Fatal(err)
	}
	if res.PullSecret != "regcred" || res.OldImage != image || res.NewImage != image || res.Generation != 2 {
		t.Errorf("result %+v", res)
	}
	d := e.getDeployment("app")
	if got := d.Spec.Template.Spec.ImagePullSecrets; len(got) != 2 || got[0].Name != "hub-cred" || got[1].Name != "regcred" {
		t.Errorf("imagePullSecrets %v, want [hub-cred regcred]", got)
	}
	if want := "pullfix: imagePullSecret regcred added for image " + image + ", approved by " + approver; d.Annotations[fix.ChangeCauseAnnotation] != want {
		t.Errorf("change-cause %q, want %q", d.Annotations[fix.ChangeCauseAnnotation], want)
	}
	if evs := eventsFor(t, e, "Deployment", "app", fix.ReasonPullSecretAdded); len(evs) != 1 || !strings.Contains(evs[0].Message, approver) {
		t.Errorf("events %+v", evs)
	}
	st, err := p.FollowRollout(ctx, key, nil)
	if err != nil || !st.Ready || st.Summary != "app 1/1 Running on app:1.0" {
		t.Errorf("follow: %v, %+v", err, st)
	}

	gen := e.getDeployment("app").Generation
	if _, err := p.AddPullSecret(ctx, fix.PullSecretRequest{Key: key, Secret: "regcred", Approver: approver}); !errors.Is(err, fix.ErrPullSecretPresent) {
		t.Errorf("second add: err = %v, want fix.ErrPullSecretPresent", err)
	}
	if got := e.getDeployment("app").Generation; got != gen || len(eventsFor(t, e, "Deployment", "app", fix.ReasonPullSecretAdded)) != 1 {
		t.Errorf("second add wrote: generation %d → %d", gen, got)
	}
}

// TestAddPullSecretCreatesList: a template without imagePullSecrets gets
// the list created under a test that it is still absent; a bare pod is
// refused (its pull secrets are immutable).
func TestAddPullSecretCreatesList(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	p := newPatcher(t, botClient(t, e))
	if _, err := e.cs.CoreV1().Secrets(e.ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"registry.example.com":{"auth":"dTpw"}}}`)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cs.AppsV1().StatefulSets(e.ns).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr(int32(0)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: podTemplate("db", badImage)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	key := Key{Namespace: e.ns, Workload: Workload{Kind: "StatefulSet", Name: "db"}, Container: "ui", Image: badImage}
	if _, err := p.AddPullSecret(ctx, fix.PullSecretRequest{Key: key, Secret: "regcred", Approver: approver}); err != nil {
		t.Fatal(err)
	}
	s, err := e.cs.AppsV1().StatefulSets(e.ns).Get(ctx, "db", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Spec.Template.Spec.ImagePullSecrets; len(got) != 1 || got[0].Name != "regcred" || s.Annotations[fix.ChangeCauseAnnotation] == "" {
		t.Errorf("imagePullSecrets %v, annotations %v", got, s.Annotations)
	}
	_, err = p.AddPullSecret(ctx, fix.PullSecretRequest{Key: Key{Namespace: e.ns, Workload: Workload{Kind: "Pod", Name: "x"}, Container: "ui", Image: badImage}, Secret: "regcred", Approver: approver})
	var ne *fix.NotPatchableError
	if !errors.As(err, &ne) {
		t.Errorf("bare pod: err = %v, want *fix.NotPatchableError", err)
	}
}

// TestStatefulSetStuckPodsNotDeletedByDefault: without the opt-in the
// patcher deletes nothing (the chart grants no delete) and says which pod to
// delete by hand.
func TestStatefulSetStuckPodsNotDeletedByDefault(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	if _, err := e.cs.AppsV1().StatefulSets(e.ns).Create(ctx, &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "db"},
		Spec: appsv1.StatefulSetSpec{Replicas: ptr(int32(1)), Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: podTemplate("db", badImage)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, 60*time.Second, "db-0 failing", func(context.Context) (bool, error) { return len(e.w.Incidents()) == 1, nil })
	key := e.w.Incidents()[0].Key
	res, err := newPatcher(t, botClient(t, e)).SetImage(ctx, fix.FixRequest{Key: key, NewImage: goodImage, Approver: "@alice"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Recreated) != 0 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "delete pod db-0") {
		t.Errorf("recreated %v, warnings %v: want db-0 named for deletion by hand", res.Recreated, res.Warnings)
	}
	if _, err := e.cs.CoreV1().Pods(e.ns).Get(ctx, "db-0", metav1.GetOptions{}); err != nil {
		t.Errorf("db-0 was deleted without the opt-in: %v", err)
	}
}

// TestFixThroughTheWatcher: a click's fix goes through the watcher, which
// owns the incident: a candidate the diagnosis did not verify is refused
// before anything is sent, the verified one is patched and followed to
// ready, and the watcher then posts no "resolved" of its own — the fixer
// reported it — while the incident closes.
func TestFixThroughTheWatcher(t *testing.T) {
	e := newCluster(t)
	ctx := t.Context()
	w := e.start(e.rec, WithPatcher(newPatcher(t, botClient(t, e), fix.WithRolloutDeadline(2*time.Minute)))).w
	e.deployment("ui-new", badImage, 1)
	var inc Incident
	poll(t, 60*time.Second, "the incident notified with a candidate", func(context.Context) (bool, error) {
		for _, o := range e.rec.openedFor("ui-new") {
			got, _ := w.Incident(o.ID)
			inc = got
			return got.NotifyRef != "" && got.Diagnosis != nil && len(got.Diagnosis.Candidates) > 0, nil
		}
		return false, nil
	})
	cand := inc.Diagnosis.Candidates[0]
	if cand.Image != goodImage {
		t.Fatalf("candidate %+v, want %s", cand, goodImage)
	}
	if err := w.MarkFixing(ctx, inc.ID, "U0ALICE"); err != nil {
		t.Fatal(err)
	}
	if _, err := w.SetImage(ctx, inc.ID, "c-forged", approver); !fix.IsRefusal(err) {
		t.Fatalf("SetImage of an unverified candidate: %v, want a refusal", err)
	}
	if d := e.getDeployment("ui-new"); writtenByBot(d) {
		t.Fatal("an unverified candidate was written")
	}
	res, err := w.SetImage(ctx, inc.ID, cand.ID, approver)
	if err != nil || res.NewImage != goodImage {
		t.Fatalf("SetImage = %+v, %v", res, err)
	}
	st, d, err := w.FollowFix(ctx, inc.ID, nil)
	if err != nil || !st.Ready || d != nil {
		t.Fatalf("FollowFix = %+v, %v, %v; want ready", st, d, err)
	}
	poll(t, 60*time.Second, "the incident closed", func(context.Context) (bool, error) {
		got, _ := w.Incident(inc.ID)
		return got.State == StateResolved, nil
	})
	if _, resolved := e.rec.snapshot(); len(resolved) != 0 {
		t.Errorf("the watcher posted resolved %+v after the fixer reported it", resolved)
	}
}

// newPatcher is fix.NewPatcher for tests: options are the tests' own.
func newPatcher(t *testing.T, cs kubernetes.Interface, opts ...fix.PatcherOption) *fix.Patcher {
	t.Helper()
	p, err := fix.NewPatcher(cs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
