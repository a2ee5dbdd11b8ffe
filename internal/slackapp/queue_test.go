package slackapp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pullfix/pullfix/internal/testenv/slackemu"
)

// noStorm turns storm digests off: these tests are about the queue's
// pacing of one message per incident (storm_test.go has the digests).
var noStorm = []Option{WithStorm(0, 0, 0)}

// countMetrics counts what the queue reports.
type countMetrics struct {
	mu          sync.Mutex
	sent        map[string]int
	rateLimited int
	failed      int
	dropped     map[Kind]int
}

func newCountMetrics() *countMetrics {
	return &countMetrics{sent: map[string]int{}, dropped: map[Kind]int{}}
}

func (m *countMetrics) Sent(method string) { m.mu.Lock(); m.sent[method]++; m.mu.Unlock() }
func (m *countMetrics) RateLimited(string, time.Duration) {
	m.mu.Lock()
	m.rateLimited++
	m.mu.Unlock()
}
func (m *countMetrics) Failed(string, bool) { m.mu.Lock(); m.failed++; m.mu.Unlock() }
func (m *countMetrics) Dropped(k Kind)      { m.mu.Lock(); m.dropped[k]++; m.mu.Unlock() }

// TestQueueOverflowDropsOnlyLowValue: with the channel stalled and the
// queue at capacity, new writes shed the oldest progress updates first,
// then the oldest thread replies; root notifications, root edits and
// answers to people are never shed, and what is sent keeps its order.
func TestQueueOverflowDropsOnlyLowValue(t *testing.T) {
	m := newCountMetrics()
	q := NewQueue(WithPostInterval(0), WithQueueCapacity(6), WithMetrics(m), WithQueueLogger(testLogger(t)))
	defer q.Close()

	gate := make(chan struct{})
	var mu sync.Mutex
	var sent []string
	write := func(name string) func(context.Context) error {
		return func(ctx context.Context) error {
			mu.Lock()
			sent = append(sent, name)
			mu.Unlock()
			return nil
		}
	}
	// The first write stalls the channel (Slack is slow).
	stall := q.Enqueue(KindRoot, "C1", "", "chat.postMessage", func(ctx context.Context) error {
		<-gate
		return nil
	})
	waitLen := func(n int) {
		deadline := time.Now().Add(5 * time.Second)
		for q.Len() != n {
			if time.Now().After(deadline) {
				t.Fatalf("queue length %d, want %d", q.Len(), n)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitLen(0) // the stall is in flight, not queued

	type entry struct {
		name string
		kind Kind
		done <-chan error
	}
	var es []entry
	add := func(kind Kind, name string) {
		es = append(es, entry{name, kind, q.Enqueue(kind, "C1", "", "m", write(name))})
	}
	add(KindProgress, "p1")
	add(KindReply, "r1")
	add(KindRoot, "root1")
	add(KindProgress, "p2")
	add(KindReply, "r2")
	add(KindEphemeral, "e1") // another lane, same bound
	// Full (6). Each of these sheds the oldest least valuable write.
	add(KindRoot, "root2")  // sheds p1
	add(KindReply, "r3")    // sheds p2
	add(KindRoot, "root3")  // sheds r1
	add(KindProgress, "p3") // nothing less valuable is queued: p3 itself is shed
	add(KindRoot, "root4")  // sheds r2
	add(KindRoot, "root5")  // sheds r3
	add(KindRoot, "root6")  // nothing droppable left: admitted over capacity
	add(KindReply, "r4")    // shed itself (only roots and an ephemeral queued)
	close(gate)
	if err := <-stall; err != nil {
		t.Fatal(err)
	}

	wantDropped := map[string]bool{"p1": true, "p2": true, "r1": true, "p3": true, "r2": true, "r3": true, "r4": true}
	for _, e := range es {
		err := <-e.done
		if wantDropped[e.name] {
			if !errors.Is(err, ErrDropped) {
				t.Errorf("%s: %v, want ErrDropped", e.name, err)
			}
		} else if err != nil {
			t.Errorf("%s (%s): %v, want sent", e.name, e.kind, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var c1 []string
	for _, s := range sent {
		if s != "e1" {
			c1 = append(c1, s)
		}
	}
	if want := []string{"root1", "root2", "root3", "root4", "root5", "root6"}; !slices.Equal(c1, want) {
		t.Errorf("sent in C1: %v, want %v (in order)", c1, want)
	}
	if !slices.Contains(sent, "e1") {
		t.Error("the ephemeral answer was not sent")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.dropped[KindProgress] != 3 || m.dropped[KindReply] != 4 || m.dropped[KindRoot] != 0 {
		t.Errorf("dropped metrics: %v", m.dropped)
	}
}

// TestQueueCoalescesRootEdits: edits of one message waiting behind a slow
// write collapse into the latest; every caller learns it was applied.
func TestQueueCoalescesRootEdits(t *testing.T) {
	q := NewQueue(WithPostInterval(0), WithQueueLogger(testLogger(t)))
	defer q.Close()
	gate := make(chan struct{})
	// Edits share one lane (Slack budgets chat.update per workspace): an
	// edit Slack is slow to answer holds the ones behind it.
	q.Enqueue(KindEdit, "C1", "C1:0.0", "chat.update", func(context.Context) error { <-gate; return nil })
	var mu sync.Mutex
	var applied []string
	var dones []<-chan error
	for i := range 4 {
		state := fmt.Sprint("state-", i)
		dones = append(dones, q.Enqueue(KindEdit, "C1", "C1:1.1", "chat.update", func(context.Context) error {
			mu.Lock()
			applied = append(applied, state)
			mu.Unlock()
			return nil
		}))
	}
	other := q.Enqueue(KindEdit, "C1", "C1:2.2", "chat.update", func(context.Context) error {
		mu.Lock()
		applied = append(applied, "other")
		mu.Unlock()
		return nil
	})
	close(gate)
	for i, d := range append(dones, other) {
		if err := <-d; err != nil {
			t.Fatalf("edit %d: %v", i, err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"state-3", "other"}; !slices.Equal(applied, want) {
		t.Fatalf("applied %v, want %v", applied, want)
	}
}

// TestThirtyIncidentsAllDelivered: 30 incidents at once, in two channels,
// against a Slack that allows bursts of 3 then answers 429 with
// Retry-After. The queue is set faster than Slack allows, so it must meet
// 429s and honour them: every root message arrives exactly once, in order
// per channel, and no request is lost.
func TestThirtyIncidentsAllDelivered(t *testing.T) {
	m := newCountMetrics()
	e := newEnv(t, envOpts{noStart: true, app: noStorm,
		emu:   []slackemu.Option{slackemu.WithPostRate(5, 3)},
		queue: []QueueOption{WithPostInterval(20 * time.Millisecond), WithMetrics(m)}})
	const n = 30
	start := time.Now()
	var wg sync.WaitGroup
	refs := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		ns := nsDefault
		if i%2 == 1 {
			ns = nsTeamB
		}
		inc := runbookIncident(fmt.Sprintf("inc-%02d", i), ns)
		inc.Name = fmt.Sprintf("ui-%02d", i)
		wg.Go(func() { refs[i], errs[i] = e.app.Opened(e.ctx, inc) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	for i, err := range errs {
		if err != nil {
			t.Fatalf("incident %d: %v", i, err)
		}
	}
	seen := map[string]bool{}
	for _, r := range refs {
		if seen[r] {
			t.Fatalf("two incidents share message %s", r)
		}
		seen[r] = true
	}
	a, b := e.emu.Messages(chDefault), e.emu.Messages(chTeamB)
	if len(a)+len(b) != n || len(a) != n/2 {
		t.Fatalf("delivered %d + %d root messages, want %d + %d", len(a), len(b), n/2, n/2)
	}
	limited := e.emu.RateLimited()
	if limited == 0 {
		t.Fatal("the emulator answered no 429: the test did not exercise Retry-After")
	}
	ok := 0
	for _, c := range e.emu.Calls("chat.postMessage") {
		switch {
		case c.OK():
			ok++
		case c.Status != 429:
			t.Errorf("unexpected answer %d %s", c.Status, c.Error)
		}
	}
	// Each incident is two posts: the root and its details reply.
	if ok != 2*n {
		t.Errorf("%d accepted posts, want %d", ok, 2*n)
	}
	m.mu.Lock()
	if m.rateLimited != limited || m.sent["chat.postMessage"] != 2*n {
		t.Errorf("metrics: %d rate limited (emulator %d), %d sent", m.rateLimited, limited, m.sent["chat.postMessage"])
	}
	m.mu.Unlock()
	t.Logf("30 incidents in 2 channels: %s, %d answered 429, %d posts in all", elapsed.Round(time.Millisecond), limited, len(e.emu.Calls("chat.postMessage")))
}

// TestPacingAvoids429: at the queue's pace (here 1 per 150 ms against a
// Slack allowing 10/s with no burst) a channel never meets a 429, and
// consecutive posts in a channel are at least the interval apart.
func TestPacingAvoids429(t *testing.T) {
	const interval = 150 * time.Millisecond
	e := newEnv(t, envOpts{noStart: true, app: noStorm,
		emu:   []slackemu.Option{slackemu.WithPostRate(10, 1)},
		queue: []QueueOption{WithPostInterval(interval)}})
	var wg sync.WaitGroup
	for i := range 10 {
		inc := runbookIncident(fmt.Sprintf("inc-%02d", i), nsDefault)
		wg.Go(func() {
			if _, err := e.app.Opened(e.ctx, inc); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := e.emu.RateLimited(); n != 0 {
		t.Errorf("%d posts answered 429 at the paced rate", n)
	}
	calls := e.emu.Calls("chat.postMessage")
	if len(calls) != 20 { // 10 roots, 10 details replies
		t.Fatalf("%d posts, want 20", len(calls))
	}
	for i := 1; i < len(calls); i++ {
		// Emulator timestamps are taken on arrival; allow for scheduling.
		if gap := calls[i].At.Sub(calls[i-1].At); gap < interval-20*time.Millisecond {
			t.Errorf("posts %d and %d only %s apart", i-1, i, gap)
		}
	}
}

// TestSlackOutageRetried: Slack answers 503, then ok:false internal_error,
// then a 429 — the root message, its edit and its thread reply all arrive,
// once each and in order.
func TestSlackOutageRetried(t *testing.T) {
	m := newCountMetrics()
	e := newEnv(t, envOpts{noStart: true, queue: []QueueOption{WithMetrics(m)}})
	e.emu.FailNext("chat.postMessage", 3, slackemu.Fault{Status: 503})
	e.emu.FailNext("chat.postMessage", 1, slackemu.Fault{Error: "internal_error"})
	e.emu.FailNext("chat.postMessage", 1, slackemu.Fault{Status: 429, RetryAfter: time.Second})
	e.emu.FailNext("chat.update", 2, slackemu.Fault{Status: 502})

	_, ts := e.open("inc-default")
	inc, _ := e.incs.Incident(e.ctx, "inc-default")
	if err := e.app.Resolved(e.ctx, inc, Resolution{Actor: alice, Image: fixedImage, ReadyPods: 1, Desired: 1}); err != nil {
		t.Fatal(err)
	}
	if roots := e.emu.Messages(chDefault); len(roots) != 1 {
		t.Fatalf("%d root messages, want 1", len(roots))
	}
	root, _ := e.emu.Message(chDefault, ts)
	if len(root.Edits) != 1 || !strings.Contains(root.Text, "✅") {
		t.Errorf("root after outage: %q with %d edits", root.Text, len(root.Edits))
	}
	if rs := e.replies(chDefault, ts); len(rs) != 1 || !strings.Contains(rs[0], "Resolved") {
		t.Errorf("thread after outage: %q", rs)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failed != 6 || m.rateLimited != 1 {
		t.Errorf("metrics: %d failed attempts (want 6), %d rate limited (want 1)", m.failed, m.rateLimited)
	}
}

// TestPermanentErrorsNotRetried: Slack refusing the content or the target
// (channel_not_found) fails at once with Slack's error, and a cancelled
// caller's root is withdrawn rather than posted later.
func TestPermanentErrorsNotRetried(t *testing.T) {
	e := newEnv(t, envOpts{noStart: true})
	e.app.cfg.Channels = map[string]string{"lost": "C0NOWHERE1"}
	inc := runbookIncident("inc-lost", "lost")
	_, err := e.app.Opened(e.ctx, inc)
	if err == nil || !strings.Contains(err.Error(), "channel_not_found") {
		t.Fatalf("Opened = %v, want channel_not_found", err)
	}
	if n := len(e.emu.Calls("chat.postMessage")); n != 1 {
		t.Errorf("%d attempts, want 1", n)
	}

	// Slack is down; the caller gives up: its root must not appear later,
	// and the next incident's root still gets through once Slack is back.
	e.emu.FailNext("chat.postMessage", 8, slackemu.Fault{Status: 503})
	ctx, cancel := context.WithTimeout(e.ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := e.app.Opened(ctx, runbookIncident("inc-default", nsDefault)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Opened during outage = %v", err)
	}
	next := runbookIncident("inc-next", nsDefault)
	next.Name = "ui-next"
	if _, err := e.app.Opened(e.ctx, next); err != nil {
		t.Fatal(err)
	}
	roots := e.emu.Messages(chDefault)
	if len(roots) != 1 || !strings.Contains(roots[0].Text, "ui-next") {
		t.Errorf("roots after the outage: %d (want only ui-next's)", len(roots))
	}
}

// TestPostBurst: with a burst allowance the first writes of a quiet channel
// go out back to back, then pacing applies; the emulator, which allows the
// same burst, answers no 429.
func TestPostBurst(t *testing.T) {
	const interval = time.Second
	e := newEnv(t, envOpts{noStart: true, app: noStorm,
		emu:   []slackemu.Option{slackemu.WithPostRate(1, 3)},
		queue: []QueueOption{WithPostInterval(interval), WithPostBurst(3)}})
	var wg sync.WaitGroup
	for i := range 5 {
		inc := runbookIncident(fmt.Sprintf("inc-%02d", i), nsDefault)
		wg.Go(func() {
			if _, err := e.app.Opened(e.ctx, inc); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := e.emu.RateLimited(); n != 0 {
		t.Errorf("%d posts answered 429 within the burst Slack allows", n)
	}
	calls := e.emu.Calls("chat.postMessage")
	if len(calls) != 10 { // 5 roots, 5 details replies
		t.Fatalf("%d posts, want 10", len(calls))
	}
	if span := calls[2].At.Sub(calls[0].At); span >= interval {
		t.Errorf("the first three posts took %s: the burst was paced", span)
	}
	for i := 3; i < len(calls); i++ {
		if gap := calls[i].At.Sub(calls[i-1].At); gap < interval-50*time.Millisecond {
			t.Errorf("posts %d and %d only %s apart after the burst", i-1, i, gap)
		}
	}
}
