package slackemu_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/slack-go/slack"

	"github.com/pullfix/pullfix/internal/testenv/slackemu"
)

// pageState mirrors the fields of GET /page/state the page relies on.
type pageState struct {
	Team    slackemu.StateTeam `json:"team"`
	Channel struct {
		ID       string                  `json:"id"`
		Name     string                  `json:"name"`
		Messages []slackemu.StateMessage `json:"messages"`
	} `json:"channel"`
	Ephemerals  []slackemu.StateEphemeral `json:"ephemerals"`
	Users       map[string]string         `json:"users"`
	As          string                    `json:"as"`
	AsName      string                    `json:"as_name"`
	Connections int                       `json:"connections"`
	Panel       bool                      `json:"panel"`
}

type pageResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
}

func servePage(t *testing.T, emu *slackemu.Emulator, opts ...slackemu.PageOption) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(emu.Page(opts...))
	t.Cleanup(srv.Close)
	return srv
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

func postJSON(t *testing.T, url, body string) (int, pageResult) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r pageResult
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	return resp.StatusCode, r
}

// TestPageServesAssets: the page and its script and style are embedded and
// served with their types.
func TestPageServesAssets(t *testing.T) {
	srv := servePage(t, newEmu(t))
	for path, want := range map[string]string{
		"/":                "text/html",
		"/assets/page.js":  "text/javascript",
		"/assets/page.css": "text/css",
	} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), want) || len(body) == 0 {
			t.Errorf("GET %s: %s %q (%d bytes), want 200 %s", path, resp.Status, resp.Header.Get("Content-Type"), len(body), want)
		}
	}
	resp, err := http.Get(srv.URL + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nope: %s, want 404", resp.Status)
	}
}

// TestPageState: the page sees the configured channel with roots, thread
// replies and edits, the acting user's ephemerals in that channel only,
// and the names behind user ids.
func TestPageState(t *testing.T) {
	emu := newEmu(t, slackemu.WithPostRate(0, 1))
	ctx := testCtx(t)
	api := botAPI(emu)
	srv := servePage(t, emu, slackemu.PageAs(alice), slackemu.PageChannel(chAlerts))

	ts := postIncident(t, ctx, api)
	if _, _, err := api.PostMessageContext(ctx, chAlerts, slack.MsgOptionText("patched", false), slack.MsgOptionTS(ts)); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := api.UpdateMessageContext(ctx, chAlerts, ts, slack.MsgOptionText("resolved", false)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := api.PostMessageContext(ctx, chOther, slack.MsgOptionText("elsewhere", false)); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{alice, bob} {
		if _, err := api.PostEphemeralContext(ctx, chAlerts, u, slack.MsgOptionText("only for "+u, false)); err != nil {
			t.Fatal(err)
		}
	}

	var s pageState
	getJSON(t, srv.URL+"/page/state", &s)
	if s.Channel.ID != chAlerts || s.Channel.Name != "pullfix-alerts" || s.As != alice || s.AsName != "alice" || s.Panel {
		t.Fatalf("state header = %+v", s)
	}
	if len(s.Channel.Messages) != 2 {
		t.Fatalf("messages = %+v, want the root and its reply", s.Channel.Messages)
	}
	root, reply := s.Channel.Messages[0], s.Channel.Messages[1]
	if root.TS != ts || root.Edits != 1 || root.Text != "resolved" || root.Replies != 1 {
		t.Errorf("root = %+v, want edited once to %q with 1 reply", root, "resolved")
	}
	if reply.ThreadTS != ts || reply.Text != "patched" {
		t.Errorf("reply = %+v", reply)
	}
	if len(s.Ephemerals) != 1 || s.Ephemerals[0].Text != "only for "+alice {
		t.Errorf("ephemerals = %+v, want alice's only", s.Ephemerals)
	}
	if s.Users[alice] != "alice" || s.Users[emu.BotUserID()] != slackemu.DefaultBotName {
		t.Errorf("users = %v", s.Users)
	}
}

// TestPageEvents: the event stream sends the state at once and again after
// a change, so the page updates live without polling.
func TestPageEvents(t *testing.T) {
	emu := newEmu(t, slackemu.WithPostRate(0, 1))
	ctx := testCtx(t)
	srv := servePage(t, emu, slackemu.PageAs(alice), slackemu.PageChannel(chAlerts))

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/page/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	events := make(chan pageState, 8)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var s pageState
				if json.Unmarshal([]byte(data), &s) == nil {
					events <- s
				}
			}
		}
	}()
	next := func() pageState {
		t.Helper()
		select {
		case s, ok := <-events:
			if !ok {
				t.Fatal("event stream ended")
			}
			return s
		case <-ctx.Done():
			t.Fatal("no event")
		}
		return pageState{}
	}
	if s := next(); len(s.Channel.Messages) != 0 {
		t.Fatalf("first event has %d messages, want 0", len(s.Channel.Messages))
	}
	postIncident(t, ctx, botAPI(emu))
	if s := next(); len(s.Channel.Messages) != 1 || s.Channel.Messages[0].Text != "ui-new: image not found" {
		t.Fatalf("event after the post = %+v", s.Channel.Messages)
	}
	// Closing the emulator ends the stream (so a server Shutdown need not
	// wait for it).
	_ = emu.Close()
	for range events {
	}
}

// TestPageClickAndCommand: the page's button and command box act as the
// page's user through Socket Mode, like Slack; failures come back in
// Slack's words.
func TestPageClickAndCommand(t *testing.T) {
	emu := newEmu(t, slackemu.WithPostRate(0, 1))
	ctx := testCtx(t)
	srv := servePage(t, emu, slackemu.PageAs(alice), slackemu.PageChannel(chAlerts))
	api := botAPI(emu)
	ts := postIncident(t, ctx, api)

	// Nobody connected yet: Slack would say dispatch_failed.
	if _, r := postJSON(t, srv.URL+"/page/click", `{"ts":"`+ts+`","action_id":"set_image"}`); r.OK || !strings.Contains(r.Error, "dispatch_failed") {
		t.Errorf("click without a connection = %+v, want dispatch_failed", r)
	}

	app := startSocketApp(t, emu, false)
	waitConns(t, ctx, emu, 1, 1)
	var blockID string
	for _, m := range emu.Messages(chAlerts) {
		var bs []struct {
			Type    string `json:"type"`
			BlockID string `json:"block_id"`
		}
		_ = json.Unmarshal(m.Blocks, &bs)
		for _, b := range bs {
			if b.Type == "actions" {
				blockID = b.BlockID
			}
		}
	}
	if _, r := postJSON(t, srv.URL+"/page/click", `{"ts":"`+ts+`","action_id":"set_image","block_id":"`+blockID+`"}`); !r.OK {
		t.Fatalf("click = %+v", r)
	}
	select {
	case cb := <-app.clicks:
		if cb.User.ID != alice || cb.Container.MessageTs != ts || len(cb.ActionCallback.BlockActions) != 1 ||
			cb.ActionCallback.BlockActions[0].Value != "inc-1/cand-1" || cb.ActionCallback.BlockActions[0].BlockID != blockID {
			t.Errorf("click delivered = user %s ts %s actions %+v", cb.User.ID, cb.Container.MessageTs, cb.ActionCallback.BlockActions)
		}
	case <-ctx.Done():
		t.Fatal("the click never reached the app")
	}

	if _, r := postJSON(t, srv.URL+"/page/command", `{"text":"/pullfix  list -n default "}`); !r.OK {
		t.Fatalf("command = %+v", r)
	}
	select {
	case cmd := <-app.slash:
		if cmd.Command != "/pullfix" || cmd.Text != "list -n default" || cmd.UserID != alice || cmd.ChannelID != chAlerts {
			t.Errorf("command delivered = %+v", cmd)
		}
	case <-ctx.Done():
		t.Fatal("the command never reached the app")
	}
	if err := emu.WaitFor(ctx, func() bool { return len(emu.Ephemerals(alice)) == 1 }); err != nil {
		t.Fatalf("the command's ephemeral answer was not shown to alice: %v", err)
	}

	for _, tc := range []struct {
		name, path, body string
		status           int
		want             string
	}{
		{"unknown button", "/page/click", `{"ts":"` + ts + `","action_id":"nope"}`, 200, "no such action"},
		{"unknown message", "/page/click", `{"ts":"1.000001","action_id":"set_image"}`, 200, "no such message"},
		{"not JSON", "/page/click", `click!`, 400, "want JSON"},
		{"missing ts", "/page/click", `{"action_id":"set_image"}`, 400, "want JSON"},
		{"plain text", "/page/command", `{"text":"hello"}`, 200, "only slash commands"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, r := postJSON(t, srv.URL+tc.path, tc.body)
			if status != tc.status || r.OK || !strings.Contains(r.Error, tc.want) {
				t.Errorf("POST %s %s = %d %+v, want %d and %q", tc.path, tc.body, status, r, tc.status, tc.want)
			}
		})
	}

	// A page without an acting user is read-only.
	ro := servePage(t, emu, slackemu.PageChannel(chAlerts))
	if _, r := postJSON(t, ro.URL+"/page/click", `{"ts":"`+ts+`","action_id":"set_image"}`); r.OK || !strings.Contains(r.Error, "no acting user") {
		t.Errorf("read-only click = %+v", r)
	}
}

// TestPagePanel: the side panel shows what PanelFunc returns, and its error.
func TestPagePanel(t *testing.T) {
	emu := newEmu(t)
	fail := errors.New("deployment ui-new: not found")
	calls := 0
	srv := servePage(t, emu, slackemu.PagePanel(func(context.Context) (slackemu.Panel, error) {
		calls++
		if calls == 2 {
			return slackemu.Panel{Title: "cluster"}, fail
		}
		return slackemu.Panel{Title: "cluster", Lines: []slackemu.PanelLine{{Text: "Deployment ui-new: ready 0/1", Tone: "bad"}}}, nil
	}))
	var s pageState
	getJSON(t, srv.URL+"/page/state", &s)
	if !s.Panel {
		t.Error("state does not announce the panel")
	}
	type panel struct {
		slackemu.Panel
		Error string `json:"error"`
	}
	var p panel
	getJSON(t, srv.URL+"/page/panel", &p)
	if p.Title != "cluster" || len(p.Lines) != 1 || p.Lines[0].Tone != "bad" || p.Error != "" {
		t.Errorf("panel = %+v", p)
	}
	p = panel{}
	getJSON(t, srv.URL+"/page/panel", &p)
	if p.Error != fail.Error() || p.Lines == nil {
		t.Errorf("failing panel = %+v, want its error and an empty list", p)
	}
}
