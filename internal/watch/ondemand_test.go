package watch

import (
	"errors"
	"log/slog"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/testenv/controlplane"
)

// TestOnDemandFindsTheNamespace: `/pullfix NAME` without -n finds the one
// namespace holding NAME, and says clearly when there is none, several,
// or one outside the bot's scope (real API server).
func TestOnDemandFindsTheNamespace(t *testing.T) {
	controlplane.Require(t, cp)
	ctx := t.Context()
	cs, err := kubernetes.NewForConfig(cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	one := int32(0) // no pods: healthy as far as images go
	mk := func(ns, name string) {
		t.Helper()
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatal(err)
		}
		labels := map[string]string{"app": name}
		if _, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "nginx:1"}}}}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mk("od-a", "web")
	mk("od-b", "web")
	mk("od-a", "solo")
	mk("od-c", "hidden")

	b, err := New(cs, diagnose.NewDiagnoser(nil), nil, WithCluster("od"), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	inc, healthy, err := b.DiagnoseNow(ctx, "", "", "solo")
	if err != nil || !healthy || inc.Key.Namespace != "od-a" {
		t.Errorf("solo: %+v healthy=%v err=%v, want healthy in od-a", inc, healthy, err)
	}
	if _, _, err := b.DiagnoseNow(ctx, "", "", "web"); err == nil || !strings.Contains(err.Error(), "several namespaces (od-a, od-b)") {
		t.Errorf("web: err = %v, want ambiguous naming od-a and od-b", err)
	}
	if _, _, err := b.DiagnoseNow(ctx, "", "", "nope-xyz"); !errors.Is(err, ErrWorkloadNotFound) {
		t.Errorf("unknown: err = %v, want ErrWorkloadNotFound", err)
	}
	if _, _, err := b.DiagnoseNow(ctx, "od-b", "", "nope-xyz"); !errors.Is(err, ErrWorkloadNotFound) {
		t.Errorf("unknown in a namespace: err = %v, want ErrWorkloadNotFound", err)
	}

	scoped, err := New(cs, diagnose.NewDiagnoser(nil), nil, WithCluster("od"), WithNamespaces("od-a", "od-b"), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := scoped.DiagnoseNow(ctx, "od-c", "", "hidden"); err == nil || !strings.Contains(err.Error(), "outside what this bot watches") {
		t.Errorf("out of scope: err = %v", err)
	}
	if _, _, err := scoped.DiagnoseNow(ctx, "", "", "hidden"); !errors.Is(err, ErrWorkloadNotFound) {
		t.Errorf("hidden from a scoped bot: err = %v, want not found in its namespaces", err)
	}
}
