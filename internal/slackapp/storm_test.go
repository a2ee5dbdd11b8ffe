package slackapp

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/testenv/slackemu"
)

// stormIncident is workload name i of a storm in namespace ns: a
// repository typo on public.ecr.aws, or, for odd i, a 401 at a private
// registry, so the digest has two sections.
func stormIncident(i int, ns string) Incident {
	inc := runbookIncident(fmt.Sprintf("inc-storm-%03d", i), ns)
	inc.Name = fmt.Sprintf("svc-%03d", i)
	inc.Pods = []string{inc.Name + "-7d9f8-abcde"}
	if i%2 == 1 {
		inc.Image = fmt.Sprintf("registry.corp.example/platform/svc-%03d:2.0", i)
		d := *inc.Diagnosis
		d.Cause, d.Candidates, d.Summary = diagnose.Unauthorized, nil, "The registry asks for credentials."
		d.Target.Image = inc.Image
		inc.Diagnosis = &d
	}
	return inc
}

// words is what the watcher hands Detected: the kubelet's words only.
func words(inc Incident) Incident {
	d := *inc.Diagnosis
	d.Candidates, d.Certainty = nil, diagnose.CertaintyWords
	inc.Diagnosis = &d
	inc.State = "open"
	return inc
}

// realSlack is Slack's pace as the emulator enforces it by default — one
// post a second per channel with bursts of 3, chat.update 50 a minute —
// and the queue set as cmd/bot sets it.
func realSlack() envOpts {
	return envOpts{noStart: true,
		emu:   []slackemu.Option{slackemu.WithPostRate(slackemu.DefaultPostRate, slackemu.DefaultPostBurst)},
		queue: []QueueOption{WithPostInterval(time.Second), WithPostBurst(3)}}
}

// channelText is what the channel's root messages say now.
func (e *env) channelText(ch string) string {
	var sb strings.Builder
	for _, m := range e.emu.Messages(ch) {
		sb.WriteString(m.Text + "\n" + string(m.Blocks) + "\n")
	}
	return sb.String()
}

// TestStormDigestNamesEveryWorkload: 40 workloads fail in one channel
// within two seconds, at Slack's real limits. One message — the digest —
// names every one of them, grouped by cause and registry; it is posted
// once and edited in coalesced batches, and Slack answers no 429.
func TestStormDigestNamesEveryWorkload(t *testing.T) {
	e := newEnv(t, realSlack())
	const n = 40
	for i := range n {
		e.app.Detected(e.ctx, words(stormIncident(i, nsDefault)))
		time.Sleep(50 * time.Millisecond) // detections arrive over two seconds, as in a storm
	}
	e.waitFor("every workload named in the channel", func() bool {
		text := e.channelText(chDefault)
		for i := range n {
			if !strings.Contains(text, fmt.Sprintf("default/svc-%03d", i)) {
				return false
			}
		}
		return true
	})
	roots := e.emu.Messages(chDefault)
	if len(roots) != 1 {
		t.Fatalf("%d root messages, want the one digest", len(roots))
	}
	d := roots[0]
	for _, want := range []string{"40 workloads cannot pull their images", "Repository not found", "public.ecr.aws", "registry.corp.example", "— 20"} {
		if !strings.Contains(string(d.Blocks), want) {
			t.Errorf("digest lacks %q: %s", want, d.Blocks)
		}
	}
	if n := e.emu.RateLimited(); n != 0 {
		t.Errorf("%d calls answered 429", n)
	}
	edits := len(e.emu.Calls("chat.update"))
	if edits == 0 || edits >= n-3 {
		t.Errorf("%d digest edits for %d workloads: not coalesced", edits, n)
	}
	t.Logf("40 workloads named by 1 post and %d edits", edits)
}

// TestStormLifecycle: workloads of a storm get their diagnosis and buttons
// as cards in the digest's thread, their references name the digest's
// thread (never a message of their own to overwrite), a click acts on the
// card, and the digest shrinks as they recover until it says the storm is
// over.
func TestStormLifecycle(t *testing.T) {
	e := newEnv(t, envOpts{emu: []slackemu.Option{slackemu.WithPostRate(50, 10)}})
	const n = 5
	var incs []Incident
	for i := range n {
		inc := stormIncident(i, nsDefault)
		incs = append(incs, inc)
		e.incs.put(inc)
		e.app.Detected(e.ctx, words(inc))
	}
	var ch, ts string
	for i, inc := range incs {
		ref, err := e.app.Opened(e.ctx, inc)
		if err != nil {
			t.Fatal(err)
		}
		if !IsDigestRef(ref) {
			t.Fatalf("incident %d posted on its own (%s) during a storm", i, ref)
		}
		ch, ts, _ = ParseRef(ref)
		e.incs.setRef(inc.ID, ref)
		incs[i].Ref = ref
	}
	e.waitFor("a card per workload in the digest's thread", func() bool { return len(e.emu.Thread(ch, ts)) == n+1 })
	if roots := e.emu.Messages(ch); len(roots) != 1 {
		t.Fatalf("%d root messages", len(roots))
	}
	cards := e.emu.Thread(ch, ts)[1:]
	var card0 string
	for _, c := range cards {
		if !strings.Contains(string(c.Blocks), ActionIDDismiss) {
			t.Errorf("card without buttons: %s", c.Text)
		}
		if strings.Contains(string(c.Blocks), "svc-000") {
			card0 = c.TS
		}
	}
	if card0 == "" {
		t.Fatal("no card for svc-000")
	}

	// A click on a card acts on that card, and its replies go in the
	// digest's thread.
	e.startSocket()
	if _, err := e.click(bob, ch, card0, ActionIDDismiss, ""); err != nil {
		t.Fatal(err)
	}
	e.waitFor("card dismissed", func() bool {
		m, _ := e.emu.Message(ch, card0)
		return strings.HasPrefix(m.Text, "Dismissed")
	})
	incs[0].State = "dismissed"
	e.app.Track(e.ctx, incs[0]) // what the watcher reports after the click

	// Two recover; the digest no longer lists them.
	for _, inc := range incs[1:3] {
		if err := e.app.Resolved(e.ctx, inc, Resolution{}); err != nil {
			t.Fatal(err)
		}
	}
	e.waitFor("digest lists 2", func() bool {
		m, _ := e.emu.Message(ch, ts)
		return strings.Contains(m.Text, "2 workloads failing") && !strings.Contains(m.Text, "svc-001") && strings.Contains(string(m.Blocks), "2 of 5 recovered, 1 dismissed")
	})
	for _, inc := range incs[3:] {
		if err := e.app.Resolved(e.ctx, inc, Resolution{}); err != nil {
			t.Fatal(err)
		}
	}
	e.waitFor("storm over", func() bool {
		m, _ := e.emu.Message(ch, ts)
		return strings.HasPrefix(m.Text, "Storm over") && strings.Contains(m.Text, "4 of 5")
	})
	// No edit ever turned the digest into one incident's message.
	m, _ := e.emu.Message(ch, ts)
	for _, r := range append(m.Edits, slackemu.Revision{Text: m.Text}) {
		if !strings.HasPrefix(r.Text, "Image-pull storm") && !strings.HasPrefix(r.Text, "Storm over") {
			t.Errorf("digest edited to %q", r.Text)
		}
	}
	if n := e.emu.RateLimited(); n != 0 {
		t.Errorf("%d calls answered 429", n)
	}
}

// TestQuietChannelUnchanged: incidents that do not come together are
// each posted on their own, as without storms; when a storm begins later,
// its digest names the recent one too, whose own message stays its own.
func TestQuietChannelUnchanged(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	e := newEnv(t, envOpts{noStart: true, emu: []slackemu.Option{slackemu.WithPostRate(50, 10)}, app: []Option{WithClock(clock)}})
	var refs []string
	for i := range 2 {
		if i > 0 {
			advance(DefaultStormWindow + time.Second)
		}
		inc := stormIncident(i, nsDefault)
		e.app.Detected(e.ctx, words(inc))
		ref, err := e.app.Opened(e.ctx, inc)
		if err != nil {
			t.Fatal(err)
		}
		if IsDigestRef(ref) {
			t.Fatalf("incident %d went to a digest: %s", i, ref)
		}
		refs = append(refs, ref)
	}
	if roots := e.emu.Messages(chDefault); len(roots) != 2 {
		t.Fatalf("%d root messages, want 2", len(roots))
	}
	// A second within the window makes a storm: the digest names it and
	// the one posted just before, not the one from long ago.
	advance(time.Second)
	e.app.Detected(e.ctx, words(stormIncident(2, nsDefault)))
	e.waitFor("digest naming the two", func() bool {
		roots := e.emu.Messages(chDefault)
		if len(roots) != 3 {
			return false
		}
		b := string(roots[2].Blocks)
		return strings.Contains(b, "svc-001") && strings.Contains(b, "svc-002") && !strings.Contains(b, "svc-000")
	})
	// The second incident resolves: its own message says so, and the
	// digest stops listing it.
	second := stormIncident(1, nsDefault)
	second.Ref = refs[1]
	if err := e.app.Resolved(e.ctx, second, Resolution{}); err != nil {
		t.Fatal(err)
	}
	ch, ts, _ := ParseRef(refs[1])
	if m, _ := e.emu.Message(ch, ts); !strings.HasPrefix(m.Text, "✅ Deployment svc-001 Running") {
		t.Errorf("own message after Resolved: %q", m.Text)
	}
	e.waitFor("digest without svc-001", func() bool {
		roots := e.emu.Messages(chDefault)
		return !strings.Contains(roots[2].Text, "svc-001") && strings.Contains(roots[2].Text, "1 workload failing")
	})
}

// TestStormForget: a workload whose pods went away before it was
// diagnosed leaves the digest.
func TestStormForget(t *testing.T) {
	e := newEnv(t, envOpts{noStart: true, emu: []slackemu.Option{slackemu.WithPostRate(50, 10)}})
	for i := range 4 {
		e.app.Detected(e.ctx, words(stormIncident(i, nsDefault)))
	}
	e.waitFor("digest of 4", func() bool {
		roots := e.emu.Messages(chDefault)
		return len(roots) == 1 && strings.Contains(roots[0].Text, "4 workloads failing")
	})
	e.app.Forget(e.ctx, "inc-storm-003")
	e.waitFor("digest of 3", func() bool {
		roots := e.emu.Messages(chDefault)
		return strings.Contains(roots[0].Text, "3 workloads failing") && !strings.Contains(roots[0].Text, "svc-003")
	})
}

// TestRenderDigestFitsSlack: a storm of 3,000 workloads in 60 causes and
// registries still renders within Slack's limits, every section names
// what fits and says how many more.
func TestRenderDigestFitsSlack(t *testing.T) {
	var in DigestInput
	in.Cluster = "prod"
	for i := range 3000 {
		in.Workloads = append(in.Workloads, DigestWorkload{IncidentID: fmt.Sprint(i), Namespace: "team", Name: fmt.Sprintf("workload-%04d", i),
			Cause: diagnose.RepoNotFound, Registry: fmt.Sprintf("registry-%02d.example", i%60), State: StateOpen})
	}
	m := RenderDigest(in)
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(m.Blocks)
	if b := string(js); !strings.Contains(b, "more") || !strings.Contains(b, "3000 workloads cannot pull") {
		t.Errorf("no overflow note or count: %.300s", b)
	}
}

// TestOneWorkloadIsNoStorm: one workload failing again with another image
// (a fix that did not help) or in two containers is not a storm: each
// incident is posted as usual.
func TestOneWorkloadIsNoStorm(t *testing.T) {
	e := newEnv(t, envOpts{noStart: true, emu: []slackemu.Option{slackemu.WithPostRate(50, 10)}})
	for i, img := range []string{brokenImage, "public.ecr.aws/aws-containers/retail-store-sample-ui:9.9.9"} {
		inc := stormIncident(0, nsDefault)
		inc.ID, inc.Image = fmt.Sprint("inc-same-", i), img
		e.app.Detected(e.ctx, words(inc))
		ref, err := e.app.Opened(e.ctx, inc)
		if err != nil {
			t.Fatal(err)
		}
		if IsDigestRef(ref) {
			t.Fatalf("incident %d of one workload went to a digest", i)
		}
	}
}

// TestGoldenDigest pins the storm digest's JSON: open, shrinking (some
// recovered, one dismissed, one being fixed), and over.
func TestGoldenDigest(t *testing.T) {
	ws := []DigestWorkload{
		{IncidentID: "i1", Namespace: "shop", Kind: "Deployment", Name: "ui-new", Cause: diagnose.RepoNotFound, Registry: "public.ecr.aws", State: StateOpen},
		{IncidentID: "i2", Namespace: "shop", Kind: "Deployment", Name: "cart", Cause: diagnose.RepoNotFound, Registry: "public.ecr.aws", State: StateOpen},
		{IncidentID: "i3", Namespace: "pay", Kind: "Deployment", Name: "ledger", Cause: diagnose.Unauthorized, Registry: "registry.corp.example", State: StateOpen, Own: true},
		{IncidentID: "i4", Namespace: "pay", Kind: "StatefulSet", Name: "vault", Cause: diagnose.NetworkTimeout, Registry: "quay.io", State: StateOpen},
	}
	golden(t, "digest/open", RenderDigest(DigestInput{Cluster: "prod-eu", Workloads: ws}))
	shrinking := slices.Clone(ws)
	shrinking[0].State, shrinking[1].State, shrinking[2].State = StateResolved, StateFixing, StateDismissed
	golden(t, "digest/shrinking", RenderDigest(DigestInput{Cluster: "prod-eu", Workloads: shrinking}))
	over := slices.Clone(ws)
	for i := range over {
		over[i].State = StateResolved
	}
	golden(t, "digest/over", RenderDigest(DigestInput{Cluster: "prod-eu", Workloads: over}))
}

// TestCloseEndsDigestGoroutines: Close stops the digests' scheduled edits
// and waits for the goroutines that wait for their posts (a #15 rule:
// every goroutine is owned and waited for on shutdown); after Close a
// detection starts nothing.
func TestCloseEndsDigestGoroutines(t *testing.T) {
	e := newEnv(t, realSlack())
	for i := range 3 {
		e.app.Detected(e.ctx, words(stormIncident(i, nsDefault)))
	}
	e.waitFor("the digest posted", func() bool { return strings.Contains(e.channelText(chDefault), "default/svc-002") })
	s := e.app.storm
	ran := make(chan struct{})
	s.mu.Lock()
	s.afterLocked(time.Hour, func() { close(ran) }) // an edit scheduled far ahead
	s.mu.Unlock()
	closed := make(chan struct{})
	go func() {
		e.app.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(time.Minute):
		t.Fatal("Close did not return: a digest goroutine was not ended")
	}
	e.app.Detected(e.ctx, words(stormIncident(3, nsDefault)))
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed || len(s.timers) != 0 {
		t.Fatalf("after Close: closed %v, %d timers left", s.closed, len(s.timers))
	}
	select {
	case <-ran:
		t.Fatal("a scheduled edit ran at Close")
	default:
	}
}
