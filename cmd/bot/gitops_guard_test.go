package main

// The server side of a click (issue #17): the patcher's write guards refuse
// a GitOps-owned workload's default fix and a write the approver's own
// RBAC does not allow, whatever the Slack side did — the Patcher is called
// directly here, with no message and no pre-check.

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/approval"
	"github.com/pullfix/pullfix/internal/gitops"
	"github.com/pullfix/pullfix/internal/testenv/controlplane"
	"github.com/pullfix/pullfix/internal/watch"
	"github.com/pullfix/pullfix/internal/watch/fix"
)

// newGuards builds the GitOps guard and the RBAC binding as runWatch does.
func newGuards(cfg Config, cs kubernetes.Interface, dyn dynamic.Interface, log *slog.Logger) (*gitops.Guard, *approval.Binding, error) {
	rbac, err := approval.NewBinding(cs, cfg.SlackRBACMapping)
	return gitops.NewGuard(cs, dyn, gitops.GuardConfig{AllowTemporary: cfg.GitOpsTemporaryPatch, ArgoNamespace: cfg.ArgoCDNamespace}, log), rbac, err
}

// writeGuards are the patcher options runWatch gives.
func writeGuards(g *gitops.Guard, rbac *approval.Binding) []fix.PatcherOption {
	return append([]fix.PatcherOption{g.PatcherOption()}, rbac.PatcherOptions()...)
}

// guardWorld is a namespace on the real control plane with an admin client.
func guardWorld(t *testing.T, prefix string) (kubernetes.Interface, dynamic.Interface, string) {
	t.Helper()
	controlplane.Require(t, cp)
	admin, err := kubernetes.NewForConfig(cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	ns := prefix + "-" + strings.ToLower(time.Now().Format("150405.000000"))
	ns = strings.ReplaceAll(ns, ".", "")
	ensureNamespace(t, admin, ns)
	return admin, dyn, ns
}

// plainDeployment creates a Deployment (never scheduled: no node) with the
// runbook's broken image and the given metadata.
func plainDeployment(t *testing.T, cs kubernetes.Interface, ns, name string, labels, ann map[string]string) *appsv1.Deployment {
	t.Helper()
	sel := map[string]string{"app": name}
	l := map[string]string{"app": name}
	for k, v := range labels {
		l[k] = v
	}
	d, err := cs.AppsV1().Deployments(ns).Create(t.Context(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l, Annotations: ann},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "ui", Image: badImage}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func fixKey(ns, name string) watch.Key {
	return watch.Key{Namespace: ns, Workload: watch.Workload{Kind: "Deployment", Name: name}, Container: "ui", Image: badImage}
}

// TestPatcherGuardsGitOpsWrites: with the Argo CD Application and the Flux
// Kustomization and GitRepository readable, the patcher refuses the
// default fix of every GitOps-owned Deployment (nothing written), lets a
// temporary patch through only with the opt-in and — for Argo CD — with
// self-heal off, marks it TEMPORARY in the change-cause, and patches a
// plain Deployment as before. The owners' sources are read as the message
// shows them.
func TestPatcherGuardsGitOpsWrites(t *testing.T) {
	admin, dyn, ns := guardWorld(t, "guard-gitops")
	argoNS := ns + "-argocd"
	ensureNamespace(t, admin, argoNS)
	createCustom(t, dyn, "argoproj.io", "v1alpha1", "applications", "Application", argoNS, "heal", map[string]any{
		"source":     map[string]any{"repoURL": "https://git.example/heal.git", "path": "ui", "targetRevision": "v2"},
		"syncPolicy": map[string]any{"automated": map[string]any{"selfHeal": true}},
	})
	createCustom(t, dyn, "argoproj.io", "v1alpha1", "applications", "Application", argoNS, "manual", map[string]any{
		"source": map[string]any{"repoURL": "https://git.example/manual.git", "path": "ui"},
		// automated sync switched off explicitly: selfHeal does nothing then.
		"syncPolicy": map[string]any{"automated": map[string]any{"enabled": false, "selfHeal": true}},
	})
	createCustom(t, dyn, "source.toolkit.fluxcd.io", "v1", "gitrepositories", "GitRepository", ns, "fleet", map[string]any{
		"url": "ssh://git@git.example/fleet", "ref": map[string]any{"branch": "main"}, "interval": "1m",
	})
	createCustom(t, dyn, "kustomize.toolkit.fluxcd.io", "v1", "kustomizations", "Kustomization", ns, "apps", map[string]any{
		"path": "./apps/shop", "interval": "10m", "sourceRef": map[string]any{"kind": "GitRepository", "name": "fleet"},
	})
	track := func(app, name string) map[string]string {
		return map[string]string{gitops.ArgoTrackingAnnotation: argoNS + "_" + app + ":apps/Deployment:" + ns + "/" + name}
	}
	flux := map[string]string{gitops.FluxKustomizeName: "apps", gitops.FluxKustomizeNamespace: ns}

	for _, tc := range []struct {
		name        string
		labels, ann map[string]string
		allowTemp   bool
		temporary   bool
		applied     bool
		refusal     string // in the error when refused
		owner       string // the owner's summary, as the message shows it
	}{
		{"argo-heal-default", nil, track("heal", "argo-heal-default"), true, false, false, "self-heal is on",
			"Argo CD Application " + argoNS + "/heal from https://git.example/heal.git path ui @ v2"},
		{"argo-heal-temp", nil, track("heal", "argo-heal-temp"), true, true, false, "self-heal is on and would revert it", ""},
		{"argo-manual-temp", nil, track("manual", "argo-manual-temp"), true, true, true, "",
			"Argo CD Application " + argoNS + "/manual from https://git.example/manual.git path ui @ HEAD"},
		{"argo-manual-temp-off", nil, track("manual", "argo-manual-temp-off"), false, true, false, "temporary live patches are off", ""},
		{"flux-default", flux, nil, true, false, false, "Flux re-applies Git every 10m",
			"Flux Kustomization " + ns + "/apps from ssh://git@git.example/fleet path ./apps/shop @ main"},
		{"flux-temp", flux, nil, true, true, true, "", ""},
		{"plain", nil, nil, false, false, true, "", ""},
		// Argo CD's label tracking: the Application of that name settles it.
		{"argo-label", map[string]string{gitops.ArgoInstanceLabel: "heal"}, nil, true, false, false, "self-heal is on", ""},
		// The same common label, and Argo CD has no such Application: not Argo CD's.
		{"instance-label-no-app", map[string]string{gitops.ArgoInstanceLabel: "web"}, nil, false, false, true, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := plainDeployment(t, admin, ns, tc.name, tc.labels, tc.ann)
			g, rbac, err := newGuards(Config{GitOpsTemporaryPatch: tc.allowTemp, ArgoCDNamespace: argoNS}, admin, dyn, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			if tc.owner != "" {
				o, ok := g.Policy().Resolver.Owner(t.Context(), before)
				if !ok || o.Summary() != tc.owner {
					t.Errorf("owner %q (%v), want %q", o.Summary(), ok, tc.owner)
				}
			}
			p, err := fix.NewPatcher(admin, writeGuards(g, rbac)...)
			if err != nil {
				t.Fatal(err)
			}
			_, err = p.SetImage(t.Context(), fix.FixRequest{Key: fixKey(ns, tc.name), NewImage: goodImage, Approver: "<@U0ALICE01> (Slack)", Temporary: tc.temporary})
			after, gerr := admin.AppsV1().Deployments(ns).Get(t.Context(), tc.name, metav1.GetOptions{})
			if gerr != nil {
				t.Fatal(gerr)
			}
			img, cause := after.Spec.Template.Spec.Containers[0].Image, after.Annotations[fix.ChangeCauseAnnotation]
			if !tc.applied {
				var refused *fix.WriteRefusedError
				var owned *gitops.OwnedError
				if !errors.As(err, &refused) || !errors.As(err, &owned) || !strings.Contains(err.Error(), tc.refusal) {
					t.Fatalf("SetImage: %v; want a refusal saying %q", err, tc.refusal)
				}
				if after.Generation != before.Generation || img != badImage || cause != "" {
					t.Errorf("refused, yet written: generation %d → %d, image %q, change-cause %q", before.Generation, after.Generation, img, cause)
				}
				t.Logf("refused: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("SetImage: %v", err)
			}
			if img != goodImage {
				t.Errorf("image %q, want %q", img, goodImage)
			}
			if tc.temporary != strings.Contains(cause, "TEMPORARY live patch") {
				t.Errorf("change-cause %q (temporary %v)", cause, tc.temporary)
			}
		})
	}
}

// TestPatcherGuardsApproverRBAC: with the mapping on, the patcher asks a
// SubjectAccessReview for the approver's identity before it writes: an
// identity RBAC refuses, and a call that carries no identity at all, write
// nothing; the allowed one patches, named in the change-cause.
func TestPatcherGuardsApproverRBAC(t *testing.T) {
	admin, dyn, ns := guardWorld(t, "guard-rbac")
	if _, err := admin.RbacV1().Roles(ns).Create(t.Context(), &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "deployers"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"patch"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.RbacV1().RoleBindings(ns).Create(t.Context(), &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "deployers"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "deployers"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "shop-deployers"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "the RoleBinding to take effect", func(ctx context.Context) (bool, error) {
		r, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: "probe", Groups: []string{"shop-deployers"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: "patch", Group: "apps", Resource: "deployments", Name: "x"}}}, metav1.CreateOptions{})
		return err == nil && r.Status.Allowed, nil
	})
	g, rbac, err := newGuards(Config{SlackRBACMapping: "U0ALICE01=alice|shop-deployers,U0BOB0001=bob"}, admin, dyn, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	p, err := fix.NewPatcher(admin, writeGuards(g, rbac)...)
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		user    string // "" sends no identity
		applied bool
		refusal string
	}{
		{"bob", "U0BOB0001", false, `kubernetes user "bob" to patch deployments.apps "bob"`},
		{"anonymous", "", false, "has no Kubernetes identity"},
		{"alice", "U0ALICE01", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := plainDeployment(t, admin, ns, tc.name, nil, nil)
			ctx, who := t.Context(), "<@U0NOBODY> (Slack)"
			if tc.user != "" {
				ctx, who, err = rbac.ActAs(ctx, tc.user)
				if err != nil {
					t.Fatal(err)
				}
			}
			_, err := p.SetImage(ctx, fix.FixRequest{Key: fixKey(ns, tc.name), NewImage: goodImage, Approver: who})
			after, _ := admin.AppsV1().Deployments(ns).Get(t.Context(), tc.name, metav1.GetOptions{})
			if !tc.applied {
				if err == nil || !strings.Contains(err.Error(), tc.refusal) {
					t.Fatalf("SetImage: %v; want a refusal saying %q", err, tc.refusal)
				}
				if after.Generation != before.Generation || after.Annotations[fix.ChangeCauseAnnotation] != "" {
					t.Errorf("refused, yet written: generation %d → %d", before.Generation, after.Generation)
				}
				var denied *approval.Denied
				if tc.user != "" && !errors.As(err, &denied) {
					t.Errorf("refusal %v is not RBAC's *approval.Denied", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("SetImage: %v", err)
			}
			if c := after.Annotations[fix.ChangeCauseAnnotation]; !strings.Contains(c, `as kubernetes user "alice" (groups shop-deployers)`) {
				t.Errorf("change-cause %q does not name alice's Kubernetes identity", c)
			}
		})
	}
}
