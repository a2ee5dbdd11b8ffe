package slackapp

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/pullfix/pullfix/internal/testenv/slackemu"
)

// recordingIncidents records the approved fix and, while gate is open,
// holds MarkFixing: a state write that has not returned.
type recordingIncidents struct {
	*memIncidents
	entered chan PendingFix
	gate    chan struct{}
}

func (r *recordingIncidents) MarkFixing(ctx context.Context, id string, fix PendingFix) error {
	r.entered <- fix
	select {
	case <-r.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return r.memIncidents.MarkFixing(ctx, id, fix)
}

// TestFixClickAckedOnceRecorded: a fix click is acknowledged only once the
// approved fix is recorded (a bot that dies before that never acked, and
// Slack tells the clicker), with what it sets. Socket Mode and HTTP mode.
func TestFixClickAckedOnceRecorded(t *testing.T) {
	for _, mode := range []string{"socket", "http"} {
		t.Run(mode, func(t *testing.T) {
			rec := &recordingIncidents{entered: make(chan PendingFix, 1), gate: make(chan struct{})}
			e := newEnv(t, envOpts{http: mode == "http", incidents: func(m *memIncidents) Incidents { rec.memIncidents = m; return rec }})
			ch, ts := e.open("inc-default")
			acked := make(chan error, 1)
			go func() {
				_, err := e.click(alice, ch, ts, ActionIDSetImage, "")
				acked <- err
			}()
			var fix PendingFix
			select {
			case fix = <-rec.entered:
			case <-time.After(10 * time.Second):
				t.Fatal("the click did not reach MarkFixing")
			}
			select {
			case err := <-acked:
				t.Fatalf("the click was acknowledged (%v) before its fix was recorded", err)
			default:
			}
			if want := (PendingFix{Action: ActionSetImage, Arg: "c1", Target: fixedImage, By: alice}); fix != want {
				t.Errorf("recorded %+v, want %+v", fix, want)
			}
			close(rec.gate)
			if err := <-acked; err != nil {
				t.Fatalf("click: %v", err)
			}
			e.waitFor("the fix to finish", func() bool { return anyContains(e.replies(ch, ts), "Resolved:") })
		})
	}
}

// TestFindPostedAndAdopt: a root posted with a post id is found in the
// channel's history by incident and post id (not by another post id or
// another cluster's), pages back when the channel moved on, and adopting it
// edits it without a second details reply.
func TestFindPostedAndAdopt(t *testing.T) {
	e := newEnv(t, envOpts{noStart: true, emu: []slackemu.Option{slackemu.WithPostRate(0, 0)}})
	inc, err := e.incs.Incident(e.ctx, "inc-default")
	if err != nil {
		t.Fatal(err)
	}
	inc.PostID = "post-1"
	ref, err := e.app.Opened(e.ctx, inc)
	if err != nil {
		t.Fatal(err)
	}
	// A busy channel: the root is beyond the first page of history.
	for i := range 2 * historyPage {
		if _, _, err := e.api.PostMessageContext(e.ctx, chDefault, slack.MsgOptionText(fmt.Sprintf("later %d", i), false)); err != nil {
			t.Fatal(err)
		}
	}
	// A fresh process: it knows nothing of the post.
	fresh := New(e.api, e.app.cfg, e.app.deps, WithLogger(testLogger(t)))
	t.Cleanup(fresh.Close)
	got, err := fresh.FindPosted(e.ctx, inc, time.Now().Add(-time.Minute))
	if err != nil || got != ref {
		t.Fatalf("FindPosted = %q, %v; want %q", got, err, ref)
	}
	other := inc
	other.PostID = "post-2"
	if got, err := fresh.FindPosted(e.ctx, other, time.Time{}); err != nil || got != "" {
		t.Errorf("another post id found %q (%v)", got, err)
	}
	foreign := New(e.api, Config{Cluster: "other-cluster", DefaultChannel: chDefault}, e.app.deps, WithLogger(testLogger(t)))
	t.Cleanup(foreign.Close)
	if got, err := foreign.FindPosted(e.ctx, inc, time.Time{}); err != nil || got != "" {
		t.Errorf("another cluster's bot found %q (%v)", got, err)
	}
	inc.Ref = got
	if err := fresh.Adopt(e.ctx, inc); err != nil {
		t.Fatal(err)
	}
	ch, ts, _ := ParseRef(ref)
	details := 0
	for _, m := range e.emu.Thread(ch, ts) {
		if strings.HasPrefix(m.Text, "Details: ") {
			details++
		}
	}
	root, _ := e.emu.Message(ch, ts)
	if details != 1 || len(root.Edits) != 1 || len(e.emu.Messages(ch)) != 1+2*historyPage {
		t.Errorf("after adoption: %d details replies, root edited %d times, %d roots; want 1, 1, %d", details, len(root.Edits), len(e.emu.Messages(ch)), 1+2*historyPage)
	}
}

// TestResumeFix: a fix left under way by a previous process is answered:
// not applied — fixable again, the root offers the button with a note, the
// thread says so and the approver is told privately; applied — the rollout
// is followed and the root ends resolved.
func TestResumeFix(t *testing.T) {
	e := newEnv(t, envOpts{noStart: true})
	ch, ts := e.open("inc-default")
	inc, _ := e.incs.Incident(e.ctx, "inc-default")
	fix := PendingFix{Action: ActionSetImage, Arg: "c1", Target: fixedImage, By: alice}
	if err := e.incs.MarkFixing(e.ctx, inc.ID, fix); err != nil {
		t.Fatal(err)
	}
	e.app.ResumeFix(e.ctx, inc, fix)
	if got, _ := e.incs.Incident(e.ctx, inc.ID); got.FixingBy != "" {
		t.Errorf("still fixing by %q after a fix found not applied", got.FixingBy)
	}
	e.ephemeralWith(alice, "was not carried out")
	e.waitFor("the thread to say so", func() bool { return anyContains(e.replies(ch, ts), "was not applied") })
	root, _ := e.emu.Message(ch, ts)
	if !strings.Contains(string(root.Blocks), ActionIDSetImage) || !strings.Contains(string(root.Blocks), "Click it again") {
		t.Errorf("the root does not offer the fix again with the note: %s", root.Blocks)
	}
	if n := len(e.fixer.Calls()); n != 0 {
		t.Errorf("%d Fixer calls for a fix not applied", n)
	}

	fix.Applied = true
	e.app.ResumeFix(e.ctx, inc, fix)
	if calls := e.fixer.Calls(); len(calls) != 1 || calls[0].Method != "FollowRollout" {
		t.Errorf("Fixer calls %+v, want one FollowRollout", calls)
	}
	e.waitFor("the root to end resolved", func() bool {
		m, _ := e.emu.Message(ch, ts)
		return strings.Contains(m.Text, "✅") && strings.Contains(m.Text, "1/1 Running")
	})
	if !anyContains(e.replies(ch, ts), "found applied after pullfix restarted") {
		t.Errorf("the thread does not say the fix was found applied: %q", e.replies(ch, ts))
	}
}
