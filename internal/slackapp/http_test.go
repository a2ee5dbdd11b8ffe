package slackapp

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/pullfix/pullfix/internal/testenv/slackemu"
)

func isStatus(err error, status int) bool {
	var de *slackemu.DeliveryError
	return errors.As(err, &de) && de.Status == status
}

// TestForgedSlackRequestRejected: in HTTP mode a bad signature, an
// unsigned or tampered request, a timestamp older than 5 minutes (or as far
// in the future), and a byte-for-byte replay of a valid request are all
// answered 401 and have no effect: no diagnosis runs, the Fixer is never
// called, nothing is posted.
func TestForgedSlackRequestRejected(t *testing.T) {
	e := newEnv(t, envOpts{http: true})
	ch, ts := e.open("inc-default")
	posts := len(e.emu.Calls("chat.postMessage"))

	cmd := slackemu.SlashCommand{Command: "/pullfix", Text: "ui-new -n default", UserID: alice, ChannelID: chDefault}
	click := slackemu.Click{UserID: alice, ChannelID: ch, MessageTS: ts, ActionID: ActionIDSetImage}
	for _, f := range []slackemu.Forgery{slackemu.BadSignature, slackemu.StaleTimestamp, slackemu.Unsigned, slackemu.TamperedBody} {
		c := cmd
		c.Forge = f
		if _, err := e.emu.SlashCommand(e.ctx, c); !isStatus(err, http.StatusUnauthorized) {
			t.Errorf("forged command (forgery %d) answered %v, want 401", f, err)
		}
		k := click
		k.Forge = f
		if _, err := e.emu.Click(e.ctx, k); !isStatus(err, http.StatusUnauthorized) {
			t.Errorf("forged click (forgery %d) answered %v, want 401", f, err)
		}
	}

	// A timestamp from the future, correctly signed.
	body := []byte("command=%2Fpullfix&text=ui-new&user_id=" + alice + "&channel_id=" + chDefault)
	req, _ := http.NewRequestWithContext(e.ctx, http.MethodPost, e.url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	slackemu.SignHeader(req.Header, e.emu.SigningSecret(), time.Now().Add(6*time.Minute), body)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("future timestamp answered %d, want 401", resp.StatusCode)
	}

	if n := e.ondem.Calls(); n != 0 {
		t.Fatalf("forged commands ran %d diagnoses", n)
	}
	if calls := e.fixer.Calls(); len(calls) != 0 {
		t.Fatalf("forged clicks reached the Fixer: %+v", calls)
	}

	// Genuine requests work, and their replays are refused.
	ack, err := e.emu.SlashCommand(e.ctx, cmd)
	if err != nil || ack.StatusCode != http.StatusOK {
		t.Fatalf("genuine command: %+v %v", ack, err)
	}
	if _, err := e.emu.Replay(e.ctx, ack); !isStatus(err, http.StatusUnauthorized) {
		t.Errorf("replayed command answered %v, want 401", err)
	}
	e.ephemeralWith(alice, "Set image to")

	e.fixer.gate = make(chan struct{}) // hold the fix so a replay would find it in progress, not done
	e.fixer.started = make(chan fixCall, 4)
	cack, err := e.emu.Click(e.ctx, click)
	if err != nil {
		t.Fatalf("genuine click: %v", err)
	}
	if _, err := e.emu.Replay(e.ctx, cack); !isStatus(err, http.StatusUnauthorized) {
		t.Errorf("replayed click answered %v, want 401", err)
	}
	<-e.fixer.started
	close(e.fixer.gate)
	e.waitFor("resolved", func() bool { return anyContains(e.replies(ch, ts), "Resolved:") })
	if n := e.ondem.Calls(); n != 1 {
		t.Errorf("diagnoses = %d, want 1 (the genuine one)", n)
	}
	n := 0
	for _, c := range e.fixer.Calls() {
		if c.Method == "SetImage" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("SetImage called %d times, want 1", n)
	}
	if len(e.emu.Ephemerals(alice)) == 0 || len(e.emu.Calls("chat.postMessage")) <= posts {
		t.Error("genuine requests had no effect")
	}
}

// TestHTTPModeRefusesBadRequests: wrong method, oversized body, a signed
// body that is neither a command nor an interaction, an unreadable payload.
func TestHTTPModeRefusesBadRequests(t *testing.T) {
	e := newEnv(t, envOpts{http: true, app: []Option{WithMaxBody(4096)}})
	secret := e.emu.SigningSecret()
	send := func(method string, body []byte) int {
		req, _ := http.NewRequestWithContext(e.ctx, method, e.url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		slackemu.SignHeader(req.Header, secret, time.Now(), body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	cases := []struct {
		name   string
		method string
		body   string
		want   int
	}{
		{"get", http.MethodGet, "", http.StatusMethodNotAllowed},
		{"too large", http.MethodPost, "command=%2Fpullfix&text=" + strings.Repeat("a", 5000), http.StatusRequestEntityTooLarge},
		{"neither", http.MethodPost, "hello=world", http.StatusBadRequest},
		{"bad payload", http.MethodPost, "payload=%7Bnot-json", http.StatusBadRequest},
		{"bad form", http.MethodPost, "payload=%zz", http.StatusBadRequest},
		{"ssl check", http.MethodPost, "ssl_check=1&token=x", http.StatusOK},
	}
	for _, c := range cases {
		if got := send(c.method, []byte(c.body)); got != c.want {
			t.Errorf("%s: status %d, want %d", c.name, got, c.want)
		}
	}
}

// TestVerifierReplayMemoryIsBounded: past its memory the verifier forgets
// the oldest signatures but refuses anything at or below their timestamp,
// so a forgotten request still cannot be replayed.
func TestVerifierReplayMemoryIsBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	v := NewVerifier("s3cret")
	v.max, v.now = 3, func() time.Time { return now }
	req := func(ts time.Time, body string) (http.Header, []byte) {
		h := http.Header{}
		slackemu.SignHeader(h, "s3cret", ts, []byte(body))
		return h, []byte(body)
	}
	var hs []http.Header
	var bs [][]byte
	for i := range 5 {
		h, b := req(now.Add(time.Duration(i-5)*time.Second), "n="+strconv.Itoa(i))
		if err := v.Verify(h, b); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		hs, bs = append(hs, h), append(bs, b)
	}
	if len(v.seen) > 3 || len(v.order) > 3 {
		t.Fatalf("remembered %d signatures, max 3", len(v.seen))
	}
	for i := range 5 {
		if err := v.Verify(hs[i], bs[i]); !errors.Is(err, ErrReplayed) {
			t.Errorf("replay %d: %v, want ErrReplayed", i, err)
		}
	}
	// A fresh request is still accepted; one outside the window is not.
	if h, b := req(now, "fresh"); v.Verify(h, b) != nil {
		t.Error("fresh request refused")
	}
	if h, b := req(now.Add(-5*time.Minute-time.Second), "old"); !errors.Is(v.Verify(h, b), ErrStaleTimestamp) {
		t.Error("old request accepted")
	}
	if h, b := req(now, "x"); true {
		h.Set(headerSignature, "v0="+strings.Repeat("0", 64))
		if !errors.Is(v.Verify(h, b), ErrBadSignature) {
			t.Error("bad signature accepted")
		}
		h.Set(headerSignature, "v1=abc")
		if !errors.Is(v.Verify(h, b), ErrBadSignature) {
			t.Error("bad prefix accepted")
		}
		h.Del(headerSignature)
		if !errors.Is(v.Verify(h, b), ErrMissingSignature) {
			t.Error("unsigned accepted")
		}
	}
}

// fakeWeb records writes instead of sending them: the fuzzer must never
// dial a response_url it invented.
type fakeWeb struct {
	mu      sync.Mutex
	posts   int
	updates int
}

func (w *fakeWeb) PostMessageContext(_ context.Context, ch string, opts ...slack.MsgOption) (string, string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.posts++
	return ch, "1800000000.000100", nil
}

func (w *fakeWeb) UpdateMessageContext(_ context.Context, ch, ts string, opts ...slack.MsgOption) (string, string, string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.updates++
	return ch, ts, "", nil
}

// FuzzHTTPRequest feeds signed, arbitrary form bodies (slash commands and
// interaction payloads) through the HTTP handler and the work it starts:
// every input gets 200 or 400, never a panic.
func FuzzHTTPRequest(f *testing.F) {
	value := EncodeAction(ActionValue{Cluster: testCluster, IncidentID: "inc-default", Action: ActionSetImage, Arg: "c1"})
	payload := `{"type":"block_actions","user":{"id":"` + alice + `"},"channel":{"id":"` + chDefault + `"},` +
		`"container":{"type":"message","message_ts":"1.2","channel_id":"` + chDefault + `"},"response_url":"https://hooks.example/r",` +
		`"actions":[{"action_id":"` + ActionIDSetImage + `","block_id":"b","type":"button","value":"` + value + `"}]}`
	f.Add("payload=" + url.QueryEscape(payload))
	f.Add("payload=" + url.QueryEscape(strings.Replace(payload, alice, bob, 1)))
	f.Add("payload=" + url.QueryEscape(strings.Replace(payload, ActionIDSetImage, ActionIDDismiss, 1)))
	f.Add("payload=" + url.QueryEscape(`{"type":"block_actions","actions":[null]}`))
	f.Add("payload=" + url.QueryEscape(`{"type":"block_actions","user":{"id":"U1"},"actions":[{"action_id":"pullfix_snooze","value":"v1|test-cluster|inc-default|snooze|"}]}`))
	f.Add("payload=" + url.QueryEscape(`{"type":"view_submission"}`))
	f.Add("command=%2Fpullfix&text=ui-new+-n+default&user_id=U1&response_url=https%3A%2F%2Fhooks.example%2Fc")
	f.Add("command=%2Fpullfix&text=list")
	f.Add("command=%2Fother&text=")
	f.Add("payload=")

	incs := newMemIncidents(runbookIncident("inc-default", nsDefault))
	incs.setRef("inc-default", chDefault+":1.2")
	fixer := &memFixer{incs: incs}
	policy, _ := ParseApprovers(alice)
	api := slack.New("xoxb-fuzz", slack.OptionAPIURL("http://127.0.0.1:1/"))
	app := New(api, Config{Cluster: testCluster, DefaultChannel: chDefault, SigningSecret: "fuzz-secret"},
		Deps{Incidents: incs, Fixer: fixer, OnDemand: &memOnDemand{incs: incs}, Approvers: NewApprovers(policy, nil)},
		WithLogger(testLogger(f)), WithQueueOptions(WithPostInterval(0)))
	f.Cleanup(app.Close)
	app.web = &fakeWeb{}
	app.inline = true

	f.Fuzz(func(t *testing.T, body string) {
		app.verifier = NewVerifier("fuzz-secret")
		incs.mu.Lock()
		clear(incs.fixing)
		incs.mu.Unlock()
		req := httptest.NewRequest(http.MethodPost, "/slack/events", strings.NewReader(body))
		slackemu.SignHeader(req.Header, "fuzz-secret", time.Now(), []byte(body))
		rec := httptest.NewRecorder()
		done := make(chan struct{})
		go func() { defer close(done); app.Handler().ServeHTTP(rec, req) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			buf := make([]byte, 1<<20)
			t.Fatalf("handler hung on %q:\n%s", body, buf[:runtime.Stack(buf, true)])
		}
		if rec.Code != http.StatusOK && rec.Code != http.StatusBadRequest && rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d for %q", rec.Code, body)
		}
	})
}
