package slackapp

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/pullfix/pullfix/internal/testenv/slackemu"
)

func TestParseApprovers(t *testing.T) {
	tests := []struct {
		in   string
		want ApproverPolicy
	}{
		{"", ApproverPolicy{Namespaces: map[string]ApproverList{}}},
		{"U123ABC", ApproverPolicy{Global: ApproverList{Users: []string{"U123ABC"}}, Namespaces: map[string]ApproverList{}}},
		{" U123 , S456 ; team-a = U789,S999 ; team-b=W0ENT", ApproverPolicy{
			Global: ApproverList{Users: []string{"U123"}, Groups: []string{"S456"}},
			Namespaces: map[string]ApproverList{
				"team-a": {Users: []string{"U789"}, Groups: []string{"S999"}},
				"team-b": {Users: []string{"W0ENT"}},
			},
		}},
		{"team-a=S1AB", ApproverPolicy{Namespaces: map[string]ApproverList{"team-a": {Groups: []string{"S1AB"}}}}},
		{"U123,U123;", ApproverPolicy{Global: ApproverList{Users: []string{"U123"}}, Namespaces: map[string]ApproverList{}}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseApprovers(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !equalPolicy(got, tt.want) {
				t.Errorf("ParseApprovers(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func equalPolicy(a, b ApproverPolicy) bool {
	eq := func(x, y ApproverList) bool {
		return strings.Join(x.Users, ",") == strings.Join(y.Users, ",") && strings.Join(x.Groups, ",") == strings.Join(y.Groups, ",")
	}
	if !eq(a.Global, b.Global) || len(a.Namespaces) != len(b.Namespaces) {
		return false
	}
	for k, v := range a.Namespaces {
		if w, ok := b.Namespaces[k]; !ok || !eq(v, w) {
			return false
		}
	}
	return true
}

func TestParseApproversErrors(t *testing.T) {
	tests := []struct{ in, mention string }{
		{"@sre-approvers", "not a handle"},
		{"<@U123>", "not a handle"},
		{"U123,,S456", "empty id"},
		{"u123", "not a Slack user id"},
		{"C0CHANNEL", "not a Slack user id"},
		{"U1", "not a Slack user id"},
		{"U123;U456", "second global list"},
		{"Team_A=U123", "not a namespace"},
		{"=U123", "not a namespace"},
		{"team-a=U1AB;team-a=U2AB", "listed twice"},
		{"team-a=", "empty id"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseApprovers(tt.in)
			if !errors.Is(err, ErrApproverConfig) || !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("ParseApprovers(%q) = %v; want ErrApproverConfig mentioning %q", tt.in, err, tt.mention)
			}
		})
	}
}

// approverEnv: the Slack emulator with user groups, the real slack-go
// client, and a clock the test moves.
type approverEnv struct {
	emu *slackemu.Emulator
	api *slack.Client
	now atomic.Int64 // unix nanoseconds
}

func newApproverEnv(t *testing.T) *approverEnv {
	t.Helper()
	emu, err := slackemu.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	emu.AddUserGroup("S0SRE", "sre-approvers", "U0ALICE", "U0ERIN")
	emu.AddUserGroup("S0TEAMA", "team-a-leads", "U0DAVE")
	env := &approverEnv{emu: emu, api: slack.New(emu.BotToken(), slack.OptionAPIURL(emu.APIURL()))}
	env.now.Store(time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC).UnixNano())
	return env
}

func (e *approverEnv) clock() time.Time        { return time.Unix(0, e.now.Load()) }
func (e *approverEnv) advance(d time.Duration) { e.now.Add(int64(d)) }
func (e *approverEnv) calls() int              { return len(e.emu.Calls("usergroups.users.list")) }

func (e *approverEnv) approvers(t *testing.T, policy string, opts ...ApproverOption) *Approvers {
	t.Helper()
	p, err := ParseApprovers(policy)
	if err != nil {
		t.Fatal(err)
	}
	return NewApprovers(p, SlackGroupMembers{API: e.api}, append([]ApproverOption{WithApproverClock(e.clock)}, opts...)...)
}

func TestAllowed(t *testing.T) {
	env := newApproverEnv(t)
	a := env.approvers(t, "U0BOB,S0SRE;team-a=S0TEAMA;locked=U0NOBODY")
	ctx := context.Background()
	tests := []struct {
		ns, user string
		want     bool
		reason   string
	}{
		{"default", "U0BOB", true, "<@U0BOB> is an approver for this cluster"},
		{"default", "U0ALICE", true, "<!subteam^S0SRE>"},
		{"default", "U0CAROL", false, "only approvers for this cluster can apply fixes: <@U0BOB>, <!subteam^S0SRE>"},
		{"team-a", "U0DAVE", true, "approvers for namespace team-a"},
		{"team-a", "U0BOB", false, "only approvers for namespace team-a"}, // the override replaces the global list
		{"team-a", "U0ALICE", false, "<!subteam^S0TEAMA>"},
		{"locked", "U0ALICE", false, "<@U0NOBODY>"},
	}
	for _, tt := range tests {
		ok, reason, err := a.Allowed(ctx, tt.ns, tt.user)
		if err != nil {
			t.Errorf("Allowed(%s, %s): %v", tt.ns, tt.user, err)
		}
		if ok != tt.want || !strings.Contains(reason, tt.reason) {
			t.Errorf("Allowed(%s, %s) = %v, %q; want %v, containing %q", tt.ns, tt.user, ok, reason, tt.want, tt.reason)
		}
	}
}

func TestAllowedNoApprovers(t *testing.T) {
	env := newApproverEnv(t)
	a := env.approvers(t, "")
	ok, reason, err := a.Allowed(context.Background(), "default", "U0BOB")
	if ok || err != nil || !strings.Contains(reason, "no approvers are configured") {
		t.Errorf("empty policy: %v %q %v", ok, reason, err)
	}
	if env.calls() != 0 {
		t.Errorf("empty policy called Slack")
	}
}

// TestGroupCache: one usergroups.users.list per group per TTL, shared by
// concurrent clicks; a membership change shows after the TTL.
func TestGroupCache(t *testing.T) {
	env := newApproverEnv(t)
	a := env.approvers(t, "U0BOB,S0SRE", WithGroupCacheTTL(time.Minute))
	ctx := context.Background()

	// A direct approver needs no API call.
	if ok, _, _ := a.Allowed(ctx, "default", "U0BOB"); !ok || env.calls() != 0 {
		t.Fatalf("direct approver: ok=%v, %d calls", ok, env.calls())
	}
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if ok, _, err := a.Allowed(ctx, "default", "U0ALICE"); !ok || err != nil {
				t.Errorf("Alice: %v %v", ok, err)
			}
		})
	}
	wg.Wait()
	if n := env.calls(); n != 1 {
		t.Errorf("20 concurrent checks made %d usergroups.users.list calls, want 1", n)
	}
	if p := env.emu.Calls("usergroups.users.list")[0].Params; p.Get("usergroup") != "S0SRE" || p.Get("include_disabled") == "true" {
		t.Errorf("request params %v", p)
	}

	env.emu.AddUserGroup("S0SRE", "sre-approvers", "U0ERIN") // Alice leaves the group
	env.advance(59 * time.Second)
	if ok, _, _ := a.Allowed(ctx, "default", "U0ALICE"); !ok || env.calls() != 1 {
		t.Errorf("within TTL: ok=%v calls=%d, want the cached answer", ok, env.calls())
	}
	env.advance(2 * time.Second)
	if ok, reason, _ := a.Allowed(ctx, "default", "U0ALICE"); ok || env.calls() != 2 {
		t.Errorf("after TTL: ok=%v (%s) calls=%d, want refused after a fresh lookup", ok, reason, env.calls())
	}
}

// TestGroupErrorsFailClosed: when Slack cannot answer, nobody is let in
// through that group, the clicker is told, and the failure is not cached.
func TestGroupErrorsFailClosed(t *testing.T) {
	env := newApproverEnv(t)
	ctx := context.Background()

	a := env.approvers(t, "S0GONE,S0SRE")
	ok, reason, err := a.Allowed(ctx, "default", "U0ALICE")
	if !ok || err != nil {
		t.Errorf("a missing group must not hide a working one: %v %q %v", ok, reason, err)
	}
	ok, reason, err = a.Allowed(ctx, "default", "U0MALLORY")
	if ok || err == nil || !strings.Contains(err.Error(), "no_such_subteam") || !strings.Contains(reason, "could not check") {
		t.Errorf("unresolvable group: %v %q %v", ok, reason, err)
	}

	b := env.approvers(t, "S0SRE")
	env.emu.FailNext("usergroups.users.list", 1, slackemu.Fault{Status: 503})
	before := env.calls()
	if ok, _, err := b.Allowed(ctx, "default", "U0ALICE"); ok || err == nil {
		t.Errorf("Slack 503: ok=%v err=%v; want refused with an error", ok, err)
	}
	if ok, _, err := b.Allowed(ctx, "default", "U0ALICE"); !ok || err != nil {
		t.Errorf("after the outage: ok=%v err=%v; the failure must not be cached", ok, err)
	}
	if n := env.calls() - before; n != 2 {
		t.Errorf("%d calls, want 2 (failure retried)", n)
	}

	c := NewApprovers(ApproverPolicy{Global: ApproverList{Groups: []string{"S0SRE"}}}, nil)
	if ok, _, err := c.Allowed(ctx, "default", "U0ALICE"); ok || err == nil {
		t.Errorf("no resolver: ok=%v err=%v", ok, err)
	}
}

func TestAllowedTo(t *testing.T) {
	env := newApproverEnv(t)
	ctx := context.Background()
	open := env.approvers(t, "U0BOB")
	closed := env.approvers(t, "U0BOB", WithOpenActions(false))
	for _, act := range []Action{ActionSetImage, ActionRollback, ActionAddSecret, ActionRecheck, ActionSnooze, ActionDismiss} {
		ok, _, _ := open.AllowedTo(ctx, act, "default", "U0CAROL")
		if ok == act.IsFix() {
			t.Errorf("open actions: Carol %s = %v", act, ok)
		}
		if ok, _, _ := closed.AllowedTo(ctx, act, "default", "U0CAROL"); ok {
			t.Errorf("closed actions: Carol %s allowed", act)
		}
		if ok, _, _ := closed.AllowedTo(ctx, act, "default", "U0BOB"); !ok {
			t.Errorf("Bob %s refused", act)
		}
	}
}

// blockingGroups never answers until released, to test cancellation.
type blockingGroups struct{ release chan struct{} }

func (b blockingGroups) GroupMembers(ctx context.Context, _ string) ([]string, error) {
	select {
	case <-b.release:
		return []string{"U0ALICE"}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestAllowedHonoursContext(t *testing.T) {
	g := blockingGroups{release: make(chan struct{})}
	a := NewApprovers(ApproverPolicy{Global: ApproverList{Groups: []string{"S0SRE"}}}, g)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	ok, _, err := a.Allowed(ctx, "default", "U0ALICE")
	if ok || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("blocked lookup: ok=%v err=%v", ok, err)
	}
	close(g.release)
	if ok, _, err := a.Allowed(context.Background(), "default", "U0ALICE"); !ok || err != nil {
		t.Errorf("after release: %v %v", ok, err)
	}
}
