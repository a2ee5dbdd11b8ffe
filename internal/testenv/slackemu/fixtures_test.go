package slackemu_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"

	"github.com/pullfix/pullfix/internal/testenv/slackemu"
)

// sharedDir finds ../shared next to the repository root (or
// $PULLFIX_SHARED_DIR). The fixtures are read in place, never copied.
func sharedDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("PULLFIX_SHARED_DIR"); d != "" {
		return d
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if b, _ := os.ReadFile(filepath.Join(dir, "go.mod")); bytes.HasPrefix(b, []byte("module github.com/pullfix/pullfix\n")) {
				return filepath.Join(dir, "..", "shared")
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("repository root not found; set PULLFIX_SHARED_DIR")
		}
		dir = parent
	}
}

func readShared(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(sharedDir(t), rel))
	if err != nil {
		t.Fatalf("reading fixture (set PULLFIX_SHARED_DIR?): %v", err)
	}
	return b
}

func fixture(t *testing.T, name string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(readShared(t, "data/slack-payloads/"+name), &v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return v
}

func kind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	default:
		return "null"
	}
}

// sameShape reports every key of want (recursively) that got lacks or holds
// with another JSON type. A null in want matches anything; arrays compare
// their first elements. skip lists JSON paths the emulator deliberately
// omits.
func sameShape(path string, want, got any, skip map[string]bool) []string {
	if skip[path] || want == nil {
		return nil
	}
	if kind(want) != kind(got) {
		return []string{fmt.Sprintf("%s: fixture %s, emulator %s", path, kind(want), kind(got))}
	}
	var diffs []string
	switch w := want.(type) {
	case map[string]any:
		g := got.(map[string]any)
		for k, wv := range w {
			p := path + "." + k
			gv, ok := g[k]
			if !ok {
				if !skip[p] {
					diffs = append(diffs, p+": missing")
				}
				continue
			}
			diffs = append(diffs, sameShape(p, wv, gv, skip)...)
		}
	case []any:
		g := got.([]any)
		if len(w) > 0 && len(g) > 0 {
			diffs = append(diffs, sameShape(path+"[0]", w[0], g[0], skip)...)
		}
	}
	return diffs
}

func checkShape(t *testing.T, what string, want, got any, skip ...string) {
	t.Helper()
	s := map[string]bool{}
	for _, p := range skip {
		s[p] = true
	}
	for _, d := range sameShape("$", want, got, s) {
		t.Errorf("%s: %s", what, d)
	}
}

// rawCall posts a form to the Web API and returns the decoded JSON body.
func rawCall(t *testing.T, ctx context.Context, emu *slackemu.Emulator, method, token, form string) any {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, emu.APIURL()+method, strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v: %s", method, err, b)
	}
	return v
}

func TestWebAPIResponsesMatchFixtures(t *testing.T) {
	emu := newEmu(t, slackemu.WithPostRate(0, 1))
	ctx := testCtx(t)
	tok := emu.BotToken()

	got := rawCall(t, ctx, emu, "auth.test", tok, "")
	checkShape(t, "auth.test", fixture(t, "web-api/auth.test_ok_bot_java-mock.json"), got, "$.enterprise_id")
	checkShape(t, "auth.test", fixture(t, "web-api/auth.test_ok_spec-example.json"), got)
	var fromFixture, fromEmu slack.AuthTestResponse
	_ = json.Unmarshal(readShared(t, "data/slack-payloads/web-api/auth.test_ok_bot_java-mock.json"), &fromFixture)
	b, _ := json.Marshal(got)
	_ = json.Unmarshal(b, &fromEmu)
	if fromFixture.BotID == "" || fromEmu.BotID == "" || fromEmu.UserID == "" || fromEmu.URL == "" {
		t.Errorf("slack.AuthTestResponse: fixture %+v, emulator %+v", fromFixture, fromEmu)
	}

	root := rawCall(t, ctx, emu, "chat.postMessage", tok, "channel="+chAlerts+"&text=hello").(map[string]any)
	reply := rawCall(t, ctx, emu, "chat.postMessage", tok, "channel="+chAlerts+"&text=hello&thread_ts="+root["ts"].(string))
	checkShape(t, "chat.postMessage", fixture(t, "web-api/chat.postMessage_ok_slack-go-test_threaded.json"), reply)
	checkShape(t, "chat.postMessage", fixture(t, "web-api/chat.postMessage_ok_spec-example.json"), root,
		"$.message.attachments", "$.message.subtype", "$.message.username")

	upd := rawCall(t, ctx, emu, "chat.update", tok, "channel="+chAlerts+"&ts="+root["ts"].(string)+"&text=Updated")
	checkShape(t, "chat.update", fixture(t, "web-api/chat.update_ok_spec-example.json"), upd)

	emu.AddUserGroup("S060R4BJ4", "sre", "U060R4BJ4", "W123A4BC5")
	ug := rawCall(t, ctx, emu, "usergroups.users.list", tok, "usergroup=S060R4BJ4")
	if want := fixture(t, "web-api/usergroups.users.list_ok_spec-example.json"); !jsonEqual(want, ug) {
		t.Errorf("usergroups.users.list = %v, want %v", ug, want)
	}

	for name, got := range map[string]any{
		"web-api/error_channel_not_found_spec-example_conversations.info.json": rawCall(t, ctx, emu, "conversations.info", tok, "channel=C0NOPE0001"),
		"web-api/error_invalid_auth_compact_java-mock.json":                    rawCall(t, ctx, emu, "auth.test", "xoxb-nope", ""),
		"web-api/chat.update_error_cant_update_message_spec-example.json":      nil,
	} {
		if got == nil {
			continue
		}
		if want := fixture(t, name); !jsonEqual(want, got) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}

	// The 429 body, once pacing is on.
	emu2 := newEmu(t, slackemu.WithPostRate(1, 1))
	rawCall(t, ctx, emu2, "chat.postMessage", tok, "channel="+chAlerts+"&text=1")
	if got, want := rawCall(t, ctx, emu2, "chat.postMessage", tok, "channel="+chAlerts+"&text=2"), fixture(t, "web-api/ratelimited_429_body_java-mock.json"); !jsonEqual(want, got) {
		t.Errorf("429 body %v, want %v", got, want)
	}
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// TestSocketFramesMatchFixtures drives the socket with a bare gorilla
// client, to see the exact frames slack-go would parse.
func TestSocketFramesMatchFixtures(t *testing.T) {
	emu := newEmu(t)
	ctx := testCtx(t)

	// apps.connections.open wants the app token, in the header only.
	if got := rawCall(t, ctx, emu, "apps.connections.open", emu.BotToken(), ""); got.(map[string]any)["error"] != "not_allowed_token_type" {
		t.Fatalf("bot token accepted: %v", got)
	}
	if got := rawCall(t, ctx, emu, "apps.connections.open", "", "token="+emu.AppToken()); got.(map[string]any)["error"] != "not_authed" {
		t.Fatalf("token as POST parameter accepted: %v", got)
	}
	open := rawCall(t, ctx, emu, "apps.connections.open", emu.AppToken(), "").(map[string]any)
	u, _ := open["url"].(string)
	if !strings.HasPrefix(u, "ws://127.0.0.1:") || !strings.Contains(u, "ticket=") {
		t.Fatalf("apps.connections.open = %v", open)
	}
	checkShape(t, "apps.connections.open", map[string]any{"ok": true, "url": ""}, open)

	ws, _, err := websocket.DefaultDialer.DialContext(ctx, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if _, _, err := websocket.DefaultDialer.DialContext(ctx, u, nil); err == nil {
		t.Fatal("a ticket was accepted twice")
	}
	pings := make(chan struct{}, 8)
	ws.SetPingHandler(func(string) error {
		select {
		case pings <- struct{}{}:
		default:
		}
		return nil
	})
	read := func() any {
		t.Helper()
		_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, b, err := ws.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	hello := read()
	checkShape(t, "hello", fixture(t, "socket-mode/hello_slack-go_redacted-real.json"), hello)
	checkShape(t, "hello", fixture(t, "socket-mode/hello_python-slack-sdk_num_connections-1.json"), hello)

	// Slash command envelope, acked by hand with a payload.
	type result struct {
		ack slackemu.Ack
		err error
	}
	done := make(chan result, 1)
	go func() {
		a, err := emu.SlashCommand(ctx, slackemu.SlashCommand{Command: "/pullfix", Text: "help", UserID: alice, ChannelID: chAlerts})
		done <- result{a, err}
	}()
	env := read().(map[string]any)
	checkShape(t, "slash_commands", fixture(t, "socket-mode/slash_commands_java-slack-sdk.json"), env)
	checkShape(t, "slash_commands", fixture(t, "socket-mode/slash_commands_bolt-python.json"), env)
	var cmd slack.SlashCommand
	pb, _ := json.Marshal(env["payload"])
	if err := json.Unmarshal(pb, &cmd); err != nil || cmd.Text != "help" {
		t.Fatalf("slack.SlashCommand from envelope: %+v %v", cmd, err)
	}
	_ = ws.WriteJSON(map[string]any{"envelope_id": env["envelope_id"], "payload": map[string]any{"text": "usage: /pullfix …"}})
	r := <-done
	if r.err != nil || r.ack.EnvelopeID != env["envelope_id"] || !strings.Contains(string(r.ack.Payload), "usage") {
		t.Fatalf("ack %+v %v", r.ack, r.err)
	}

	// block_actions envelope for a button in a bot message.
	ts := postIncident(t, ctx, botAPI(emu))
	go func() {
		a, err := emu.Click(ctx, slackemu.Click{UserID: alice, ChannelID: chAlerts, MessageTS: ts, ActionID: "dismiss"})
		done <- result{a, err}
	}()
	env = read().(map[string]any)
	// Blocks are whatever the bot posted, so only the envelope around them is compared.
	checkShape(t, "interactive", fixture(t, "socket-mode/interactive_block_actions_message-button_java-slack-sdk.json"), env,
		"$.payload.message.blocks")
	var ours, theirs slack.InteractionCallback
	pb, _ = json.Marshal(env["payload"])
	if err := json.Unmarshal(pb, &ours); err != nil {
		t.Fatal(err)
	}
	fb, _ := json.Marshal(fixture(t, "socket-mode/interactive_block_actions_message-button_java-slack-sdk.json").(map[string]any)["payload"])
	if err := json.Unmarshal(fb, &theirs); err != nil {
		t.Fatal(err)
	}
	for _, cb := range []slack.InteractionCallback{theirs, ours} {
		if cb.Type != slack.InteractionTypeBlockActions || len(cb.ActionCallback.BlockActions) != 1 || cb.Container.Type != "message" ||
			cb.Message.Timestamp == "" || cb.ResponseURL == "" || cb.User.ID == "" || cb.Channel.ID == "" {
			t.Errorf("slack.InteractionCallback = %+v", cb)
		}
	}
	_ = ws.WriteJSON(map[string]any{"envelope_id": env["envelope_id"]})
	if r := <-done; r.err != nil {
		t.Fatal(r.err)
	}

	// Server pings arrive (the default interval is 5 s; the first is immediate).
	go func() { _, _, _ = ws.ReadMessage() }()
	select {
	case <-pings:
	case <-ctx.Done():
		t.Fatal("no ping")
	}

	// Disconnect frame.
	ws2 := dialRaw(t, ctx, emu)
	_ = ws2.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, _ = ws2.ReadMessage() // hello
	emu.Disconnect("warning")
	_, b, err := ws2.ReadMessage()
	if err != nil {
		t.Fatal(err)
	}
	var disc any
	_ = json.Unmarshal(b, &disc)
	checkShape(t, "disconnect", fixture(t, "socket-mode/disconnect_warning_slack-go.json"), disc)
	if disc.(map[string]any)["reason"] != "warning" {
		t.Fatalf("disconnect = %s", b)
	}
}

func dialRaw(t *testing.T, ctx context.Context, emu *slackemu.Emulator) *websocket.Conn {
	t.Helper()
	open := rawCall(t, ctx, emu, "apps.connections.open", emu.AppToken(), "").(map[string]any)
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, open["url"].(string), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.Close() })
	return ws
}
