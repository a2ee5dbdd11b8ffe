package watch

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apitypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/watch/leader"
)

// TestOptionsValidate: an option given a value it cannot use is an error
// from New that names it; the documented defaults hold otherwise.
func TestOptionsValidate(t *testing.T) {
	cs := fake.NewClientset()
	for name, opt := range map[string]Option{
		"WithWorkers":          WithWorkers(0),
		"WithResolveTimeout":   WithResolveTimeout(0),
		"WithDiagnosisBudget":  WithDiagnosisBudget(-time.Second),
		"WithCluster":          WithCluster(""),
		"WithNamespaces":       WithNamespaces("a", ""),
		"WithLogger":           WithLogger(nil),
		"WithStateConfigMap":   WithStateConfigMap("", "x"),
		"WithStateLimits":      WithStateLimits(-time.Hour, 0, 0),
		"WithLeaderElection":   WithLeaderElection(leader.Config{}),
		"WithPatcher":          WithPatcher(nil),
		"WithPullSecretSearch": WithPullSecretSearch(nil),
	} {
		if w, err := New(cs, nil, nil, opt); err == nil || w != nil {
			t.Errorf("%s: New = %v, %v; want an error", name, w, err)
		} else if !containsWord(err.Error(), name) {
			t.Errorf("%s: error %q does not name the option", name, err)
		}
	}
	w, err := New(cs, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w.workers != DefaultWorkers || w.cluster != DefaultCluster || w.resolveTimeout != DefaultResolveTimeout ||
		w.budget != DefaultDiagnosisBudget || w.groupWindow != DefaultGroupWindow {
		t.Errorf("defaults: workers %d cluster %q resolve %s budget %s window %s", w.workers, w.cluster, w.resolveTimeout, w.budget, w.groupWindow)
	}
}

func containsWord(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i:i+len(w)] == w {
			return true
		}
	}
	return false
}

// TestGroupSummary: what a storm's message shows from its members.
func TestGroupSummary(t *testing.T) {
	at := time.Now().Add(time.Hour)
	m := func(s State, by string) Incident { return Incident{State: s, By: by, SnoozedUntil: at} }
	for _, tc := range []struct {
		name    string
		members []Incident
		want    GroupState
	}{
		{"all resolved", []Incident{m(StateResolved, ""), m(StateResolved, "")}, GroupState{State: StateResolved}},
		{"one still fixing", []Incident{m(StateResolved, ""), m(StateFixing, "U1")}, GroupState{State: StateOpen}},
		{"snoozed and resolved", []Incident{m(StateResolved, ""), m(StateSnoozed, "U2")}, GroupState{State: StateSnoozed, Until: at}},
		{"dismissed and resolved", []Incident{m(StateDismissed, "U3"), m(StateResolved, "")}, GroupState{State: StateDismissed, By: "U3"}},
		{"open wins", []Incident{m(StateNotified, ""), m(StateSnoozed, "U2"), m(StateDismissed, "U3")}, GroupState{State: StateOpen}},
	} {
		if got := (Group{Members: tc.members}).Summary(); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// fixedDiagnoser says every image's tag is missing and offers one verified
// candidate.
type fixedDiagnoser struct{}

func (fixedDiagnoser) Diagnose(_ context.Context, t diagnose.Target, _ authn.Keychain) diagnose.Diagnosis {
	return diagnose.Diagnosis{Target: t, Cause: diagnose.TagNotFound, Summary: "tag not found",
		Candidates: []diagnose.Candidate{{ID: "c1", Image: "registry.example.com/app:2"}}}
}

func failingPod(name string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: apitypes.UID("uid-" + name)},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.example.com/app:1"}}},
		Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
			Name: "app", Image: "registry.example.com/app:1",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: "manifest unknown"}},
		}}},
	}
}

// runFake runs a watcher on a fake clientset (a unit test of the
// watcher's own rules; the real API server's behaviour is tested
// elsewhere) and returns it with its recorder.
func runFake(t *testing.T, cs kubernetes.Interface) (*Watcher, *recorder) {
	t.Helper()
	rec := &recorder{}
	w, err := New(cs, fixedDiagnoser{}, rec, WithCluster("test"), WithDiagnosisBudget(0), WithResolveTimeout(time.Minute),
		WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watcher: %v", err)
		}
	})
	poll(t, 30*time.Second, "leading", func(context.Context) (bool, error) { return w.IsLeader(), nil })
	return w, rec
}

// TestDoubleClickGuard: the watcher holds the double-click guard. Of two
// concurrent MarkFixing calls exactly one goes on and the other learns who
// is fixing; a fix applied outside pullfix after that is reported
// resolved by the watcher, naming the approver.
func TestDoubleClickGuard(t *testing.T) {
	cs := fake.NewClientset()
	w, rec := runFake(t, cs)
	ctx := t.Context()
	if _, err := cs.CoreV1().Pods("ns").Create(ctx, failingPod("clicked"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var clicked Incident
	poll(t, 30*time.Second, "the incident notified", func(context.Context) (bool, error) {
		inc, ok := w.Incident(IncidentID(Key{Cluster: "test", Namespace: "ns", Workload: Workload{Kind: "Pod", Name: "clicked"}, Container: "app", Image: "registry.example.com/app:1"}))
		clicked = inc
		return ok && inc.State == StateNotified && inc.NotifyRef != "", nil
	})

	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, who := range []string{"U0ALICE", "U0BOB"} {
		wg.Go(func() { errs[i] = w.MarkFixing(ctx, clicked.ID, who) })
	}
	wg.Wait()
	var busy *FixInProgressError
	winner := ""
	switch {
	case errs[0] == nil && errors.As(errs[1], &busy) && busy.By == "U0ALICE":
		winner = "U0ALICE"
	case errs[1] == nil && errors.As(errs[0], &busy) && busy.By == "U0BOB":
		winner = "U0BOB"
	default:
		t.Fatalf("two clicks: %v, %v; want one to go on and the other told who is fixing", errs[0], errs[1])
	}

	if err := cs.CoreV1().Pods("ns").Delete(ctx, "clicked", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "resolved", func(context.Context) (bool, error) {
		_, resolved := rec.snapshot()
		return len(resolved) == 1, nil
	})
	if _, resolved := rec.snapshot(); resolved[0].ID != clicked.ID || resolved[0].By != winner {
		t.Errorf("resolved %+v, want %s by %s", resolved[0], clicked.ID, winner)
	}
}
