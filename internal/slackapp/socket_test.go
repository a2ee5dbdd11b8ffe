package slackapp

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/pullfix/pullfix/internal/testenv/slackemu"
)

// ackDeadline is Slack's: an ack later than this shows the person an error.
const ackDeadline = 3 * time.Second

// TestSlashCommands: every /pullfix form is acknowledged within 3 s and
// answered only to the person who typed it, over Socket Mode and HTTP.
func TestSlashCommands(t *testing.T) {
	for _, mode := range []string{"socket", "http"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, envOpts{http: mode == "http"})
			cases := []struct {
				text      string
				ackHas    string // in the acknowledgement's payload ("" = no payload needed)
				answerHas string // in an ephemeral answer to alice
			}{
				{"help", "/pullfix", "/pullfix list"},
				{"", "/pullfix", "/pullfix KIND/NAME"},
				{"ui-new -n default", "Diagnosing", "Set image to"},
				{"deploy/healthy -n team-b", "Diagnosing", "is healthy"},
				{"twice", "Diagnosing", "exists in namespaces default and team-b"},
				{"nope -n team-b", "Diagnosing", `no deployment "nope" in namespace team-b`},
				{"list", "", "2 open incidents"},
				{"ui-new --bogus", "unknown flag", "unknown flag"},
				{"ui-new -n Bad_NS", "invalid namespace", "invalid namespace"},
			}
			var slowest time.Duration
			for _, c := range cases {
				before := len(e.emu.Ephemerals(alice))
				ack, err := e.emu.SlashCommand(e.ctx, slackemu.SlashCommand{Command: "/pullfix", Text: c.text, UserID: alice, ChannelID: chDefault})
				if err != nil {
					t.Fatalf("/pullfix %s: %v", c.text, err)
				}
				if ack.Latency >= ackDeadline {
					t.Errorf("/pullfix %s: acked after %s", c.text, ack.Latency)
				}
				slowest = max(slowest, ack.Latency)
				if !strings.Contains(string(ack.Payload), c.ackHas) {
					t.Errorf("/pullfix %s: ack payload %s lacks %q", c.text, ack.Payload, c.ackHas)
				}
				e.waitFor("answer to /pullfix "+c.text, func() bool {
					for _, m := range e.emu.Ephemerals(alice)[before:] {
						if strings.Contains(m.Text, c.answerHas) || strings.Contains(string(m.Blocks), c.answerHas) {
							return true
						}
					}
					return false
				})
			}
			t.Logf("%s: slowest acknowledgement of %d commands: %s", mode, len(cases), slowest)
			// Nothing was posted to the channel and nobody else saw anything.
			if n := len(e.emu.Messages(chDefault)); n != 0 {
				t.Errorf("slash commands posted %d channel messages", n)
			}
			if n := len(e.emu.Ephemerals(bob)); n != 0 {
				t.Errorf("bob saw %d ephemerals", n)
			}
		})
	}
}

// TestApproverClickPatchesAndFollowsRollout: an approver's "Set image"
// reaches the Fixer with (incident, candidate, approver) — never an image —
// and the thread says who approved, the patch, the rollout and the end; the
// root message ends as "✅ ui-new 1/1 Running on …".
func TestApproverClickPatchesAndFollowsRollout(t *testing.T) {
	for _, who := range []struct{ name, user string }{{"user", alice}, {"group", carol}} {
		t.Run(who.name, func(t *testing.T) {
			e := newEnv(t, envOpts{})
			ch, ts := e.open("inc-default")
			root, _ := e.emu.Message(ch, ts)
			if ch != chDefault || !strings.Contains(root.Text, "test-cluster") || !strings.Contains(string(root.Blocks), ActionIDSetImage) {
				t.Fatalf("root message in %s: %q %s", ch, root.Text, root.Blocks)
			}
			ack, err := e.click(who.user, ch, ts, ActionIDSetImage, "")
			if err != nil || ack.Latency >= ackDeadline {
				t.Fatalf("click: ack %+v err %v", ack, err)
			}
			e.waitFor("resolved thread reply", func() bool { return anyContains(e.replies(ch, ts), "Resolved:") })
			calls := e.fixer.Calls()
			want := []fixCall{{"SetImage", "inc-default", "c1", who.user}, {Method: "FollowRollout", Incident: "inc-default"}}
			if len(calls) != 2 || calls[0] != want[0] || calls[1] != want[1] {
				t.Fatalf("fixer calls = %+v, want %+v", calls, want)
			}
			rs := e.replies(ch, ts)
			for i, w := range []string{"Approved:", "Patched", "Rollout of", "Resolved:"} {
				if !anyContains(rs, w) {
					t.Errorf("thread lacks reply %d %q: %q", i, w, rs)
				}
			}
			e.waitFor("root edited to resolved", func() bool {
				m, _ := e.emu.Message(ch, ts)
				return strings.Contains(m.Text, "✅") && strings.Contains(m.Text, "1/1 Running")
			})
			m, _ := e.emu.Message(ch, ts)
			if strings.Contains(string(m.Blocks), ActionIDSetImage) {
				t.Errorf("resolved root still has fix buttons")
			}
			if !strings.Contains(string(m.Blocks), "retail-store-sample-ui:1.2.1") {
				t.Errorf("resolved root does not name the image: %s", m.Blocks)
			}
		})
	}
}

// TestNonApproverCannotPatch: bob's "Set image" changes nothing — no Fixer
// call, no thread reply, no edit — and bob alone is told why.
func TestNonApproverCannotPatch(t *testing.T) {
	for _, mode := range []string{"socket", "http"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t, envOpts{http: mode == "http"})
			ch, ts := e.open("inc-default")
			if _, err := e.click(bob, ch, ts, ActionIDSetImage, ""); err != nil {
				t.Fatal(err)
			}
			eph := e.ephemeralWith(bob, "You can't do that")
			if !strings.Contains(eph.Text, "only approvers") || !strings.Contains(eph.Text, "Nothing was changed") {
				t.Errorf("explanation = %q", eph.Text)
			}
			// Snooze is open to everyone (default policy): proves the click
			// path ran after the refusal, so the absence below is not a race.
			if _, err := e.click(bob, ch, ts, ActionIDSnooze, ""); err != nil {
				t.Fatal(err)
			}
			e.waitFor("snooze reply", func() bool { return anyContains(e.replies(ch, ts), "Snoozed") })
			if calls := e.fixer.Calls(); len(calls) != 0 {
				t.Fatalf("non-approver reached the Fixer: %+v", calls)
			}
			if rs := e.replies(ch, ts); len(rs) != 1 {
				t.Errorf("thread = %q, want only the snooze", rs)
			}
			if len(e.emu.Ephemerals(alice)) != 0 {
				t.Error("the explanation was shown to someone else")
			}
			e.incs.mu.Lock()
			_, fixing := e.incs.fixing["inc-default"]
			e.incs.mu.Unlock()
			if fixing {
				t.Error("incident marked fixing by a refused click")
			}
		})
	}
}

// TestForeignAndForgedValuesRefused: a button value naming another
// cluster, one whose action disagrees with its button, and one that is not
// pullfix's are refused with an explanation and reach nothing.
func TestForeignAndForgedValuesRefused(t *testing.T) {
	e := newEnv(t, envOpts{})
	ch, ts := e.open("inc-default")
	cases := []struct {
		actionID, value, want string
	}{
		{ActionIDSetImage, EncodeAction(ActionValue{Cluster: "prod-eu", IncidentID: "inc-default", Action: ActionSetImage, Arg: "c1"}), `cluster "prod-eu"`},
		{ActionIDSetImage, EncodeAction(ActionValue{Cluster: testCluster, IncidentID: "inc-default", Action: ActionDismiss}), "not one pullfix produced"},
		{ActionIDSetImage, "v1|test-cluster|inc-default|set_image|docker.io%2Fevil", "not one pullfix produced"},
		{ActionIDSetImage, `{"image":"evil:latest"}`, "not one pullfix produced"},
		{ActionIDSetImage, EncodeAction(ActionValue{Cluster: testCluster, IncidentID: "inc-default", Action: ActionSetImage, Arg: "c9"}), "not one of this incident's verified candidates"},
		{ActionIDSetImage, EncodeAction(ActionValue{Cluster: testCluster, IncidentID: "inc-gone", Action: ActionSetImage, Arg: "c1"}), "no longer open"},
	}
	for i, c := range cases {
		if _, err := e.click(alice, ch, ts, c.actionID, c.value); err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		e.ephemeralWith(alice, c.want)
	}
	if calls := e.fixer.Calls(); len(calls) != 0 {
		t.Fatalf("refused clicks reached the Fixer: %+v", calls)
	}
	if rs := e.replies(ch, ts); len(rs) != 0 {
		t.Fatalf("refused clicks wrote to the thread: %q", rs)
	}
}

// TestDoubleClickPatchesOnce: a second approver clicks while the first fix
// is under way (from their own /pullfix answer, which still shows the
// buttons): the App's fixing mark stops it before the Fixer and tells them.
// (The Fixer's own compare-and-swap is the guarantee across replicas; it is
// tested with the watcher.)
func TestDoubleClickPatchesOnce(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.fixer.gate = make(chan struct{})
	e.fixer.started = make(chan fixCall, 4)
	ch, ts := e.open("inc-default")

	// carol asks for the same workload and gets the buttons ephemerally.
	if _, err := e.emu.SlashCommand(e.ctx, slackemu.SlashCommand{Command: "/pullfix", Text: "ui-new", UserID: carol, ChannelID: chDefault}); err != nil {
		t.Fatal(err)
	}
	answer := e.ephemeralWith(carol, ActionIDSetImage)

	if _, err := e.click(alice, ch, ts, ActionIDSetImage, ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.fixer.started:
	case <-e.ctx.Done():
		t.Fatal("the first click never reached the Fixer")
	}
	if _, err := e.click(carol, chDefault, answer.TS, ActionIDSetImage, ""); err != nil {
		t.Fatal(err)
	}
	e.ephemeralWith(carol, "already being fixed (approved by <@"+alice+">)")
	close(e.fixer.gate)
	e.waitFor("resolved", func() bool { return anyContains(e.replies(ch, ts), "Resolved:") })

	n := 0
	for _, c := range e.fixer.Calls() {
		if c.Method == "SetImage" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("SetImage called %d times, want 1: %+v", n, e.fixer.Calls())
	}
}

// TestRefusedFixReported: when the Fixer refuses (the workload changed
// since the diagnosis), the thread and the root say so, and the incident
// can be fixed again.
func TestRefusedFixReported(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.fixer.refuse = `the image of container "ui" is now "nginx:1.27", not the diagnosed one`
	ch, ts := e.open("inc-default")
	if _, err := e.click(alice, ch, ts, ActionIDSetImage, ""); err != nil {
		t.Fatal(err)
	}
	e.waitFor("refusal in the thread", func() bool { return anyContains(e.replies(ch, ts), "Nothing was patched") })
	e.waitFor("root shows buttons again with the reason", func() bool {
		m, _ := e.emu.Message(ch, ts)
		return strings.Contains(string(m.Blocks), ActionIDSetImage) && strings.Contains(string(m.Blocks), "nginx:1.27")
	})
	e.incs.mu.Lock()
	_, fixing := e.incs.fixing["inc-default"]
	e.incs.mu.Unlock()
	if fixing {
		t.Error("incident still marked fixing after a refused fix")
	}
}

// TestDismissSnoozeRecheck: the open actions edit the root and note who did
// it in the thread.
func TestDismissSnoozeRecheck(t *testing.T) {
	e := newEnv(t, envOpts{})
	ch, ts := e.open("inc-team-b")
	if ch != chTeamB {
		t.Fatalf("team-b incident posted to %s, want its namespace's channel %s", ch, chTeamB)
	}
	for _, step := range []struct{ actionID, reply string }{
		{ActionIDRecheck, "Re-checked"},
		{ActionIDSnooze, "Snoozed"},
		{ActionIDDismiss, "Dismissed"},
	} {
		if _, err := e.click(bob, ch, ts, step.actionID, ""); err != nil {
			t.Fatalf("%s: %v", step.actionID, err)
		}
		e.waitFor(step.reply, func() bool { return anyContains(e.replies(ch, ts), step.reply) })
	}
	e.waitFor("root dismissed", func() bool {
		m, _ := e.emu.Message(ch, ts)
		return strings.HasPrefix(m.Text, "Dismissed")
	})
	e.incs.mu.Lock()
	defer e.incs.mu.Unlock()
	if e.incs.dismissed["inc-team-b"] != bob || e.incs.snoozed["inc-team-b"].IsZero() || e.incs.rechecks != 1 {
		t.Errorf("state: dismissed=%v snoozed=%v rechecks=%d", e.incs.dismissed, e.incs.snoozed, e.incs.rechecks)
	}
}

// TestResolvedElsewhere: the watcher reports a resolution nobody clicked
// for; the root says no pullfix fix did it, the thread that it was resolved outside pullfix.
func TestResolvedElsewhere(t *testing.T) {
	e := newEnv(t, envOpts{noStart: true})
	_, ts := e.open("inc-default")
	inc, _ := e.incs.Incident(e.ctx, "inc-default")
	if err := e.app.Resolved(e.ctx, inc, Resolution{Image: fixedImage, ReadyPods: 1, Desired: 1}); err != nil {
		t.Fatal(err)
	}
	m, _ := e.emu.Message(chDefault, ts)
	if !strings.Contains(string(m.Blocks), "without a pullfix fix") || len(m.Edits) != 1 {
		t.Errorf("root after Resolved: %q edits=%d", m.Text, len(m.Edits))
	}
	if rs := e.replies(chDefault, ts); len(rs) != 1 || !strings.Contains(rs[0], "Resolved outside pullfix") {
		t.Errorf("thread = %q", rs)
	}
}

// TestReconnectStillReceivesCommands: after Slack asks for a refresh and
// after a hard drop, slack-go reconnects and commands still arrive.
func TestReconnectStillReceivesCommands(t *testing.T) {
	e := newEnv(t, envOpts{emu: []slackemu.Option{slackemu.WithDisconnectGrace(30 * time.Second)}})
	cmd := slackemu.SlashCommand{Command: "/pullfix", Text: "help", UserID: alice, ChannelID: chDefault}

	if n := e.emu.Disconnect("refresh_requested"); n != 1 {
		t.Fatalf("disconnect told %d connections", n)
	}
	e.waitFor("a second connection", func() bool { return len(e.emu.Connections()) == 2 && e.emu.OpenConnections() == 1 })
	ack, err := e.emu.SlashCommand(e.ctx, cmd)
	if err != nil || ack.ConnID != 2 {
		t.Fatalf("after refresh: ack %+v err %v", ack, err)
	}

	if n := e.emu.DropConnections(); n < 1 {
		t.Fatalf("dropped %d", n)
	}
	e.waitFor("a third connection", func() bool {
		cs := e.emu.Connections()
		return len(cs) >= 3 && cs[len(cs)-1].ClosedAt.IsZero() && e.emu.OpenConnections() == 1
	})
	ack, err = e.emu.SlashCommand(e.ctx, cmd)
	if err != nil || ack.Latency >= ackDeadline {
		t.Fatalf("after drop: ack %+v err %v", ack, err)
	}
	if got := len(e.emu.Calls("apps.connections.open")); got < 3 {
		t.Errorf("apps.connections.open called %d times, want >= 3", got)
	}
}

// TestRunEndsWithContext: cancelling Run's context (leadership lost) closes
// the connection and returns nil; Slack then has nobody to deliver to.
func TestRunEndsWithContext(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.cancel()
	select {
	case err := <-e.runErr:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
		e.runErr <- nil // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	e.waitFor("no open connection", func() bool { return e.emu.OpenConnections() == 0 })
	_, err := e.emu.SlashCommand(e.ctx, slackemu.SlashCommand{Command: "/pullfix", Text: "help", UserID: alice, ChannelID: chDefault})
	if !errors.Is(err, slackemu.ErrNotConnected) {
		t.Fatalf("after Run ended: %v", err)
	}
}

// TestRunFailsOnBadAppToken: an app token Slack refuses ends Run with an
// error that does not contain the token.
func TestRunFailsOnBadAppToken(t *testing.T) {
	e := newEnv(t, envOpts{noStart: true})
	bad := "xapp-1-A0PULLFIX1-0000000001-notthetoken"
	api := slackNew(e, bad)
	app := New(api, Config{Cluster: testCluster, DefaultChannel: chDefault}, Deps{Incidents: e.incs, Fixer: e.fixer, Approvers: NewApprovers(ApproverPolicy{}, nil)}, WithLogger(testLogger(t)))
	defer app.Close()
	done := make(chan error, 1)
	go func() { done <- app.Run(e.ctx) }()
	select {
	case err := <-done:
		if err == nil || strings.Contains(err.Error(), "notthetoken") {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run kept going with a refused token")
	}
}

func slackNew(e *env, appToken string) *slack.Client {
	return slack.New(e.emu.BotToken(), slack.OptionAPIURL(e.emu.APIURL()), slack.OptionAppLevelToken(appToken))
}
