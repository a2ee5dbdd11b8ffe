package watch

import (
	"context"
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pullfix/pullfix/internal/diagnose"
)

const otherBadImage = "public.ecr.aws/aws-containers/retailing-store-sample-ui:9.9.9"

// TestIncidentID: IDs are short, stable and differ per key.
func TestIncidentID(t *testing.T) {
	k := Key{Cluster: "c", Namespace: "ns", Workload: Workload{Kind: "Deployment", Name: "ui"}, Container: "ui", Image: badImage}
	id := IncidentID(k)
	if len(id) != 10 || id != IncidentID(k) {
		t.Fatalf("IncidentID = %q, want 10 stable hex digits", id)
	}
	k2 := k
	k2.Image = goodImage
	if IncidentID(k2) == id {
		t.Error("a different image must give a different ID")
	}
	if isGroupID(id) || !isGroupID(newGroupID()) {
		t.Error("incident and group IDs must be told apart")
	}
}

// TestLifecycle: dismiss keeps a key quiet (even when its pods come back)
// until the image changes; snooze posts again at its end if still
// failing; fixing then the fix resolves once; bad calls fail clearly.
func TestLifecycle(t *testing.T) {
	e := newCluster(t)
	r := e.start(e.rec, WithStateConfigMap(e.ns, ""))
	w, ctx := r.w, t.Context()
	e.deployment("dismiss-me", badImage, 1)
	e.deployment("snooze-me", badImage, 1)
	dis := activeIncident(t, w, "dismiss-me", 1)
	snz := activeIncident(t, w, "snooze-me", 1)
	poll(t, 30*time.Second, "both notified", func(context.Context) (bool, error) {
		opened, _ := e.rec.snapshot()
		return len(opened) == 2, nil
	})
	e.rec.mu.Lock()
	opened, openedAt := append([]Incident(nil), e.rec.opened...), append([]time.Time(nil), e.rec.openedAt...)
	e.rec.mu.Unlock()
	for i, inc := range opened {
		lat := openedAt[i].Sub(inc.Opened)
		// A figure, not a promise of this test: the latency is measured by
		// the benchmark (hack/bench); on a loaded machine it varies.
		t.Logf("%s: detection → notification %s (probe %s)", inc.Key.Name, lat.Round(time.Millisecond), inc.Diagnosis.ProbeDuration.Round(time.Millisecond))
	}

	// Bad calls.
	if err := w.Dismiss(ctx, "0123456789", "U1"); !errors.Is(err, ErrUnknownIncident) {
		t.Errorf("Dismiss(unknown) = %v, want ErrUnknownIncident", err)
	}
	if err := w.Snooze(ctx, snz.ID, time.Now().Add(-time.Minute), "U1"); err == nil {
		t.Error("Snooze into the past accepted")
	}

	// Dismiss.
	if err := w.Dismiss(ctx, dis.ID, "U-dismisser"); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "dismissal reported", func(context.Context) (bool, error) {
		for _, u := range e.rec.updates() {
			if u.ID == dis.ID && u.State == StateDismissed && u.By == "U-dismisser" && u.NotifyRef != "" {
				return true, nil
			}
		}
		return false, nil
	})
	var te *TransitionError
	if err := w.MarkFixing(ctx, dis.ID, "U2"); !errors.As(err, &te) || te.State != StateDismissed {
		t.Errorf("MarkFixing(dismissed) = %v, want a TransitionError", err)
	}
	// Its pod replaced: same key, still quiet.
	if err := e.cs.CoreV1().Pods(e.ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "app=dismiss-me"}); err != nil {
		t.Fatal(err)
	}
	// Recheck still works on a dismissed, failing incident.
	var re Incident
	poll(t, 60*time.Second, "recheck of the replacement pod", func(ctx context.Context) (bool, error) {
		var err error
		re, err = w.Recheck(ctx, dis.ID)
		return err == nil, nil
	})
	if re.Diagnosis == nil || re.Diagnosis.Cause != diagnose.RepoNotFound || re.State != StateDismissed {
		t.Errorf("Recheck = %+v", re)
	}
	// A new image is a new incident.
	e.setImage("dismiss-me", otherBadImage)
	poll(t, 60*time.Second, "new image notified", func(context.Context) (bool, error) {
		for _, inc := range e.rec.openedFor("dismiss-me") {
			if inc.Key.Image == otherBadImage {
				return true, nil
			}
		}
		return false, nil
	})
	for _, inc := range e.rec.openedFor("dismiss-me") {
		if inc.Key.Image == badImage && inc.ID != dis.ID {
			t.Errorf("dismissed key posted again: %+v", inc)
		}
	}
	if n := len(e.rec.openedFor("dismiss-me")); n != 2 {
		t.Errorf("dismiss-me posted %d times, want 2 (first image, then the new one)", n)
	}

	// Snooze: posted again at its end, still failing.
	until := time.Now().Add(2 * time.Second)
	if err := w.Snooze(ctx, snz.ID, until, "U-snoozer"); err != nil {
		t.Fatal(err)
	}
	if inc, _ := w.Incident(snz.ID); inc.State != StateSnoozed || !inc.SnoozedUntil.Equal(until) {
		t.Errorf("after Snooze: %+v", inc)
	}
	poll(t, 30*time.Second, "snoozed incident posted again", func(context.Context) (bool, error) {
		return len(e.rec.openedFor("snooze-me")) == 2, nil
	})
	again := e.rec.openedFor("snooze-me")[1]
	e.rec.mu.Lock()
	last := e.rec.openedAt[len(e.rec.openedAt)-1]
	e.rec.mu.Unlock()
	if last.Before(until) {
		t.Error("posted again before the snooze ended")
	}
	if again.ID != snz.ID || again.Diagnosis == nil {
		t.Errorf("re-notification %+v", again)
	}
	inc, _ := w.Incident(snz.ID)
	if inc.State != StateNotified || inc.NotifyRef == "ref-1" || inc.NotifyRef == "" {
		t.Errorf("after waking: %+v, want notified with a new message ref", inc)
	}

	// Fixing, then the fix: resolved once.
	if err := w.MarkFixing(ctx, snz.ID, "U-fixer"); err != nil {
		t.Fatal(err)
	}
	e.setImage("snooze-me", goodImage)
	poll(t, 90*time.Second, "resolved", func(context.Context) (bool, error) {
		_, resolved := e.rec.snapshot()
		return len(resolved) == 1, nil
	})
	_, resolved := e.rec.snapshot()
	if resolved[0].ID != snz.ID || resolved[0].By != "U-fixer" {
		t.Errorf("resolved %+v", resolved[0])
	}
	fixing := false
	for _, u := range e.rec.updates() {
		fixing = fixing || (u.ID == snz.ID && u.State == StateFixing)
	}
	if !fixing {
		t.Error("fixing was not reported")
	}
	if err := w.Snooze(ctx, snz.ID, time.Now().Add(time.Hour), "U1"); !errors.As(err, &te) || te.State != StateResolved {
		t.Errorf("Snooze(resolved) = %v, want a TransitionError", err)
	}
}

// TestSnoozeFixedMeanwhile: a snoozed incident fixed before it wakes is
// reported resolved and not posted again.
func TestSnoozeFixedMeanwhile(t *testing.T) {
	e := newCluster(t)
	r := e.start(e.rec)
	e.deployment("ui", badImage, 1)
	inc := activeIncident(t, r.w, "ui", 1)
	poll(t, 30*time.Second, "notified", func(context.Context) (bool, error) { return len(e.rec.openedFor("ui")) == 1, nil })
	if err := r.w.Snooze(t.Context(), inc.ID, time.Now().Add(time.Hour), "U1"); err != nil {
		t.Fatal(err)
	}
	e.setImage("ui", goodImage)
	poll(t, 90*time.Second, "resolved", func(context.Context) (bool, error) {
		_, resolved := e.rec.snapshot()
		return len(resolved) == 1, nil
	})
	if n := len(e.rec.openedFor("ui")); n != 1 {
		t.Errorf("posted %d times, want 1", n)
	}
}
