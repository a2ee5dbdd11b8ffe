package chart

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/pullfix/pullfix/internal/admission"
	"github.com/pullfix/pullfix/internal/testenv/controlplane"
)

// install is the chart rendered with one set of values and created on the
// test control plane, with a client that authenticates as the chart's
// service account through a real TokenRequest token.
type install struct {
	release, ns string   // release name and namespace (the bot's own)
	watched     []string // namespaces the bot should act in
	outside     string   // a namespace it must not touch
	objs        []*unstructured.Unstructured
	sa          string // the chart's ServiceAccount
	lease, cm   string // the Lease and state ConfigMap names the Deployment is given
	// webhook and caSecret: the admission webhook's configuration and CA
	// Secret (admission.enabled), "" when off.
	webhook, caSecret string
	admin             kubernetes.Interface
	saCfg             *rest.Config
	asSA              kubernetes.Interface
}

// installChart renders the chart with values, creates the namespaces it
// needs and every rendered object (Deployment, Service and PDB too: the API
// server validates them strictly; their pods never run), and returns the
// install with a service-account client.
func installChart(t *testing.T, h *Helm, release string, values map[string]any, watched []string) *install {
	t.Helper()
	ctx := t.Context()
	admin, err := kubernetes.NewForConfig(cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	in := &install{release: release, ns: release + "-system", watched: watched, outside: release + "-outside", admin: admin}
	for _, ns := range append([]string{in.ns, in.outside}, watched...) {
		createNamespace(t, admin, ns)
	}
	in.objs, err = h.Render(ctx, release, in.ns, values)
	if err != nil {
		t.Fatal(err)
	}
	if err := Create(ctx, cp.AdminConfig(), in.ns, in.objs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteClusterScoped(admin, in.objs) })
	sas := Find(in.objs, "ServiceAccount")
	if len(sas) != 1 {
		t.Fatalf("%d ServiceAccounts rendered, want 1", len(sas))
	}
	in.sa = sas[0].GetName()
	env := deploymentEnv(t, in.objs)
	in.lease, in.cm = env["PULLFIX_LEASE_NAME"], env["PULLFIX_STATE_CONFIGMAP"]
	in.webhook, in.caSecret = env["PULLFIX_ADMISSION_WEBHOOK_CONFIG"], env["PULLFIX_ADMISSION_CA_SECRET"]
	if in.lease == "" || in.cm == "" {
		t.Fatalf("the Deployment names no Lease (%q) or state ConfigMap (%q)", in.lease, in.cm)
	}
	in.saCfg, err = cp.ServiceAccountConfig(ctx, in.ns, in.sa)
	if err != nil {
		t.Fatal(err)
	}
	in.saCfg.QPS, in.saCfg.Burst = 200, 400
	if in.asSA, err = kubernetes.NewForConfig(in.saCfg); err != nil {
		t.Fatal(err)
	}
	// The authorizer learns of new bindings through its informers: wait
	// until every binding is in effect (one right from each), so a denial in
	// the tables is the chart's and not the cache's.
	probes := []access{
		{verb: "get", resource: "nodes", name: "n"},
		{verb: "create", resource: "configmaps", ns: in.ns},
	}
	for _, ns := range watched {
		probes = append(probes, access{verb: "list", resource: "pods", ns: ns})
	}
	for _, a := range probes {
		if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
			ok, _ := in.allowed(t, a)
			return ok, nil
		}); err != nil {
			t.Fatalf("the chart's RBAC never allowed %s: %v", a, err)
		}
	}
	return in
}

// uniqueName appends a random suffix: a namespace from an earlier -count
// run may still be terminating, and ClusterRoles are named after releases.
func uniqueName(prefix string) string {
	return prefix + "-" + strings.ToLower(rand.Text()[:5])
}

func createNamespace(t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	ctx := t.Context()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	// The service-account admission plugin refuses pods until the
	// namespace's default ServiceAccount exists.
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatalf("default ServiceAccount in %s: %v", ns, err)
	}
}

// deleteClusterScoped removes the ClusterRoles and ClusterRoleBindings a
// test created; namespaced objects go with their namespaces.
func deleteClusterScoped(cs kubernetes.Interface, objs []*unstructured.Unstructured) {
	ctx := context.Background()
	for _, o := range objs {
		switch o.GetKind() {
		case "ClusterRole":
			_ = cs.RbacV1().ClusterRoles().Delete(ctx, o.GetName(), metav1.DeleteOptions{})
		case "ClusterRoleBinding":
			_ = cs.RbacV1().ClusterRoleBindings().Delete(ctx, o.GetName(), metav1.DeleteOptions{})
		case "ValidatingWebhookConfiguration":
			_ = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(ctx, o.GetName(), metav1.DeleteOptions{})
		}
	}
}

// access is one request the API server authorizes. Namespace "" is
// cluster scope (a cluster-scoped kind, or a list across namespaces).
type access struct {
	verb, group, resource, sub, ns, name string
}

func (a access) String() string {
	r := a.resource
	if a.group != "" {
		r += "." + a.group
	}
	if a.sub != "" {
		r += "/" + a.sub
	}
	if a.name != "" {
		r += " " + a.name
	}
	where := "cluster-wide"
	if a.ns != "" {
		where = "in " + a.ns
	}
	return a.verb + " " + r + " " + where
}

// allowed asks the API server, as the service account itself
// (SelfSubjectAccessReview with its own token), whether it may do a.
func (in *install) allowed(t *testing.T, a access) (bool, string) {
	t.Helper()
	r, err := in.asSA.AuthorizationV1().SelfSubjectAccessReviews().Create(t.Context(), &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.sub, Namespace: a.ns, Name: a.name,
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("SelfSubjectAccessReview %s: %v", a, err)
	}
	return r.Status.Allowed, r.Status.Reason
}

// botAccess is every request the bot makes in a namespace it watches
// (internal/watch: the informers, inputs, owner resolution, on-demand
// diagnosis, pull-secret discovery, the Patcher and its rollout follower).
func botAccess(ns string, probing bool) []access {
	a := []access{
		{verb: "get", resource: "pods", ns: ns, name: "p"},
		{verb: "list", resource: "pods", ns: ns},
		{verb: "watch", resource: "pods", ns: ns},
		{verb: "patch", resource: "pods", ns: ns, name: "p"},
		{verb: "list", resource: "events", ns: ns},
		{verb: "watch", resource: "events", ns: ns},
		{verb: "create", resource: "events", ns: ns},
		{verb: "create", group: "events.k8s.io", resource: "events", ns: ns},
		{verb: "list", resource: "serviceaccounts", ns: ns},
		{verb: "get", group: "apps", resource: "replicasets", ns: ns, name: "rs"},
		{verb: "list", group: "apps", resource: "replicasets", ns: ns},
		{verb: "get", group: "batch", resource: "jobs", ns: ns, name: "j"},
		{verb: "get", group: "batch", resource: "cronjobs", ns: ns, name: "cj"},
		{verb: "patch", group: "batch", resource: "cronjobs", ns: ns, name: "cj"},
	}
	for _, r := range []string{"deployments", "statefulsets", "daemonsets"} {
		a = append(a,
			access{verb: "get", group: "apps", resource: r, ns: ns, name: "w"},
			access{verb: "patch", group: "apps", resource: r, ns: ns, name: "w"},
			access{verb: "list", group: "apps", resource: r, ns: ns},
			access{verb: "watch", group: "apps", resource: r, ns: ns})
	}
	if probing {
		a = append(a, access{verb: "get", resource: "secrets", ns: ns, name: "regcred"})
	}
	return a
}

// neverAccess is what the bot must never be able to do in ns, in any mode.
func neverAccess(ns string) []access {
	return []access{
		{verb: "delete", group: "apps", resource: "deployments", ns: ns, name: "w"},
		{verb: "deletecollection", group: "apps", resource: "deployments", ns: ns},
		{verb: "delete", resource: "pods", ns: ns, name: "p"},
		{verb: "delete", group: "batch", resource: "cronjobs", ns: ns, name: "cj"},
		{verb: "create", group: "apps", resource: "deployments", ns: ns},
		{verb: "create", group: "apps", resource: "statefulsets", ns: ns},
		{verb: "create", resource: "pods", ns: ns},
		{verb: "create", group: "batch", resource: "jobs", ns: ns},
		{verb: "update", group: "apps", resource: "deployments", ns: ns, name: "w"},
		{verb: "patch", group: "apps", resource: "replicasets", ns: ns, name: "rs"},
		{verb: "patch", group: "apps", resource: "deployments", sub: "scale", ns: ns, name: "w"},
		{verb: "patch", resource: "pods", sub: "status", ns: ns, name: "p"},
		{verb: "patch", resource: "pods", sub: "ephemeralcontainers", ns: ns, name: "p"},
		{verb: "create", resource: "pods", sub: "exec", ns: ns, name: "p"},
		{verb: "create", resource: "pods", sub: "eviction", ns: ns, name: "p"},
		{verb: "list", resource: "secrets", ns: ns},
		{verb: "watch", resource: "secrets", ns: ns},
		{verb: "create", resource: "secrets", ns: ns},
		{verb: "update", resource: "secrets", ns: ns, name: "regcred"},
		{verb: "create", resource: "serviceaccounts", sub: "token", ns: ns, name: "default"},
		{verb: "patch", resource: "serviceaccounts", ns: ns, name: "default"},
		{verb: "update", resource: "configmaps", ns: ns, name: "app-config"},
		{verb: "update", group: "coordination.k8s.io", resource: "leases", ns: ns, name: "other"},
		{verb: "escalate", group: "rbac.authorization.k8s.io", resource: "roles", ns: ns, name: "r"},
		{verb: "bind", group: "rbac.authorization.k8s.io", resource: "roles", ns: ns, name: "r"},
		{verb: "create", group: "rbac.authorization.k8s.io", resource: "rolebindings", ns: ns},
	}
}

// clusterNever is what the bot must never do at cluster scope.
var clusterNever = []access{
	{verb: "update", resource: "nodes", name: "n"},
	{verb: "patch", resource: "nodes", name: "n"},
	{verb: "patch", resource: "nodes", sub: "status", name: "n"},
	{verb: "delete", resource: "nodes", name: "n"},
	{verb: "list", resource: "secrets"},
	{verb: "watch", resource: "secrets"},
	{verb: "delete", resource: "namespaces", name: "default"},
	{verb: "escalate", group: "rbac.authorization.k8s.io", resource: "clusterroles", name: "cluster-admin"},
	{verb: "bind", group: "rbac.authorization.k8s.io", resource: "clusterroles", name: "cluster-admin"},
	{verb: "create", group: "rbac.authorization.k8s.io", resource: "clusterrolebindings"},
	{verb: "impersonate", resource: "users", name: "admin"},
	{verb: "impersonate", resource: "groups", name: "system:masters"},
	{verb: "impersonate", resource: "serviceaccounts", ns: "kube-system", name: "default"},
	{verb: "create", group: "certificates.k8s.io", resource: "certificatesigningrequests"},
	// Admission: only its own webhook configuration, never another's, and
	// never one it creates or deletes (it could then silence a policy).
	{verb: "create", group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations"},
	{verb: "patch", group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations", name: "someone-elses"},
	{verb: "update", group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations", name: "someone-elses"},
	{verb: "delete", group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations", name: "someone-elses"},
	{verb: "list", group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations"},
	{verb: "patch", group: "admissionregistration.k8s.io", resource: "mutatingwebhookconfigurations", name: "m"},
	{verb: "create", group: "admissionregistration.k8s.io", resource: "mutatingwebhookconfigurations"},
}

// TestChartRBAC renders the chart cluster-wide, namespaced, and with
// pull-secret probing off; creates everything it renders on the real API
// server; and asks, with the chart's own service-account token, a table of
// questions: every request the bot makes is allowed where it acts, and
// deleting, creating workloads, touching namespaces outside the scope,
// listing Secrets (or reading one with probing off), escalating, binding,
// impersonating, writing Nodes and writing other Leases or ConfigMaps are
// denied. A few of the answers are then confirmed by real requests, and the
// rendered rules are checked for shape (no wildcards, writes only where the
// table says).
func TestChartRBAC(t *testing.T) {
	h := RequireHelm(t, "pullfix")
	controlplane.Require(t, cp)

	for _, mode := range []struct {
		name       string
		namespaced bool
		probing    bool
		// sar: approvals bound to RBAC (slack.rbacMapping), so the bot
		// may create SubjectAccessReviews — and nothing more.
		sar       bool
		admission bool // admission.enabled, the bot's own certificates
	}{
		{"cluster", false, true, false, false},
		{"namespaced", true, true, false, false},
		{"noprobe", false, false, false, false},
		{"rbacmapping", true, true, true, false},
		{"admission", false, true, false, true},
		{"admission-namespaced", true, true, false, true},
	} {
		t.Run(mode.name, func(t *testing.T) {
			release := uniqueName("rbac-" + mode.name)
			values := map[string]any{"pullSecretProbing": mode.probing}
			if mode.sar {
				values["slack"] = map[string]any{"enabled": true, "botToken": "xoxb-rbac-test", "appToken": "xapp-rbac-test",
					"rbacMapping": "U0ALICE01=alice|team-a,*={email}"}
			}
			if mode.admission {
				values["admission"] = map[string]any{"enabled": true}
			}
			watched := []string{release + "-a", release + "-b"}
			if mode.namespaced {
				values["watchNamespaces"] = []any{watched[0], watched[1]}
			}
			in := installChart(t, h, release, values, watched)
			if mode.admission != (in.webhook != "" && in.caSecret != "") {
				t.Fatalf("admission %v, but the Deployment names webhook configuration %q and CA Secret %q", mode.admission, in.webhook, in.caSecret)
			}
			checkRuleShapes(t, in)

			var table []want
			for _, ns := range watched {
				for _, a := range botAccess(ns, mode.probing) {
					table = append(table, want{a, true})
				}
				for _, a := range neverAccess(ns) {
					table = append(table, want{a, false})
				}
				if !mode.probing {
					table = append(table, want{access{verb: "get", resource: "secrets", ns: ns, name: "regcred"}, false})
				}
			}
			// Outside the scope: cluster-wide installs act everywhere, namespaced ones nowhere else.
			for _, a := range botAccess(in.outside, mode.probing) {
				table = append(table, want{a, !mode.namespaced})
			}
			for _, a := range []access{
				{verb: "list", resource: "pods"}, {verb: "watch", resource: "pods"},
				{verb: "list", resource: "events"}, {verb: "watch", resource: "events"},
			} {
				table = append(table, want{a, !mode.namespaced}) // the informers' cluster-wide list/watch
			}
			for _, a := range clusterNever {
				table = append(table, want{a, false})
			}
			// RBAC-bound approvals: a SubjectAccessReview per fix, only
			// when the mapping is on (issue #17); never impersonation.
			table = append(table, want{access{verb: "create", group: "authorization.k8s.io", resource: "subjectaccessreviews"}, mode.sar})
			// GitOps owners, read by name wherever they live; never listed.
			for _, r := range []access{
				{group: "argoproj.io", resource: "applications", ns: "argocd", name: "shop"},
				{group: "kustomize.toolkit.fluxcd.io", resource: "kustomizations", ns: "flux-system", name: "apps"},
				{group: "helm.toolkit.fluxcd.io", resource: "helmreleases", ns: "flux-system", name: "web"},
				{group: "source.toolkit.fluxcd.io", resource: "gitrepositories", ns: "flux-system", name: "repo"},
			} {
				get, list, patch := r, r, r
				get.verb, list.verb, list.name, patch.verb = "get", "list", "", "patch"
				table = append(table, want{get, true}, want{list, false}, want{patch, false})
			}
			table = append(table, admissionAccess(in)...)
			table = append(table,
				want{access{verb: "get", resource: "nodes", name: "n"}, true},
				// Its own namespace: its Lease and state ConfigMap by name, create on the kinds.
				want{access{verb: "create", group: "coordination.k8s.io", resource: "leases", ns: in.ns}, true},
				want{access{verb: "get", group: "coordination.k8s.io", resource: "leases", ns: in.ns, name: in.lease}, true},
				want{access{verb: "update", group: "coordination.k8s.io", resource: "leases", ns: in.ns, name: in.lease}, true},
				want{access{verb: "create", resource: "configmaps", ns: in.ns}, true},
				want{access{verb: "get", resource: "configmaps", ns: in.ns, name: in.cm}, true},
				want{access{verb: "update", resource: "configmaps", ns: in.ns, name: in.cm}, true},
				// …and nothing else there.
				want{access{verb: "update", group: "coordination.k8s.io", resource: "leases", ns: in.ns, name: "kube-scheduler"}, false},
				want{access{verb: "get", resource: "configmaps", ns: in.ns, name: "kube-root-ca.crt"}, false},
				want{access{verb: "update", resource: "configmaps", ns: in.ns, name: "someone-elses"}, false},
				want{access{verb: "list", resource: "configmaps", ns: in.ns}, false},
				want{access{verb: "delete", resource: "configmaps", ns: in.ns, name: in.cm}, false},
				want{access{verb: "delete", group: "coordination.k8s.io", resource: "leases", ns: in.ns, name: in.lease}, false},
				// Its own Slack Secret is readable only as any Secret is: by a
				// cluster-wide install with probing on.
				want{access{verb: "get", resource: "secrets", ns: in.ns, name: release + "-pullfix-slack"}, !mode.namespaced && mode.probing},
				// Leases and ConfigMaps of other namespaces, even with the bot's names.
				want{access{verb: "create", group: "coordination.k8s.io", resource: "leases", ns: "kube-system"}, false},
				want{access{verb: "update", group: "coordination.k8s.io", resource: "leases", ns: "kube-system", name: in.lease}, false},
				want{access{verb: "update", group: "coordination.k8s.io", resource: "leases", ns: watched[0], name: in.lease}, false},
				want{access{verb: "create", resource: "configmaps", ns: watched[0]}, false},
				want{access{verb: "update", resource: "configmaps", ns: watched[0], name: in.cm}, false},
				want{access{verb: "update", resource: "configmaps", ns: "kube-system", name: in.cm}, false},
			)

			var allowedN, deniedN int
			for _, w := range table {
				got, reason := in.allowed(t, w.a)
				switch {
				case got && !w.allow:
					t.Errorf("ALLOWED, must be denied: %s (%s)", w.a, reason)
				case !got && w.allow:
					t.Errorf("denied, the bot needs it: %s", w.a)
				}
				if w.allow {
					allowedN++
				} else {
					deniedN++
				}
			}
			t.Logf("%s: %d requests checked (%d must be allowed, %d denied)", mode.name, len(table), allowedN, deniedN)

			confirmWithRealRequests(t, in, mode.namespaced, mode.probing)
			if mode.admission {
				confirmAdmission(t, in)
			}
		})
	}
}

// want is one question of TestChartRBAC's table and its answer.
type want struct {
	a     access
	allow bool
}

// admissionAccess is what the admission webhook adds (README's RBAC table,
// "With admission.enabled"): nodes list, its own webhook configuration's
// caBundle, its CA Secret in its own namespace; with the webhook off, none
// of it.
func admissionAccess(in *install) []want {
	on := in.webhook != ""
	vwc := func(verb, name string) access {
		return access{verb: verb, group: "admissionregistration.k8s.io", resource: "validatingwebhookconfigurations", name: name}
	}
	webhook, caSecret := in.webhook, in.caSecret
	if !on {
		webhook, caSecret = in.release+"-pullfix", in.release+"-pullfix-admission-ca"
	}
	out := []want{
		{access{verb: "list", resource: "nodes"}, on},
		{vwc("get", webhook), on},
		{vwc("patch", webhook), on},
		{vwc("update", webhook), false},
		{vwc("delete", webhook), false},
		{access{verb: "create", resource: "secrets", ns: in.ns}, on},
		{access{verb: "update", resource: "secrets", ns: in.ns, name: caSecret}, false},
		{access{verb: "patch", resource: "secrets", ns: in.ns, name: caSecret}, false},
		{access{verb: "delete", resource: "secrets", ns: in.ns, name: caSecret}, false},
		{access{verb: "list", resource: "secrets", ns: in.ns}, false},
		{access{verb: "watch", resource: "nodes"}, false},
		{access{verb: "create", resource: "secrets", ns: "kube-system"}, false},
	}
	if on {
		// Off, a cluster-wide install with probing reads it as any Secret
		// (the Slack Secret's row above says so).
		out = append(out, want{access{verb: "get", resource: "secrets", ns: in.ns, name: caSecret}, true})
	}
	return out
}

// confirmAdmission runs the webhook's start-up for real as the chart's
// service account — create the CA Secret, read it back, patch the chart's
// webhook configuration with the CA — and lists nodes, then checks that
// patching another webhook configuration is refused.
func confirmAdmission(t *testing.T, in *install) {
	t.Helper()
	ctx := t.Context()
	ca, cert, err := admission.SelfSigned(ctx, in.asSA, in.ns, in.caSecret, in.webhook, admission.ServiceHosts("svc", in.ns))
	if err != nil || cert == nil {
		t.Fatalf("the webhook's certificate set-up as the bot: %v", err)
	}
	if _, err := admission.EnsureCA(ctx, in.asSA, in.ns, in.caSecret); err != nil {
		t.Fatalf("a second replica reading the CA as the bot: %v", err)
	}
	vwc, err := in.admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, in.webhook, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(vwc.Webhooks) != 1 || string(vwc.Webhooks[0].ClientConfig.CABundle) != string(ca.CertPEM) {
		t.Fatalf("the chart's webhook configuration does not carry the bot's CA")
	}
	if _, err := in.asSA.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		t.Errorf("list nodes as the bot: %v", err)
	}
	other := &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: in.release + "-other"}}
	if _, err := in.admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Create(ctx, other, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = in.admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(context.Background(), other.Name, metav1.DeleteOptions{})
	})
	if _, err := admission.PatchCABundle(ctx, in.asSA, other.Name, ca.CertPEM); !apierrors.IsForbidden(errors.Unwrap(err)) {
		t.Errorf("patching another webhook configuration as the bot: %v, want Forbidden", err)
	}
}

// confirmWithRealRequests makes a few of the table's requests for real with
// the service account's client, so the answers are not only the
// authorizer's opinion: the Lease and ConfigMap round trip the bot does on
// start, a Secret read by name, and refusals that must come back 403.
func confirmWithRealRequests(t *testing.T, in *install, namespaced, probing bool) {
	t.Helper()
	ctx := t.Context()
	ns := in.watched[0]
	if _, err := in.admin.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "regcred"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Leader election and state, as client-go's LeaseLock and the state
	// store do them: create, get, update.
	leases := in.asSA.CoordinationV1().Leases(in.ns)
	holder := "pod-0"
	l, err := leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: in.lease}, Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create own Lease: %v", err)
	}
	if l, err = leases.Get(ctx, in.lease, metav1.GetOptions{}); err != nil {
		t.Fatalf("get own Lease: %v", err)
	}
	if _, err = leases.Update(ctx, l, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update own Lease: %v", err)
	}
	cms := in.asSA.CoreV1().ConfigMaps(in.ns)
	if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: in.cm}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create own state ConfigMap: %v", err)
	}
	cm, err := cms.Get(ctx, in.cm, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get own state ConfigMap: %v", err)
	}
	cm.Data = map[string]string{"k": "v"}
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update own state ConfigMap: %v", err)
	}

	_, err = in.asSA.CoreV1().Secrets(ns).Get(ctx, "regcred", metav1.GetOptions{})
	if probing && err != nil {
		t.Errorf("get pull secret by name: %v", err)
	}
	if !probing && !apierrors.IsForbidden(err) {
		t.Errorf("get pull secret with probing off: %v, want Forbidden", err)
	}

	forbidden := []struct {
		what string
		do   func() error
	}{
		{"list secrets", func() error { _, err := in.asSA.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); return err }},
		{"delete a pod", func() error { return in.asSA.CoreV1().Pods(ns).Delete(ctx, "p", metav1.DeleteOptions{}) }},
		{"delete the state ConfigMap", func() error { return cms.Delete(ctx, in.cm, metav1.DeleteOptions{}) }},
		{"create a ConfigMap in a watched namespace", func() error {
			_, err := in.asSA.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: in.cm}}, metav1.CreateOptions{})
			return err
		}},
		{"bind cluster-admin", func() error {
			_, err := in.asSA.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "pwn"},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
				Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: in.sa, Namespace: in.ns}},
			}, metav1.CreateOptions{})
			return err
		}},
	}
	if namespaced {
		forbidden = append(forbidden, struct {
			what string
			do   func() error
		}{"list pods outside the watched namespaces", func() error {
			_, err := in.asSA.CoreV1().Pods(in.outside).List(ctx, metav1.ListOptions{})
			return err
		}})
	}
	for _, f := range forbidden {
		if err := f.do(); !apierrors.IsForbidden(err) {
			t.Errorf("%s as the bot: %v, want Forbidden", f.what, err)
		}
	}
	if _, err := in.asSA.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("list pods in a watched namespace: %v", err)
	}
}

// checkRuleShapes reads the RBAC the chart rendered and holds it to the
// README's promises, whatever the table above forgot to ask: no wildcard
// anywhere; only read verbs plus patch, create and update; update only on
// named objects; create only on events, leases and configmaps; patch only on
// the kinds it fixes; secrets get-only; every Role binds only this
// release's service account.
func checkRuleShapes(t *testing.T, in *install) {
	t.Helper()
	read := []string{"get", "list", "watch"}
	creatable := []string{"events", "leases", "configmaps", "subjectaccessreviews"}
	patchable := []string{"pods", "deployments", "statefulsets", "daemonsets", "cronjobs"}
	if in.webhook != "" {
		// The admission webhook's CA Secret (in the bot's namespace only,
		// checked below) and its own webhook configuration (by name).
		creatable = append(creatable, "secrets")
	}
	for _, o := range append(Find(in.objs, "ClusterRole"), Find(in.objs, "Role")...) {
		var role rbacv1.ClusterRole
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &role); err != nil {
			t.Fatal(err)
		}
		if len(role.Rules) == 0 {
			t.Errorf("%s %s has no rules", o.GetKind(), o.GetName())
		}
		for _, r := range role.Rules {
			where := fmt.Sprintf("%s %s/%s rule %v %v %v", o.GetKind(), o.GetNamespace(), o.GetName(), r.APIGroups, r.Resources, r.Verbs)
			all := slices.Concat(r.APIGroups, r.Resources, r.Verbs, r.ResourceNames, r.NonResourceURLs)
			if slices.Contains(all, "*") {
				t.Errorf("%s: wildcard", where)
			}
			if len(r.NonResourceURLs) > 0 {
				t.Errorf("%s: non-resource URLs", where)
			}
			for _, v := range r.Verbs {
				switch {
				case slices.Contains(read, v):
				case v == "patch" && subset(r.Resources, patchable):
				case v == "patch" && slices.Equal(r.Resources, []string{"validatingwebhookconfigurations"}) && slices.Equal(r.ResourceNames, []string{in.webhook}):
				case v == "create" && subset(r.Resources, creatable):
				case v == "update" && len(r.ResourceNames) > 0 && subset(r.Resources, []string{"leases", "configmaps"}):
				default:
					t.Errorf("%s: verb %q is not in the chart's promise", where, v)
				}
			}
			if slices.Contains(r.Resources, "subjectaccessreviews") && (!slices.Equal(r.Verbs, []string{"create"}) || !strings.HasSuffix(o.GetName(), "-sar")) {
				t.Errorf("%s: subjectaccessreviews only create, in the -sar ClusterRole", where)
			}
			secretCreate := in.webhook != "" && o.GetNamespace() == in.ns && slices.Equal(r.Verbs, []string{"create"})
			if slices.Contains(r.Resources, "secrets") && !slices.Equal(r.Verbs, []string{"get"}) && !secretCreate {
				t.Errorf("%s: secrets must be get-only (create: the admission CA, in the bot's namespace)", where)
			}
			nodeList := in.webhook != "" && slices.Equal(r.Verbs, []string{"list"})
			if slices.Contains(r.Resources, "nodes") && !slices.Equal(r.Verbs, []string{"get"}) && !nodeList {
				t.Errorf("%s: nodes must be get-only (list: the admission webhook's platforms)", where)
			}
			if slices.Contains(r.Resources, "validatingwebhookconfigurations") && !slices.Equal(r.ResourceNames, []string{in.webhook}) {
				t.Errorf("%s: webhook configurations other than the bot's own %q", where, in.webhook)
			}
			if (slices.Contains(r.Resources, "leases") || slices.Contains(r.Resources, "configmaps")) && o.GetNamespace() != in.ns {
				t.Errorf("%s: Lease/ConfigMap rights outside the bot's namespace %s", where, in.ns)
			}
		}
	}
	for _, o := range append(Find(in.objs, "ClusterRoleBinding"), Find(in.objs, "RoleBinding")...) {
		subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
		want := fmt.Sprintf(`[{"kind":"ServiceAccount","name":%q,"namespace":%q}]`, in.sa, in.ns)
		if got := toJSON(t, subjects); got != want {
			t.Errorf("%s %s binds %s, want only %s", o.GetKind(), o.GetName(), got, want)
		}
	}
	if !strings.HasPrefix(in.sa, in.release) {
		t.Errorf("service account %q is not named after the release %q", in.sa, in.release)
	}
}

func subset(xs, of []string) bool {
	for _, x := range xs {
		if !slices.Contains(of, x) {
			return false
		}
	}
	return true
}
