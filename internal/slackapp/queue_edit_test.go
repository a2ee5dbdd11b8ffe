package slackapp

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/pullfix/pullfix/internal/testenv/slackemu"
)

// TestEditBudgetAvoids429: many edits of many messages in two channels,
// against a Slack holding chat.update to 6 per sliding second for the
// whole workspace. The queue's budget (5 in any second, counted from each
// answer) keeps every edit under the limit: all arrive, each message ends
// in its latest state, and no call meets a 429.
func TestEditBudgetAvoids429(t *testing.T) {
	e := newEnv(t, envOpts{noStart: true,
		emu:   []slackemu.Option{slackemu.WithPostRate(0, 1), slackemu.WithUpdateRate(6, time.Second)},
		queue: []QueueOption{WithEditBudget(5, time.Second)}})
	var refs []string
	for i, ch := range []string{chDefault, chTeamB, chDefault, chTeamB} {
		_, ts, err := e.api.PostMessageContext(e.ctx, ch, slack.MsgOptionText(fmt.Sprint("root ", i), false))
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, Ref(ch, ts))
	}
	var wg sync.WaitGroup
	for round := range 4 {
		for _, ref := range refs {
			wg.Go(func() {
				m := Message{Text: fmt.Sprintf("%s round %d", ref, round)}
				if err := e.app.EditRoot(e.ctx, ref, m); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait() // each round lands before the next: 16 edits, none coalesced away
	}
	if n := e.emu.RateLimited(); n != 0 {
		t.Errorf("%d calls answered 429 within the edit budget", n)
	}
	if n := len(e.emu.Calls("chat.update")); n != 16 {
		t.Errorf("%d chat.update calls, want 16", n)
	}
	for _, ref := range refs {
		ch, ts, _ := ParseRef(ref)
		if m, _ := e.emu.Message(ch, ts); m.Text != ref+" round 3" {
			t.Errorf("%s ends as %q", ref, m.Text)
		}
	}
}

// TestEditHonoursRetryAfter: a chat.update answered 429 with Retry-After
// is sent again no sooner than Slack asked, once.
func TestEditHonoursRetryAfter(t *testing.T) {
	m := newCountMetrics()
	e := newEnv(t, envOpts{noStart: true, queue: []QueueOption{WithMetrics(m)}})
	_, ts, err := e.api.PostMessageContext(e.ctx, chDefault, slack.MsgOptionText("root", false))
	if err != nil {
		t.Fatal(err)
	}
	e.emu.FailNext("chat.update", 1, slackemu.Fault{Status: 429, RetryAfter: time.Second})
	if err := e.app.EditRoot(e.ctx, Ref(chDefault, ts), Message{Text: "edited"}); err != nil {
		t.Fatal(err)
	}
	calls := e.emu.Calls("chat.update")
	if len(calls) != 2 || calls[0].Status != 429 || !calls[1].OK() {
		t.Fatalf("calls %+v, want one 429 then one ok", calls)
	}
	if gap := calls[1].At.Sub(calls[0].At); gap < time.Second-20*time.Millisecond {
		t.Errorf("retried %s after a 429 asking for 1s", gap)
	}
	if msg, _ := e.emu.Message(chDefault, ts); msg.Text != "edited" {
		t.Errorf("message is %q", msg.Text)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rateLimited != 1 || m.sent["chat.update"] != 1 {
		t.Errorf("metrics: %d rate limited, %d sent", m.rateLimited, m.sent["chat.update"])
	}
}

// TestEditsNotBehindPosts: a channel's paced posts (a backlog of thread
// replies) do not hold an edit of a message in that channel: Slack paces
// chat.postMessage per channel, chat.update per workspace.
func TestEditsNotBehindPosts(t *testing.T) {
	q := NewQueue(WithPostInterval(time.Hour), WithQueueLogger(testLogger(t)))
	defer q.Close()
	posted := make(chan struct{}, 10)
	for range 3 {
		q.Enqueue(KindReply, "C1", "", "chat.postMessage", func(context.Context) error { posted <- struct{}{}; return nil })
	}
	<-posted // the first post went; the next waits an hour
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := q.Do(ctx, KindEdit, "C1", "C1:1.1", "chat.update", func(context.Context) error { return nil }); err != nil {
		t.Fatalf("edit waited behind the channel's posts: %v", err)
	}
}

// TestDigestEditsFirst: with edits waiting for the budget, a digest edit
// (it names workloads nowhere else named) goes before edits queued
// earlier.
func TestDigestEditsFirst(t *testing.T) {
	q := NewQueue(WithEditBudget(0, 0), WithQueueLogger(testLogger(t)))
	defer q.Close()
	gate := make(chan struct{})
	var mu sync.Mutex
	var order []string
	rec := func(name string) func(context.Context) error {
		return func(context.Context) error { mu.Lock(); order = append(order, name); mu.Unlock(); return nil }
	}
	q.Enqueue(KindEdit, "C1", "C1:0.0", "chat.update", func(context.Context) error { <-gate; return nil })
	a := q.Enqueue(KindEdit, "C1", "C1:1.1", "chat.update", rec("edit"))
	b := q.Enqueue(KindEdit, "C2", "C2:2.2", "chat.update", rec("edit-2"))
	d := q.Enqueue(KindDigest, "C1", "C1:9.9", "chat.update", rec("digest"))
	close(gate)
	for _, c := range []<-chan error{a, b, d} {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	if want := []string{"digest", "edit", "edit-2"}; !slices.Equal(order, want) {
		t.Fatalf("sent %v, want %v", order, want)
	}
}
