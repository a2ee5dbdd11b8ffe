package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/pullfix/pullfix/internal/approval"
	"github.com/pullfix/pullfix/internal/slackapp"
	"github.com/pullfix/pullfix/internal/watch"
	"github.com/pullfix/pullfix/internal/watch/fix"
)

// TestDismissUnknownIncident: an incident resolved and forgotten between a
// click's lookup and its action is "unknown" to the watcher; the Slack side
// must recognise that as its own ErrUnknownIncident (so the person reads
// "no longer open", not a raw error), for every action the bridge passes on.
func TestDismissUnknownIncident(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	w, err := watch.New(fake.NewClientset(), nil, nil, watch.WithCluster("test"), watch.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for !w.IsLeader() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !w.IsLeader() {
		t.Fatal("the watcher did not start leading on the fake clientset")
	}
	b := &Bridge{w: w, cluster: "test", log: log}
	const id = "0123456789"
	_, recheck := b.Recheck(ctx, id)
	for name, err := range map[string]error{
		"dismiss":      b.Dismiss(ctx, id, "U0ALICE"),
		"snooze":       b.Snooze(ctx, id, "U0ALICE", time.Now().Add(time.Hour)),
		"mark fixing":  b.MarkFixing(ctx, id, slackapp.PendingFix{Action: slackapp.ActionSetImage, By: "U0ALICE"}),
		"clear fixing": b.ClearFixing(ctx, id),
		"recheck":      recheck,
	} {
		if !errors.Is(err, slackapp.ErrUnknownIncident) {
			t.Errorf("%s of an unknown incident: %v, want slackapp.ErrUnknownIncident", name, err)
		}
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("watcher: %v", err)
	}
}

// TestBridgeErrors: the bridge turns the watcher's errors into the Slack
// app's, keeping the watcher's words: a fix under way names its approver,
// a refused fix says why, anything else stays itself.
func TestBridgeErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		check func(error) bool
	}{
		{"nil", nil, func(err error) bool { return err == nil }},
		{"unknown", fmt.Errorf("%w: %q", watch.ErrUnknownIncident, "x"), func(err error) bool {
			return errors.Is(err, slackapp.ErrUnknownIncident) && errors.Is(err, watch.ErrUnknownIncident)
		}},
		{"fix under way", &watch.FixInProgressError{ID: "x", By: "U0BOB"}, func(err error) bool {
			var busy *slackapp.FixInProgressError
			return errors.As(err, &busy) && busy.By == "U0BOB"
		}},
		{"stale", &fix.StaleError{Container: "ui", Want: "a", Got: "b"}, func(err error) bool {
			var re *slackapp.FixRefusedError
			return errors.As(err, &re) && strings.Contains(re.Reason, `now runs "b"`)
		}},
		{"candidate not verified", &fix.RefusedError{Reason: "candidate \"c9\" is not one the diagnosis verified"}, func(err error) bool {
			var re *slackapp.FixRefusedError
			return errors.As(err, &re) && strings.Contains(re.Reason, "c9")
		}},
		{"other", errors.New("connection refused"), func(err error) bool {
			var re *slackapp.FixRefusedError
			return err != nil && !errors.As(err, &re) && err.Error() == "connection refused"
		}},
	} {
		if got := slackErr(tc.err); !tc.check(got) {
			t.Errorf("%s: slackErr(%v) = %#v", tc.name, tc.err, got)
		}
	}
}

// TestToSlack: what the Slack app renders of an incident — the message
// state of each lifecycle state (a typed mapping, no strings parsed), who
// is fixing, and the pull secrets proven for it.
func TestToSlack(t *testing.T) {
	for st, want := range map[watch.State]slackapp.State{
		watch.StateOpen: slackapp.StateOpen, watch.StateNotified: slackapp.StateOpen, watch.StateFixing: slackapp.StateFixing,
		watch.StateResolved: slackapp.StateResolved, watch.StateDismissed: slackapp.StateDismissed, watch.StateSnoozed: slackapp.StateSnoozed,
	} {
		if got := messageState(st); got != want {
			t.Errorf("messageState(%s) = %s, want %s", st, got, want)
		}
	}
	inc := watch.Incident{ID: "abc", Key: watch.Key{Namespace: "ns", Workload: watch.Workload{Kind: "Deployment", Name: "ui"}, Container: "ui", Image: "x:1"},
		State: watch.StateFixing, By: "U0ALICE", NotifyRef: "C1:1.2", ProvenSecrets: []string{"regcred"}, Pods: []string{"ui-1"}}
	got := (&Bridge{}).toSlack(inc)
	if got.ID != "abc" || got.Namespace != "ns" || got.Kind != "Deployment" || got.Name != "ui" || got.Image != "x:1" || got.Ref != "C1:1.2" ||
		got.State != slackapp.StateFixing || got.FixingBy != "U0ALICE" || len(got.ProvenSecrets) != 1 || got.ProvenSecrets[0] != "regcred" || len(got.Pods) != 1 {
		t.Errorf("toSlack = %+v", got)
	}
	inc.State = watch.StateNotified
	if got := (&Bridge{}).toSlack(inc); got.FixingBy != "" || got.State != slackapp.StateOpen {
		t.Errorf("notified: FixingBy %q state %s, want none and open", got.FixingBy, got.State)
	}
	if got := approval.Approver("U0ALICE"); got != "<@U0ALICE> (Slack)" {
		t.Errorf("approverName = %q", got)
	}
}
