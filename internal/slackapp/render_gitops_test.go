package slackapp

import (
	"strings"
	"testing"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// gitopsGoldenCases are the GitOps messages pinned by golden files: Argo CD
// with self-heal on (no live patch), Flux with the opt-in temporary patch
// offered, and a HelmRelease whose image lives in values.
func gitopsGoldenCases(t testing.TB) map[string]Message {
	argo := fixtureInput(t, diagnose.RepoNotFound)
	argo.GitOps = &GitOps{Tool: "Argo CD", OwnerRef: "Application argocd/shop-ui",
		Evidence: "argocd.argoproj.io/tracking-id=shop-ui:apps/Deployment:retail/ui-new",
		RepoURL:  "https://github.com/example/shop-deploy.git", Path: "apps/ui", Revision: "main",
		Reverts:       "Argo CD self-heal is on: a live patch is reverted to Git's image within seconds.",
		TemporaryNote: "Argo CD self-heal is on and would revert it within seconds"}
	flux := fixtureInput(t, diagnose.RepoNotFound)
	flux.GitOps = &GitOps{Tool: "Flux", OwnerRef: "Kustomization flux-system/apps",
		Evidence: "kustomize.toolkit.fluxcd.io/name=apps", RepoURL: "ssh://git@github.com/example/fleet", Path: "./apps/retail", Revision: "main",
		Reverts: "Flux re-applies Git every 10m: a live patch is reverted at the next reconcile.", TemporaryOffered: true}
	helm := fixtureInput(t, diagnose.RepoNotFound)
	helm.GitOps = &GitOps{Tool: "Flux", OwnerRef: "HelmRelease retail/ui", Evidence: "helm.toolkit.fluxcd.io/name=ui",
		Chart: "retail-ui", HelmValues: true, Reverts: "Flux re-applies Git at its next reconcile: a live patch is reverted."}
	fixing := flux
	fixing.State, fixing.Actor, fixing.FixAction, fixing.FixImage = StateFixing, "U0APPROVER", ActionTempImage, "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1"
	return map[string]Message{
		"gitops_argocd":         Render(argo),
		"gitops_flux_temporary": Render(flux),
		"gitops_helmrelease":    Render(helm),
		"gitops_fixing_temp":    Render(fixing),
	}
}

// TestRenderGitOps checks what the GitOps goldens mean: the owner and the
// source are named, the Git change is the verified candidate's image line
// before → after, no default fix button is offered, and the temporary
// patch appears only where offered, as its own action, marked temporary.
func TestRenderGitOps(t *testing.T) {
	cases := gitopsGoldenCases(t)
	fx := fixtureInput(t, diagnose.RepoNotFound).Diagnosis
	primaryID := fx.Candidates[primaryCandidate(fx)].ID // the typo's fix, not the rollback
	good := "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1"
	bad := "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1"
	for _, tc := range []struct {
		name      string
		wants     []string
		temporary bool
	}{
		{"gitops_argocd", []string{"Managed by Argo CD", "Application argocd/shop-ui", "https://github.com/example/shop-deploy.git", "apps/ui",
			"self-heal is on", "# repo: https://github.com/example/shop-deploy.git @ main", "# path: apps/ui", "No live patch offered"}, false},
		{"gitops_flux_temporary", []string{"Managed by Flux", "Kustomization flux-system/apps", "every 10m", "# path: ./apps/retail"}, true},
		{"gitops_helmrelease", []string{"HelmRelease retail/ui", "values of the HelmRelease", "# chart: retail-ui"}, false},
	} {
		m := cases[tc.name]
		text := allText(m)
		for _, w := range append(tc.wants, "Fix it in Git", "-  image: "+bad, "+  image: "+good) {
			if !strings.Contains(text, w) {
				t.Errorf("%s does not say %q:\n%s", tc.name, w, text)
			}
		}
		var temp int
		for _, b := range buttonsOf(m) {
			switch b.ActionID {
			case ActionIDSetImage, ActionIDRollback, ActionIDAddSecret:
				t.Errorf("%s offers the default fix %s", tc.name, b.ActionID)
			case ActionIDTempImage:
				temp++
				v, err := DecodeAction(b.Value)
				if err != nil || v.Action != ActionTempImage || v.Arg != primaryID || strings.Contains(b.Value, "retail") {
					t.Errorf("%s: temporary button value %q (%v)", tc.name, b.Value, err)
				}
				if !strings.HasPrefix(b.Text.Text, "Temporary live patch") || b.Confirm == nil {
					t.Errorf("%s: temporary button %q without the word or a confirm dialog", tc.name, b.Text.Text)
				}
			}
		}
		if (temp == 1) != tc.temporary || temp > 1 {
			t.Errorf("%s: %d temporary-patch buttons, want offered=%v", tc.name, temp, tc.temporary)
		}
		if !strings.Contains(m.Text, "fix it in Git") {
			t.Errorf("%s: notification text %q does not say to fix it in Git", tc.name, m.Text)
		}
	}
	if text := allText(cases["gitops_fixing_temp"]); !strings.Contains(text, "TEMPORARY live patch") {
		t.Errorf("the fixing state of a temporary patch does not say so:\n%s", text)
	}
}

// TestActionTempImageRoundTrip: the new action is on the wire contract.
func TestActionTempImageRoundTrip(t *testing.T) {
	v := ActionValue{Cluster: "prod-eu", IncidentID: "abc", Action: ActionTempImage, Arg: "c1"}
	got, err := DecodeClick("prod-eu", ActionIDTempImage, EncodeAction(v))
	if err != nil || got != v {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	if a, ok := ActionForID(ActionIDTempImage); !ok || a != ActionTempImage || !a.IsFix() {
		t.Errorf("ActionForID(%s) = %v, %v", ActionIDTempImage, a, ok)
	}
}
