package watch

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// detectRec is a recorder that is also a Detector.
type detectRec struct {
	*recorder
	mu         sync.Mutex
	detected   []Incident
	detectedAt []time.Time
	forgotten  []Incident
}

func (d *detectRec) Detected(_ context.Context, inc Incident) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.detected = append(d.detected, inc)
	d.detectedAt = append(d.detectedAt, time.Now())
}

func (d *detectRec) Forgotten(_ context.Context, inc Incident) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.forgotten = append(d.forgotten, inc)
}

// TestDetectedBeforeOpened: a Detector hears of a new incident once, when
// it opens — before Opened and its registry probe — with the kubelet's
// words classified and no request sent; a storm digest names the workload
// from that.
func TestDetectedBeforeOpened(t *testing.T) {
	e := newCluster(t)
	rec := &detectRec{recorder: e.rec}
	e.w = e.start(rec).w
	e.deployment("ui-new", badImage, 3)
	poll(t, 60*time.Second, "one notification", func(context.Context) (bool, error) {
		return len(rec.openedFor("ui-new")) == 1, nil
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.detected) != 1 {
		t.Fatalf("Detected %d times, want once for 3 failing pods", len(rec.detected))
	}
	d := rec.detected[0]
	opened := rec.openedFor("ui-new")[0]
	if d.Key != opened.Key || d.ID != opened.ID {
		t.Errorf("Detected %v / %s, Opened %v / %s", d.Key, d.ID, opened.Key, opened.ID)
	}
	if d.Diagnosis == nil || d.Diagnosis.Certainty != diagnose.CertaintyWords || d.Diagnosis.ProbeDuration != 0 {
		t.Fatalf("Detected with %+v, want the kubelet's words only", d.Diagnosis)
	}
	if d.Diagnosis.Cause != diagnose.ImageNotFound && d.Diagnosis.Cause != diagnose.RepoNotFound {
		t.Errorf("words classified as %s", d.Diagnosis.Cause)
	}
	rec.recorder.mu.Lock()
	openedAt := rec.recorder.openedAt[0]
	rec.recorder.mu.Unlock()
	if !rec.detectedAt[0].Before(openedAt) {
		t.Errorf("Detected at %s, not before Opened at %s", rec.detectedAt[0], openedAt)
	}
}

// TestForgetOnlyUnnotified: Forgotten is for an incident that closes while
// still open (never notified); a notified one is reported by Resolved.
func TestForgetOnlyUnnotified(t *testing.T) {
	rec := &detectRec{recorder: &recorder{}}
	w, err := New(nil, nil, rec)
	if err != nil {
		t.Fatal(err)
	}
	w.forget(t.Context(), Incident{ID: "a", State: StateOpen})
	w.forget(t.Context(), Incident{ID: "b", State: StateNotified})
	if len(rec.forgotten) != 1 || rec.forgotten[0].ID != "a" {
		t.Fatalf("forgotten %v", rec.forgotten)
	}
}
