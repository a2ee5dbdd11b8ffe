package main

// Issue #17 end to end: GitOps-owned workloads are not patched live, and
// approvals bound to Kubernetes RBAC patch only what the approver may.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/pullfix/pullfix/internal/slackapp"
	"github.com/pullfix/pullfix/internal/testenv/registries"
	"github.com/pullfix/pullfix/internal/testenv/slackemu"
	"github.com/pullfix/pullfix/internal/watch/fix"
)

// gitopsWorld is the runbook's registry (simulated kubelet) with extra
// chart values for Slack.
func gitopsWorld(t *testing.T, slack map[string]any) *e2e {
	t.Helper()
	reg := registries.New(t)
	registries.SeedRunbook(t, reg)
	return newE2E(t, world{mirrors: map[string]string{registries.PublicECR: reg.Host}, slack: slack})
}

// createLabelled creates a Deployment of the runbook's broken image with
// extra labels and annotations on the Deployment (what a GitOps
// controller writes on the objects it applies).
func (e *e2e) createLabelled(t *testing.T, name string, labels, annotations map[string]string) *appsv1.Deployment {
	t.Helper()
	d := e.createDeployment(t, name, badImage)
	patch := map[string]any{"metadata": map[string]any{"labels": labels, "annotations": annotations}}
	data, err := json.Marshal(patch)
	if err != nil {
		t.Fatal(err)
	}
	d, err = e.admin.AppsV1().Deployments(e.ns).Patch(t.Context(), name, types.MergePatchType, data, metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// installArgoApplication creates the Argo CD Application CRD (its group,
// served version and kind; the schema left open) and an Application with
// automated sync and self-heal, as Argo CD's docs show it.
func installArgoApplication(t *testing.T, e *e2e, name, argoNS string) {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	ensureNamespace(t, e.admin, argoNS)
	createCustom(t, dyn, "argoproj.io", "v1alpha1", "applications", "Application", argoNS, name, map[string]any{
		"project":     "default",
		"source":      map[string]any{"repoURL": "https://github.com/example/shop-deploy.git", "path": "apps/ui", "targetRevision": "main"},
		"destination": map[string]any{"server": "https://kubernetes.default.svc", "namespace": "shop"},
		"syncPolicy":  map[string]any{"automated": map[string]any{"prune": true, "selfHeal": true}},
	})
}

// createCustom installs a CRD for group/version/plural (kind; the schema
// left open) if absent and creates one object of it with spec, removed
// when the test ends. Only the group, version, kind and the fields pullfix
// reads matter: the real controllers' CRDs are much larger.
func createCustom(t *testing.T, dyn dynamic.Interface, group, version, plural, kind, ns, name string, spec map[string]any) {
	t.Helper()
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	crd := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": plural + "." + group},
		"spec": map[string]any{
			"group": group, "scope": "Namespaced",
			"names": map[string]any{"plural": plural, "singular": strings.ToLower(kind), "kind": kind, "listKind": kind + "List"},
			"versions": []any{map[string]any{"name": version, "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
		},
	}}
	if _, err := dyn.Resource(crdGVR).Create(t.Context(), crd, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	gvr := schema.GroupVersionResource{Group: group, Version: version, Resource: plural}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": group + "/" + version, "kind": kind,
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     spec,
	}}
	// The CRD serves once Established; creating the object proves it.
	poll(t, 30*time.Second, "the "+kind+" CRD to serve", func(ctx context.Context) (bool, error) {
		_, err := dyn.Resource(gvr).Namespace(ns).Create(ctx, obj, metav1.CreateOptions{})
		return err == nil || apierrors.IsAlreadyExists(err), nil
	})
	t.Cleanup(func() { _ = dyn.Resource(gvr).Namespace(ns).Delete(context.Background(), name, metav1.DeleteOptions{}) })
}

// rootFor waits for the root message whose header names the workload.
func (e *e2e) rootFor(t *testing.T, name string) slackemu.Message {
	t.Helper()
	var found slackemu.Message
	waitSlack(t, e.emu, 90*time.Second, "the message about "+name, func() bool {
		for _, m := range e.emu.Messages(channelID) {
			if strings.Contains(string(m.Blocks), name+": repository not found") {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// forgeDefaultClick sends the default "Set image" click for the message's
// incident and first candidate, as a client would that the message does
// not show it to (forged, or holding an older version).
func (e *e2e) forgeDefaultClick(t *testing.T, user string, root slackemu.Message) {
	t.Helper()
	var incident string
	for _, b := range parseBlocks(t, root.Blocks).buttons() {
		if b.ActionID == slackapp.ActionIDRecheck {
			v, err := slackapp.DecodeAction(b.Value)
			if err != nil {
				t.Fatal(err)
			}
			incident = v.IncidentID
		}
	}
	if incident == "" {
		t.Fatal("the message has no Re-check button to read its incident from")
	}
	value := slackapp.EncodeAction(slackapp.ActionValue{Cluster: clusterName, IncidentID: incident, Action: slackapp.ActionSetImage, Arg: "c1"})
	if _, err := e.emu.Click(t.Context(), slackemu.Click{UserID: user, ChannelID: channelID, MessageTS: root.TS,
		ActionID: slackapp.ActionIDSetImage, Value: value, Unrendered: true}); err != nil {
		t.Fatalf("forged click: %v", err)
	}
}

// unchanged fails if the Deployment was patched since before.
func (e *e2e) unchanged(t *testing.T, before *appsv1.Deployment) {
	t.Helper()
	after := e.deployment(t, before.Name)
	if after.Generation != before.Generation || after.Spec.Template.Spec.Containers[0].Image != badImage || after.Annotations[fix.ChangeCauseAnnotation] != "" {
		t.Errorf("%s changed: generation %d → %d, image %q, change-cause %q", before.Name,
			before.Generation, after.Generation, after.Spec.Template.Spec.Containers[0].Image, after.Annotations[fix.ChangeCauseAnnotation])
	}
	for _, ev := range e.events(t, before.UID) {
		if ev.Reason == fix.ReasonImageUpdated {
			t.Errorf("an ImageUpdated Event was recorded on %s: %q", before.Name, ev.Message)
		}
	}
}

// waitEphemeral waits for an ephemeral answer to user containing every want.
func (e *e2e) waitEphemeral(t *testing.T, user string, wants ...string) string {
	t.Helper()
	var got string
	waitSlack(t, e.emu, 30*time.Second, fmt.Sprintf("an answer to %s saying %q", user, wants), func() bool {
		for _, m := range e.emu.Ephemerals(user) {
			text := m.Text + "\n" + string(m.Blocks)
			ok := true
			for _, w := range wants {
				ok = ok && strings.Contains(text, w)
			}
			if ok {
				got = m.Text
				return true
			}
		}
		return false
	})
	return got
}

// TestGitOpsManagedWorkloadIsNotPatched: an Argo-CD-tracked Deployment (its
// Application readable, self-heal on) and a Flux-labelled one, both with
// the runbook's typo. Each message names the owner and, for Argo CD, the
// source repository, path and revision, says a live patch would be
// reverted, and gives the Git change (the image line before → after); no
// message offers a live patch. A click on the default "Set image" —
// forged for the messages that do not show it, and real on the message of
// a third Deployment that Flux adopted after it was posted — patches
// nothing and is answered privately.
func TestGitOpsManagedWorkloadIsNotPatched(t *testing.T) {
	e := gitopsWorld(t, nil)
	// Its own Argo CD namespace (Argo CD's "apps in any namespace" form of
	// the tracking id names it), so runs never meet a namespace still
	// terminating from the last one.
	argoNS := e.ns + "-argocd"
	installArgoApplication(t, e, "shop-ui", argoNS)
	startBot(t, e)

	argo := e.createLabelled(t, "ui-argo",
		map[string]string{"app.kubernetes.io/instance": "shop-ui"},
		map[string]string{"argocd.argoproj.io/tracking-id": argoNS + "_shop-ui:apps/Deployment:" + e.ns + "/ui-argo"})
	flux := e.createLabelled(t, "ui-flux",
		map[string]string{"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}, nil)
	adopted := e.createDeployment(t, "ui-adopted", badImage)

	gitChange := "-  image: " + badImage + "\n+  image: " + goodImage
	for _, tc := range []struct {
		name  string
		wants []string
	}{
		{"ui-argo", []string{"Managed by Argo CD", "Application " + argoNS + "/shop-ui", "https://github.com/example/shop-deploy.git",
			"apps/ui", "`main`", "self-heal is on", "reverted", "Fix it in Git", "# repo: https://github.com/example/shop-deploy.git @ main", "# path: apps/ui"}},
		{"ui-flux", []string{"Managed by Flux", "Kustomization flux-system/apps", "reverted", "Fix it in Git"}},
	} {
		root := e.rootFor(t, tc.name)
		// Wait for the registry's answer: the Git change is the verified candidate's.
		text := e.facts(t, root.TS, append(tc.wants, gitChange)...)
		root = e.root(t, root.TS)
		for _, w := range append(tc.wants, gitChange) {
			if !strings.Contains(text, w) {
				t.Errorf("%s: the message does not say %q:\n%s", tc.name, w, text)
			}
		}
		bs := parseBlocks(t, root.Blocks)
		for _, id := range []string{slackapp.ActionIDSetImage, slackapp.ActionIDRollback, slackapp.ActionIDAddSecret, slackapp.ActionIDTempImage} {
			if bs.hasAction(id) {
				t.Errorf("%s: the message offers %s on a GitOps-owned workload", tc.name, id)
			}
		}
		t.Logf("%s message:\n%s", tc.name, bs.text())

		e.forgeDefaultClick(t, approverID, root)
		owner := map[string]string{"ui-argo": "Argo CD", "ui-flux": "Flux"}[tc.name]
		said := e.waitEphemeral(t, approverID, "Nothing was patched", tc.name, owner)
		t.Logf("forged click on %s answered privately: %q", tc.name, said)
		if n := len(e.replies(root.TS)); n != 0 {
			t.Errorf("%s: the refused click was answered in the thread: %q", tc.name, texts(e.replies(root.TS)))
		}
	}

	// ui-adopted was posted with a live-patch button; Flux adopts it; the
	// button is clicked.
	root := e.rootFor(t, "ui-adopted")
	e.facts(t, root.TS, "Registry said")
	set := parseBlocks(t, e.root(t, root.TS).Blocks).button(t, slackapp.ActionIDSetImage, "Set image to "+goodImage)
	labels := `{"metadata":{"labels":{"kustomize.toolkit.fluxcd.io/name":"apps","kustomize.toolkit.fluxcd.io/namespace":"flux-system"}}}`
	adopted, err := e.admin.AppsV1().Deployments(e.ns).Patch(t.Context(), "ui-adopted", types.MergePatchType, []byte(labels), metav1.PatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	before := len(e.emu.Ephemerals(approverID))
	e.click(t, approverID, root, set)
	waitSlack(t, e.emu, 30*time.Second, "the answer to the click on ui-adopted", func() bool { return len(e.emu.Ephemerals(approverID)) > before })
	said := e.emu.Ephemerals(approverID)[before].Text
	if !strings.Contains(said, "ui-adopted") || !strings.Contains(said, "Flux") || !strings.Contains(said, "Nothing was patched") {
		t.Errorf("the click on the adopted workload was answered %q", said)
	}
	// …and its message now shows the owner and the Git change instead.
	waitSlack(t, e.emu, 30*time.Second, "ui-adopted's message to show its new owner", func() bool {
		m, _ := e.emu.Message(channelID, root.TS)
		var bs blocks
		return json.Unmarshal(m.Blocks, &bs) == nil && strings.Contains(bs.text(), "Managed by Flux") &&
			strings.Contains(bs.text(), gitChange) && !bs.hasAction(slackapp.ActionIDSetImage)
	})

	for _, d := range []*appsv1.Deployment{argo, flux, adopted} {
		e.unchanged(t, d)
	}
	e.checkNoForbidden(t)
}

// TestApproverWithoutRBACCannotPatch: approvals are bound to RBAC. Two
// Slack approvers map to two Kubernetes users — alice by the explicit
// table, bob by his Slack e-mail (users.info) — and a RoleBinding grants
// patch on Deployments in the namespace to alice only. Bob's click patches
// nothing: only he is told why (his Kubernetes identity and the request
// RBAC refused), and the message and its thread are untouched. Alice's
// click patches, and the change-cause and the audit Event name her
// Kubernetes identity beside her Slack user.
func TestApproverWithoutRBACCannotPatch(t *testing.T) {
	const bobID = "U0BOB0001"
	e := gitopsWorld(t, map[string]any{"rbacMapping": approverID + "=alice@example.com|team-a,*={email}|developers"})
	e.emu.AddUser(bobID, "bob")
	e.emu.SetUserEmail(bobID, "bob@example.com")
	// Both are approvers in Slack; only RBAC tells them apart.
	e.env["PULLFIX_SLACK_APPROVERS"] = approverID + "," + bobID
	if got := e.env["PULLFIX_SLACK_RBAC_MAPPING"]; !strings.Contains(got, "alice@example.com") {
		t.Fatalf("the chart's Deployment sets PULLFIX_SLACK_RBAC_MAPPING=%q", got)
	}

	// alice may patch Deployments here (and read them, as kubectl would);
	// bob may only read them.
	ctx := t.Context()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "deployers"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "patch"}}}}
	viewer := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "viewers"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"get", "list"}}}}
	for _, r := range []*rbacv1.Role{role, viewer} {
		if _, err := e.admin.RbacV1().Roles(e.ns).Create(ctx, r, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for name, b := range map[string]struct{ role, kind, subject string }{
		"alice-deploys": {"deployers", rbacv1.UserKind, "alice@example.com"},
		"devs-view":     {"viewers", rbacv1.GroupKind, "developers"},
	} {
		if _, err := e.admin.RbacV1().RoleBindings(e.ns).Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: b.role},
			Subjects:   []rbacv1.Subject{{Kind: b.kind, APIGroup: rbacv1.GroupName, Name: b.subject}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// The authorizer sees new bindings through its informers: wait until
	// alice's is in effect, so bob's refusal below is RBAC's answer.
	poll(t, 30*time.Second, "alice's RoleBinding to take effect", func(ctx context.Context) (bool, error) {
		r, err := e.admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: "alice@example.com", Groups: []string{"team-a"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: e.ns, Verb: "patch", Group: "apps", Resource: "deployments", Name: "ui-new"}}}, metav1.CreateOptions{})
		return err == nil && r.Status.Allowed, nil
	})

	startBot(t, e)
	dep := e.createDeployment(t, "ui-new", badImage)
	root := e.waitRoot(t)
	e.facts(t, root.TS, "Registry said")
	root = e.root(t, root.TS)
	set := parseBlocks(t, root.Blocks).button(t, slackapp.ActionIDSetImage, "Set image to "+goodImage)
	before := e.deployment(t, "ui-new")

	e.click(t, bobID, root, set)
	said := e.waitEphemeral(t, bobID, "can't", `kubernetes user \"bob@example.com\"`, "patch deployments.apps", "ui-new", "Nothing was changed")
	t.Logf("shown to bob: %q", said)
	e.unchanged(t, before)
	if m := e.root(t, root.TS); len(m.Edits) != 0 || len(e.replies(root.TS)) != 0 {
		t.Errorf("bob's refused click edited the message (%d edits) or the thread (%q)", len(m.Edits), texts(e.replies(root.TS)))
	}
	if n := len(e.emu.Ephemerals(approverID)); n != 0 {
		t.Errorf("alice was shown %d ephemeral messages", n)
	}
	if calls := e.emu.Calls("users.info"); len(calls) == 0 {
		t.Error("bob's identity was not looked up by e-mail (no users.info call)")
	}

	e.click(t, approverID, root, set)
	e.waitReady(t, "ui-new", goodImage)
	d := e.deployment(t, "ui-new")
	cause := d.Annotations[fix.ChangeCauseAnnotation]
	for _, w := range []string{"<@" + approverID + ">", `kubernetes user "alice@example.com" (groups team-a)`, goodImage} {
		if !strings.Contains(cause, w) {
			t.Errorf("change-cause %q does not name %q", cause, w)
		}
	}
	var audit []string
	for _, ev := range e.events(t, dep.UID) {
		if ev.Reason == fix.ReasonImageUpdated {
			audit = append(audit, ev.Message)
		}
	}
	if len(audit) != 1 || !strings.Contains(audit[0], `kubernetes user "alice@example.com"`) || !strings.Contains(audit[0], approverID) {
		t.Errorf("ImageUpdated Events %q, want one naming alice's Slack user and Kubernetes identity", audit)
	}
	t.Logf("change-cause: %q", cause)
	e.checkNoForbidden(t)
}

// TestGitOpsTemporaryPatchIsMarked: with the opt-in on
// (PULLFIX_GITOPS_TEMPORARY_PATCH, the chart's gitops.temporaryPatch), a
// Flux-owned Deployment's message offers, beside the Git change, a
// "Temporary live patch" button; the approver's click patches the image,
// the change-cause says TEMPORARY and that Git still names the old image,
// and the message says a temporary patch was made.
func TestGitOpsTemporaryPatchIsMarked(t *testing.T) {
	e := gitopsWorld(t, nil)
	e.env["PULLFIX_GITOPS_TEMPORARY_PATCH"] = "true"
	startBot(t, e)
	e.createLabelled(t, "ui-flux",
		map[string]string{"kustomize.toolkit.fluxcd.io/name": "apps", "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}, nil)
	root := e.rootFor(t, "ui-flux")
	e.facts(t, root.TS, "+  image: "+goodImage)
	bs := parseBlocks(t, e.root(t, root.TS).Blocks)
	if bs.hasAction(slackapp.ActionIDSetImage) {
		t.Error("the message offers the default Set image on a GitOps-owned workload")
	}
	temp := bs.button(t, slackapp.ActionIDTempImage, "Temporary live patch: retail-store-sample-ui:1.2.1")

	e.click(t, approverID, root, temp)
	e.waitReady(t, "ui-flux", goodImage)
	cause := e.deployment(t, "ui-flux").Annotations[fix.ChangeCauseAnnotation]
	if !strings.Contains(cause, "TEMPORARY live patch") || !strings.Contains(cause, "Git still names the old image") || !strings.Contains(cause, approverID) {
		t.Errorf("change-cause %q does not mark the patch temporary and name the approver", cause)
	}
	waitSlack(t, e.emu, 60*time.Second, "the resolved message to say the patch was temporary", func() bool {
		m, _ := e.emu.Message(channelID, root.TS)
		var bs blocks
		return json.Unmarshal(m.Blocks, &bs) == nil && bs.header() == "✅ ui-flux 1/1 Running on retail-store-sample-ui:1.2.1" &&
			strings.Contains(bs.text(), "TEMPORARY live patch")
	})
	var thread []string
	for _, r := range e.replies(root.TS) {
		thread = append(thread, r.Text)
	}
	t.Logf("change-cause %q; thread %q", cause, thread)
	e.checkNoForbidden(t)
}
