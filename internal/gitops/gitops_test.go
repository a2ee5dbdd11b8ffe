package gitops

import (
	"context"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func obj(labels, ann map[string]string) metav1.Object {
	return &metav1.ObjectMeta{Name: "ui", Namespace: "shop", Labels: labels, Annotations: ann}
}

// TestDetect: ownership from what each controller writes, the tracking
// annotation first (it names the exact object), Flux's labels next, Argo
// CD's instance label last.
func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		name        string
		labels, ann map[string]string
		want        Owner
		ok          bool
	}{
		{"plain", map[string]string{"app": "ui"}, nil, Owner{}, false},
		{"argo annotation", nil, map[string]string{ArgoTrackingAnnotation: "shop-ui:apps/Deployment:shop/ui"},
			Owner{Tool: ArgoCD, Kind: "Application", Name: "shop-ui", Evidence: ArgoTrackingAnnotation + "=shop-ui:apps/Deployment:shop/ui"}, true},
		{"argo annotation, app in any namespace", nil, map[string]string{ArgoTrackingAnnotation: "team-a_shop-ui:apps/Deployment:shop/ui"},
			Owner{Tool: ArgoCD, Kind: "Application", Name: "shop-ui", Namespace: "team-a", Evidence: ArgoTrackingAnnotation + "=team-a_shop-ui:apps/Deployment:shop/ui"}, true},
		{"argo label", map[string]string{ArgoInstanceLabel: "shop-ui"}, nil,
			Owner{Tool: ArgoCD, Kind: "Application", Name: "shop-ui", Evidence: ArgoInstanceLabel + "=shop-ui", ByLabelOnly: true}, true},
		{"argo custom label", map[string]string{ArgoCustomInstanceLabel: "shop-ui"}, nil,
			Owner{Tool: ArgoCD, Kind: "Application", Name: "shop-ui", Evidence: ArgoCustomInstanceLabel + "=shop-ui"}, true},
		{"flux kustomization", map[string]string{FluxKustomizeName: "apps", FluxKustomizeNamespace: "flux-system", ArgoInstanceLabel: "x"}, nil,
			Owner{Tool: Flux, Kind: "Kustomization", Name: "apps", Namespace: "flux-system", Evidence: FluxKustomizeName + "=apps", SelfHeal: true}, true},
		{"flux helmrelease", map[string]string{FluxHelmName: "ui", FluxHelmNamespace: "shop", ArgoInstanceLabel: "ui"}, nil,
			Owner{Tool: Flux, Kind: "HelmRelease", Name: "ui", Namespace: "shop", Evidence: FluxHelmName + "=ui", SelfHeal: true}, true},
		{"annotation beats flux", map[string]string{FluxKustomizeName: "apps"}, map[string]string{ArgoTrackingAnnotation: "a:apps/Deployment:shop/ui"},
			Owner{Tool: ArgoCD, Kind: "Application", Name: "a", Evidence: ArgoTrackingAnnotation + "=a:apps/Deployment:shop/ui"}, true},
		{"malformed annotation falls through", nil, map[string]string{ArgoTrackingAnnotation: "no-colon"}, Owner{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Detect(obj(tc.labels, tc.ann))
			if ok != tc.ok || got != tc.want {
				t.Errorf("Detect = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestHelmInstanceLabelIsNotArgo: Helm charts write app.kubernetes.io/instance
// too; without a readable Application, a Helm-managed object is not taken
// as Argo CD's (nothing would be refused for a plain Helm release).
func TestHelmInstanceLabelIsNotArgo(t *testing.T) {
	o := obj(map[string]string{ArgoInstanceLabel: "web", "app.kubernetes.io/managed-by": "Helm"}, nil)
	if got, ok := NewResolver(nil).Owner(context.Background(), o); ok {
		t.Errorf("a Helm release's instance label was taken as Argo CD's: %+v", got)
	}
	o = obj(map[string]string{ArgoInstanceLabel: "web"}, nil)
	if _, ok := NewResolver(nil).Owner(context.Background(), o); !ok {
		t.Error("the instance label alone (Argo CD's default tracking) was not detected")
	}
}

// TestPolicy: the default fix is always refused for an owned workload; a
// temporary patch needs the opt-in and, with Argo CD, a read Application
// with self-heal off.
func TestPolicy(t *testing.T) {
	argoHeal := Owner{Tool: ArgoCD, Kind: "Application", Name: "a", Read: true, SelfHeal: true, AutoSync: true}
	argoManual := Owner{Tool: ArgoCD, Kind: "Application", Name: "a", Read: true}
	argoUnread := Owner{Tool: ArgoCD, Kind: "Application", Name: "a"}
	flux := Owner{Tool: Flux, Kind: "Kustomization", Name: "k", SelfHeal: true}
	for _, tc := range []struct {
		name  string
		o     Owner
		allow bool
		want  bool // a temporary patch is allowed
	}{
		{"off", argoManual, false, false},
		{"argo self-heal", argoHeal, true, false},
		{"argo unread", argoUnread, true, false},
		{"argo manual sync", argoManual, true, true},
		{"flux", flux, true, true},
	} {
		p := Policy{AllowTemporary: tc.allow}
		if got := p.TemporaryRefusal(tc.o) == ""; got != tc.want {
			t.Errorf("%s: temporary allowed %v, want %v (%q)", tc.name, got, tc.want, p.TemporaryRefusal(tc.o))
		}
	}
	err := (&OwnedError{Owner: argoHeal}).Error()
	for _, w := range []string{"Argo CD", "self-heal is on", "Git"} {
		if !strings.Contains(err, w) {
			t.Errorf("refusal %q does not say %q", err, w)
		}
	}
}
