package watch

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// clickWhilePosting is a notifier that, while its post is under way, looks
// the incident up as a click arriving at that moment would.
type clickWhilePosting struct {
	*recorder
	w    atomic.Pointer[Watcher]
	seen atomic.Pointer[Incident]
}

func (c *clickWhilePosting) Opened(ctx context.Context, inc Incident) (string, error) {
	if w := c.w.Load(); w != nil {
		if got, ok := w.Incident(inc.ID); ok {
			c.seen.Store(&got)
		}
	}
	return c.recorder.Opened(ctx, inc)
}

// TestCandidatesVisibleWhilePosting: the buttons of a message name the
// candidates of its diagnosis; a click that arrives before the post has
// returned (a second replica's user, a fast person) must find them on the
// incident, not be told the button names no candidate.
func TestCandidatesVisibleWhilePosting(t *testing.T) {
	e := newCluster(t)
	n := &clickWhilePosting{recorder: e.rec}
	r := e.start(n)
	n.w.Store(r.w)
	e.deployment("ui-new", badImage, 1)
	poll(t, 60*time.Second, "ui-new notified", func(context.Context) (bool, error) { return len(e.rec.openedFor("ui-new")) == 1, nil })
	got := n.seen.Load()
	if got == nil {
		t.Fatal("the incident was not found while its message was being posted")
	}
	if got.Diagnosis == nil || len(got.Diagnosis.Candidates) == 0 || got.Diagnosis.Candidates[0].Image != goodImage {
		t.Errorf("while posting, the incident's diagnosis is %+v: a click then would find no candidate", got.Diagnosis)
	}
}
