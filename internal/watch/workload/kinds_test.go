package workload

import (
	"errors"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func ptr[T any](v T) *T { return &v }

// TestParseWorkload: the names people type, through the one table.
func TestParseWorkload(t *testing.T) {
	for in, want := range map[string]Workload{
		"ui-new":                        {"Deployment", "ui-new"},
		"deploy/ui-new":                 {"Deployment", "ui-new"},
		"deployments.apps/ui-new":       {"Deployment", "ui-new"},
		"sts/db":                        {"StatefulSet", "db"},
		"ds/agent":                      {"DaemonSet", "agent"},
		"cj/nightly":                    {"CronJob", "nightly"},
		"job/once":                      {"Job", "once"},
		"po/debug":                      {"Pod", "debug"},
		" StatefulSet/db ":              {"StatefulSet", "db"},
		"daemonsets.apps/node-exporter": {"DaemonSet", "node-exporter"},
	} {
		got, err := ParseWorkload(in)
		if err != nil || got != want {
			t.Errorf("ParseWorkload(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "deploy/", "a/b/c", "rs/x", "service/x"} {
		if _, err := ParseWorkload(bad); err == nil {
			t.Errorf("ParseWorkload(%q) accepted", bad)
		}
	}
}

// TestRollout: the one definition of ready, per kind: observed, every
// desired pod updated, ready and available; an OnDelete StatefulSet waits
// for no update; Serving is "some Ready pods on the latest template".
func TestRollout(t *testing.T) {
	dep := func(gen, observed int64, want, cur, upd, ready, avail int32) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: gen}, Spec: appsv1.DeploymentSpec{Replicas: ptr(want)},
			Status: appsv1.DeploymentStatus{ObservedGeneration: observed, Replicas: cur, UpdatedReplicas: upd, ReadyReplicas: ready, AvailableReplicas: avail}}
	}
	sts := func(strategy appsv1.StatefulSetUpdateStrategyType, upd int32, cur, next string) *appsv1.StatefulSet {
		return &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Generation: 2}, Spec: appsv1.StatefulSetSpec{Replicas: ptr(int32(2)),
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{Type: strategy}},
			Status: appsv1.StatefulSetStatus{ObservedGeneration: 2, Replicas: 2, UpdatedReplicas: upd, ReadyReplicas: 2, AvailableReplicas: 2,
				CurrentRevision: cur, UpdateRevision: next}}
	}
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Generation: 1}, Status: appsv1.DaemonSetStatus{ObservedGeneration: 1,
		DesiredNumberScheduled: 3, CurrentNumberScheduled: 3, UpdatedNumberScheduled: 3, NumberReady: 2, NumberAvailable: 2}}
	for _, tc := range []struct {
		name          string
		obj           Object
		done, serving bool
	}{
		{"deployment rolled out", dep(2, 2, 1, 1, 1, 1, 1), true, true},
		{"deployment not observed", dep(3, 2, 1, 1, 1, 1, 1), false, false},
		{"deployment surging", dep(2, 2, 1, 2, 1, 1, 1), false, false},
		{"deployment not ready", dep(2, 2, 1, 1, 1, 0, 0), false, false},
		{"deployment ready, not available", dep(2, 2, 1, 1, 1, 1, 0), false, true},
		{"statefulset rolled out", sts(appsv1.RollingUpdateStatefulSetStrategyType, 2, "r2", "r2"), true, true},
		{"statefulset mid-rollout", sts(appsv1.RollingUpdateStatefulSetStrategyType, 1, "r1", "r2"), false, false},
		{"statefulset OnDelete", sts(appsv1.OnDeleteStatefulSetStrategyType, 0, "r1", "r2"), true, false},
		{"daemonset one pod not ready", ds, false, true},
	} {
		kind := kindFor(tc.obj)
		r := kind.Rollout(tc.obj)
		if r.Done != tc.done || r.Serving != tc.serving {
			t.Errorf("%s: Done %v Serving %v, want %v %v (%+v)", tc.name, r.Done, r.Serving, tc.done, tc.serving, r)
		}
	}
	if r := KindOf("CronJob").Rollout(&batchv1.CronJob{}); !r.Done {
		t.Error("a CronJob has nothing to roll out: Done")
	}
}

func kindFor(o Object) *Kind {
	switch o.(type) {
	case *appsv1.Deployment:
		return KindOf("Deployment")
	case *appsv1.StatefulSet:
		return KindOf("StatefulSet")
	case *appsv1.DaemonSet:
		return KindOf("DaemonSet")
	}
	return nil
}

// TestKindsTable: every kind is reachable by name, patchable exactly when
// it has a pod-spec path and no refusal, and says why when it is not.
func TestKindsTable(t *testing.T) {
	for _, k := range Kinds {
		if KindOf(k.Name) != k {
			t.Errorf("KindOf(%s) is not its entry", k.Name)
		}
		if k.Patchable() == (k.NotPatchable != "") {
			t.Errorf("%s: Patchable %v but NotPatchable %q", k.Name, k.Patchable(), k.NotPatchable)
		}
		if k.Patchable() && k.SpecPath == "" {
			t.Errorf("%s: patchable without a pod-spec path", k.Name)
		}
	}
	if KindOf("Service") != nil {
		t.Error("KindOf(Service) is not nil")
	}
}

// TestFindNamespace: the one namespace holding a name, through the
// table's list; none or several is an error saying so.
func TestFindNamespace(t *testing.T) {
	d := func(ns, name string) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	}
	// The fake clientset ignores field selectors, so each namespace holds
	// one Deployment here; the real API server's selection is tested by
	// watch's TestOnDemandFindsTheNamespace.
	cs := fake.NewClientset(d("a", "solo"), d("b", "web"),
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "p"}})
	ctx := t.Context()
	if ns, err := FindNamespace(ctx, cs, []string{"a"}, Workload{"Deployment", "solo"}); err != nil || ns != "a" {
		t.Errorf("solo = %q, %v", ns, err)
	}
	if _, err := FindNamespace(ctx, cs, []string{"c"}, Workload{"Deployment", "web"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("none: %v, want ErrNotFound", err)
	}
	if _, err := FindNamespace(ctx, cs, nil, Workload{"Pod", "p"}); err == nil || !strings.Contains(err.Error(), "-n NAMESPACE") {
		t.Errorf("a pod: %v, want to be asked for the namespace", err)
	}
}
