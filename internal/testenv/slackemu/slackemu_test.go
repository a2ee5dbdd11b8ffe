package slackemu_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/pullfix/pullfix/internal/testenv/slackemu"
)

const (
	chAlerts = "C0ALERTS01"
	chOther  = "C0OTHER001"
	alice    = "U0ALICE001"
	bob      = "U0BOB00001"
)

func newEmu(t *testing.T, opts ...slackemu.Option) *slackemu.Emulator {
	t.Helper()
	emu, err := slackemu.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	emu.AddChannel(chAlerts, "pullfix-alerts")
	emu.AddChannel(chOther, "other")
	emu.AddUser(alice, "alice")
	emu.AddUser(bob, "bob")
	return emu
}

func botAPI(emu *slackemu.Emulator, opts ...slack.Option) *slack.Client {
	opts = append([]slack.Option{slack.OptionAPIURL(emu.APIURL()), slack.OptionAppLevelToken(emu.AppToken())}, opts...)
	return slack.New(emu.BotToken(), opts...)
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func slackErr(t *testing.T, err error) slack.SlackErrorResponse {
	t.Helper()
	var se slack.SlackErrorResponse
	if !errors.As(err, &se) {
		t.Fatalf("want slack.SlackErrorResponse, got %T %v", err, err)
	}
	return se
}

var tsRE = regexp.MustCompile(`^\d{10}\.\d{6}$`)

func TestAuthTest(t *testing.T) {
	emu := newEmu(t)
	ctx := testCtx(t)

	got, err := botAPI(emu).AuthTestContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.UserID != emu.BotUserID() || got.TeamID != emu.TeamID() || got.BotID != slackemu.DefaultBotID ||
		got.URL != "https://"+slackemu.DefaultTeamDomain+".slack.com/" {
		t.Fatalf("auth.test = %+v", got)
	}

	for token, want := range map[string]string{
		"xoxb-wrong":   "invalid_auth",
		emu.AppToken(): "not_allowed_token_type",
		"":             "not_authed",
	} {
		_, err := slack.New(token, slack.OptionAPIURL(emu.APIURL())).AuthTestContext(ctx)
		if se := slackErr(t, err); se.Err != want {
			t.Errorf("token %.8q: error %q, want %q", token, se.Err, want)
		}
	}
	if n := len(emu.Calls("auth.test")); n != 4 {
		t.Errorf("recorded %d auth.test calls, want 4", n)
	}
	for _, c := range emu.Calls("") {
		if c.Params.Has("token") {
			t.Errorf("call %d recorded the token", c.Seq)
		}
	}
}

func TestPostUpdateThreadEphemeral(t *testing.T) {
	emu := newEmu(t, slackemu.WithPostRate(0, 1))
	ctx := testCtx(t)
	api := botAPI(emu)

	_, ts1, err := api.PostMessageContext(ctx, chAlerts, slack.MsgOptionText("ui-new: image not found", false))
	if err != nil {
		t.Fatal(err)
	}
	_, ts2, err := api.PostMessageContext(ctx, chAlerts, slack.MsgOptionText("second", false))
	if err != nil {
		t.Fatal(err)
	}
	if !tsRE.MatchString(ts1) || !tsRE.MatchString(ts2) || ts2 <= ts1 {
		t.Fatalf("ts not realistic/increasing: %q %q", ts1, ts2)
	}

	// Thread replies, including a reply to a reply (Slack threads it to the parent).
	_, r1, err := api.PostMessageContext(ctx, chAlerts, slack.MsgOptionText("patching", false), slack.MsgOptionTS(ts1))
	if err != nil {
		t.Fatal(err)
	}
	_, r2, err := api.PostMessageContext(ctx, chAlerts, slack.MsgOptionText("1/1 Running", false), slack.MsgOptionTS(r1))
	if err != nil {
		t.Fatal(err)
	}
	th := emu.Thread(chAlerts, ts1)
	if len(th) != 3 || th[0].TS != ts1 || th[1].TS != r1 || th[2].TS != r2 || th[2].ThreadTS != ts1 || th[0].Replies != 2 {
		t.Fatalf("thread = %+v", th)
	}
	if roots := emu.Messages(chAlerts); len(roots) != 2 {
		t.Fatalf("roots = %d, want 2", len(roots))
	}

	// Edit the root with blocks, then with text only (which removes blocks).
	blocks := slack.MsgOptionBlocks(slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, "*ui-new* 1/1 Running", false, false), nil, nil))
	if _, _, _, err := api.UpdateMessageContext(ctx, chAlerts, ts1, slack.MsgOptionText("ui-new 1/1 Running", false), blocks); err != nil {
		t.Fatal(err)
	}
	m, _ := emu.Message(chAlerts, ts1)
	if m.Text != "ui-new 1/1 Running" || len(m.Edits) != 1 || m.Edits[0].Text != "ui-new: image not found" || !strings.Contains(string(m.Blocks), "1/1 Running") {
		t.Fatalf("after update: %+v", m)
	}
	if _, _, _, err := api.UpdateMessageContext(ctx, chAlerts, ts1, slack.MsgOptionText("plain", false)); err != nil {
		t.Fatal(err)
	}
	if m, _ = emu.Message(chAlerts, ts1); m.Blocks != nil || len(m.Edits) != 2 {
		t.Fatalf("text-only update kept blocks: %+v", m)
	}
	_, _, _, err = api.UpdateMessageContext(ctx, chAlerts, "1.000001", slack.MsgOptionText("x", false))
	if se := slackErr(t, err); se.Err != "message_not_found" {
		t.Fatalf("update unknown ts: %v", err)
	}

	// Errors Slack answers.
	_, _, err = api.PostMessageContext(ctx, "C0NOWHERE1", slack.MsgOptionText("x", false))
	if se := slackErr(t, err); se.Err != "channel_not_found" {
		t.Fatalf("unknown channel: %v", err)
	}
	_, _, err = api.PostMessageContext(ctx, chAlerts)
	if se := slackErr(t, err); se.Err != "no_text" {
		t.Fatalf("no text: %v", err)
	}

	// Ephemeral, permalink, conversations.info, usergroups.
	ets, err := api.PostEphemeralContext(ctx, chAlerts, alice, slack.MsgOptionText("only you", false))
	if err != nil || !tsRE.MatchString(ets) {
		t.Fatalf("ephemeral: %q %v", ets, err)
	}
	if eph := emu.Ephemerals(alice); len(eph) != 1 || eph[0].Text != "only you" || len(emu.Ephemerals(bob)) != 0 {
		t.Fatalf("ephemerals = %+v", eph)
	}
	link, err := api.GetPermalinkContext(ctx, &slack.PermalinkParameters{Channel: chAlerts, Ts: r1})
	if err != nil || !strings.Contains(link, "/archives/"+chAlerts+"/p"+strings.ReplaceAll(r1, ".", "")) || !strings.Contains(link, "thread_ts="+ts1) {
		t.Fatalf("permalink %q %v", link, err)
	}
	info, err := api.GetConversationInfoContext(ctx, &slack.GetConversationInfoInput{ChannelID: chAlerts})
	if err != nil || info.Name != "pullfix-alerts" {
		t.Fatalf("conversations.info %+v %v", info, err)
	}
	emu.AddUserGroup("S0APPROVE1", "sre-approvers", alice)
	members, err := api.GetUserGroupMembersContext(ctx, "S0APPROVE1")
	if err != nil || len(members) != 1 || members[0] != alice {
		t.Fatalf("usergroup members %v %v", members, err)
	}
	_, err = api.GetUserGroupMembersContext(ctx, "S0NOPE0001")
	if se := slackErr(t, err); se.Err != "no_such_subteam" {
		t.Fatalf("unknown group: %v", err)
	}
}

func section(text string) slack.Block {
	return slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, text, false, false), nil, nil)
}

func TestBlockKitLimits(t *testing.T) {
	emu := newEmu(t, slackemu.WithPostRate(0, 1))
	ctx := testCtx(t)
	api := botAPI(emu)

	many := func(n int) []slack.Block {
		bs := make([]slack.Block, n)
		for i := range bs {
			bs[i] = section(fmt.Sprintf("block %d", i))
		}
		return bs
	}
	button := func(actionID, value, text string) *slack.ButtonBlockElement {
		return slack.NewButtonBlockElement(actionID, value, slack.NewTextBlockObject(slack.PlainTextType, text, false, false))
	}
	buttons := func(n int) []slack.BlockElement {
		els := make([]slack.BlockElement, n)
		for i := range els {
			els[i] = button(fmt.Sprintf("a%d", i), "v", "Go")
		}
		return els
	}
	long := func(n int) string { return strings.Repeat("x", n) }

	cases := []struct {
		name    string
		blocks  []slack.Block
		text    string
		wantErr string
		pointer string
	}{
		{"50 blocks ok", many(50), "fallback", "", ""},
		{"51 blocks", many(51), "fallback", "invalid_blocks", "/blocks]"},
		{"section 3000 ok", []slack.Block{section(long(3000))}, "t", "", ""},
		{"section 3001", []slack.Block{section(long(3001))}, "t", "invalid_blocks", "/blocks/0/text/text]"},
		{"header 151", []slack.Block{slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, long(151), false, false))}, "t", "invalid_blocks", "/blocks/0/text/text]"},
		{"button text 76", []slack.Block{slack.NewActionBlock("acts", button("a", "v", long(76)))}, "t", "invalid_blocks", "/blocks/0/elements/0/text/text]"},
		{"button value 2001", []slack.Block{slack.NewActionBlock("acts", button("a", long(2001), "Go"))}, "t", "invalid_blocks", "/blocks/0/elements/0/value]"},
		{"action_id 256", []slack.Block{slack.NewActionBlock("acts", button(long(256), "v", "Go"))}, "t", "invalid_blocks", "/blocks/0/elements/0/action_id]"},
		{"block_id 256", []slack.Block{slack.NewActionBlock(long(256), button("a", "v", "Go"))}, "t", "invalid_blocks", "/blocks/0/block_id]"},
		{"26 elements", []slack.Block{slack.NewActionBlock("acts", buttons(26)...)}, "t", "invalid_blocks", "/blocks/0/elements]"},
		{"25 elements ok", []slack.Block{slack.NewActionBlock("acts", buttons(25)...)}, "t", "", ""},
		{"text 40001", nil, long(40001), "msg_too_long", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts := []slack.MsgOption{slack.MsgOptionText(tc.text, false)}
			if tc.blocks != nil {
				opts = append(opts, slack.MsgOptionBlocks(tc.blocks...))
			}
			_, _, err := api.PostMessageContext(ctx, chAlerts, opts...)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			se := slackErr(t, err)
			if se.Err != tc.wantErr {
				t.Fatalf("error %q, want %q", se.Err, tc.wantErr)
			}
			if tc.pointer == "" {
				return
			}
			if len(se.Errors) == 0 || se.Errors[0].Message == nil || !strings.HasSuffix(*se.Errors[0].Message, "[json-pointer:"+tc.pointer) {
				t.Fatalf("errors = %+v, want pointer %s", se.Errors, tc.pointer)
			}
			if len(se.ResponseMetadata.Messages) == 0 || !strings.HasPrefix(se.ResponseMetadata.Messages[0], "[ERROR] must be") {
				t.Fatalf("response_metadata = %+v", se.ResponseMetadata)
			}
		})
	}
	calls := emu.Calls("chat.postMessage")
	if len(calls) != len(cases) || calls[1].Error != "invalid_blocks" || calls[1].OK() || !calls[0].OK() {
		t.Fatalf("recorded calls: %d", len(calls))
	}
}

func TestPacingAnswers429WithRetryAfter(t *testing.T) {
	emu := newEmu(t, slackemu.WithPostRate(1, 3))
	ctx := testCtx(t)
	api := botAPI(emu)

	for i := range 3 {
		if _, _, err := api.PostMessageContext(ctx, chAlerts, slack.MsgOptionText(fmt.Sprint("burst ", i), false)); err != nil {
			t.Fatalf("post %d within burst: %v", i, err)
		}
	}
	_, _, err := api.PostMessageContext(ctx, chAlerts, slack.MsgOptionText("too fast", false))
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter != time.Second {
		t.Fatalf("want *slack.RateLimitedError{RetryAfter: 1s}, got %T %v", err, err)
	}
	if n := emu.RateLimited(); n != 1 {
		t.Fatalf("RateLimited() = %d", n)
	}
	if c := emu.Calls("chat.postMessage")[3]; c.Status != 429 || c.Error != "ratelimited" || c.RetryAfter != time.Second {
		t.Fatalf("429 call recorded as %+v", c)
	}
	if len(emu.Messages(chAlerts)) != 3 {
		t.Fatal("rate-limited post was stored")
	}
	// Pacing is per channel.
	if _, _, err := api.PostMessageContext(ctx, chOther, slack.MsgOptionText("other channel", false)); err != nil {
		t.Fatalf("other channel paced too: %v", err)
	}
	// The raw answer carries the Retry-After header in seconds.
	form := strings.NewReader("channel=" + chAlerts + "&text=raw")
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, emu.APIURL()+"chat.postMessage", form)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+emu.BotToken())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" || strings.TrimSpace(string(body)) != `{"ok":false,"error":"ratelimited"}` {
		t.Fatalf("raw 429: %d %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}

func TestFaultInjection(t *testing.T) {
	emu := newEmu(t)
	ctx := testCtx(t)
	api := botAPI(emu)

	emu.FailNext("chat.postMessage", 1, slackemu.Fault{Status: 503})
	emu.FailNext("chat.postMessage", 1, slackemu.Fault{Error: "fatal_error"})
	_, _, err := api.PostMessageContext(ctx, chAlerts, slack.MsgOptionText("a", false))
	var sc slack.StatusCodeError
	if !errors.As(err, &sc) || sc.Code != 503 {
		t.Fatalf("want StatusCodeError 503, got %T %v", err, err)
	}
	_, _, err = api.PostMessageContext(ctx, chAlerts, slack.MsgOptionText("b", false))
	if se := slackErr(t, err); se.Err != "fatal_error" {
		t.Fatalf("want fatal_error, got %v", err)
	}
	if _, _, err = api.PostMessageContext(ctx, chAlerts, slack.MsgOptionText("c", false)); err != nil {
		t.Fatalf("third call should succeed: %v", err)
	}
}

// socketApp is a minimal Socket Mode app built on slack-go's real client:
// it acks slash commands with an ephemeral "queued" payload and acks clicks.
type socketApp struct {
	api    *slack.Client
	client *socketmode.Client
	slash  chan slack.SlashCommand
	clicks chan slack.InteractionCallback
	events chan slackevents.EventsAPIEvent
	noAck  bool
}

func startSocketApp(t *testing.T, emu *slackemu.Emulator, noAck bool) *socketApp {
	t.Helper()
	api := botAPI(emu)
	app := &socketApp{api: api, client: socketmode.New(api), noAck: noAck,
		slash: make(chan slack.SlashCommand, 16), clicks: make(chan slack.InteractionCallback, 16),
		events: make(chan slackevents.EventsAPIEvent, 16)}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = app.client.RunContext(ctx) })
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case evt := <-app.client.Events:
				app.handle(evt)
			}
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return app
}

func (a *socketApp) handle(evt socketmode.Event) {
	switch evt.Type {
	// Record before acking: once the emulator has the ack, the test may look.
	case socketmode.EventTypeSlashCommand:
		cmd := evt.Data.(slack.SlashCommand)
		a.slash <- cmd
		if !a.noAck {
			_ = a.client.Ack(*evt.Request, map[string]any{"response_type": "ephemeral", "text": "queued: " + cmd.Text})
		}
	case socketmode.EventTypeInteractive:
		a.clicks <- evt.Data.(slack.InteractionCallback)
		if !a.noAck {
			_ = a.client.Ack(*evt.Request)
		}
	case socketmode.EventTypeEventsAPI:
		a.events <- evt.Data.(slackevents.EventsAPIEvent)
		if !a.noAck {
			_ = a.client.Ack(*evt.Request)
		}
	}
}

func waitConns(t *testing.T, ctx context.Context, emu *slackemu.Emulator, open, opened int) {
	t.Helper()
	err := emu.WaitFor(ctx, func() bool {
		return emu.OpenConnections() == open && len(emu.Connections()) == opened
	})
	if err != nil {
		t.Fatalf("waiting for %d open / %d opened connections (have %d / %d): %v",
			open, opened, emu.OpenConnections(), len(emu.Connections()), err)
	}
}

func postIncident(t *testing.T, ctx context.Context, api *slack.Client) string {
	t.Helper()
	set := slack.NewButtonBlockElement("set_image", "inc-1/cand-1",
		slack.NewTextBlockObject(slack.PlainTextType, "Set image to retail-store-sample-ui:1.2.1", false, false)).WithStyle(slack.StylePrimary)
	dismiss := slack.NewButtonBlockElement("dismiss", "inc-1", slack.NewTextBlockObject(slack.PlainTextType, "Dismiss", false, false))
	_, ts, err := api.PostMessageContext(ctx, chAlerts,
		slack.MsgOptionText("ui-new: image not found", false),
		slack.MsgOptionBlocks(slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, "Image not found", false, false)),
			slack.NewActionBlock("", set, dismiss)))
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func TestSocketModeSlashCommandAndClick(t *testing.T) {
	emu := newEmu(t)
	ctx := testCtx(t)
	app := startSocketApp(t, emu, false)
	waitConns(t, ctx, emu, 1, 1)

	ack, err := emu.SlashCommand(ctx, slackemu.SlashCommand{Command: "/pullfix", Text: "ui-new -n default", UserID: alice, ChannelID: chAlerts})
	if err != nil {
		t.Fatal(err)
	}
	cmd := <-app.slash
	if cmd.Command != "/pullfix" || cmd.Text != "ui-new -n default" || cmd.UserID != alice || cmd.UserName != "alice" ||
		cmd.ChannelID != chAlerts || cmd.ChannelName != "pullfix-alerts" || cmd.TeamID != emu.TeamID() ||
		!strings.HasPrefix(cmd.ResponseURL, emu.URL()+"/commands/") || cmd.TriggerID == "" || cmd.APIAppID != emu.AppID() {
		t.Fatalf("slash command = %+v", cmd)
	}
	if ack.Mode != "socket" || ack.EnvelopeID == "" || ack.Latency <= 0 || !strings.Contains(string(ack.Payload), "queued") {
		t.Fatalf("ack = %+v", ack)
	}
	if eph := emu.Ephemerals(alice); len(eph) != 1 || eph[0].Text != "queued: ui-new -n default" || eph[0].Source != "ack" {
		t.Fatalf("ack payload not shown to the user: %+v", eph)
	}

	// The bot answers later through response_url (slack-go helper).
	if _, _, err := app.api.PostMessageContext(ctx, "", slack.MsgOptionResponseURL(cmd.ResponseURL, slack.ResponseTypeEphemeral),
		slack.MsgOptionText("diagnosis: not found", false)); err != nil {
		t.Fatal(err)
	}
	if eph := emu.Ephemerals(alice); len(eph) != 2 || eph[1].Source != "response_url" {
		t.Fatalf("response_url ephemeral missing: %+v", eph)
	}

	// A click on a button in a message the bot posted.
	ts := postIncident(t, ctx, app.api)
	ack, err = emu.Click(ctx, slackemu.Click{UserID: bob, ChannelID: chAlerts, MessageTS: ts, ActionID: "set_image"})
	if err != nil {
		t.Fatal(err)
	}
	cb := <-app.clicks
	if cb.Type != slack.InteractionTypeBlockActions || len(cb.ActionCallback.BlockActions) != 1 {
		t.Fatalf("callback = %+v", cb)
	}
	act := cb.ActionCallback.BlockActions[0]
	if act.ActionID != "set_image" || act.Value != "inc-1/cand-1" || act.BlockID == "" || act.ActionTs == "" ||
		cb.User.ID != bob || cb.Channel.ID != chAlerts || cb.Container.MessageTs != ts || cb.Container.ChannelID != chAlerts ||
		cb.Container.IsEphemeral || cb.Message.Timestamp != ts || cb.Team.ID != emu.TeamID() || cb.TriggerID == "" ||
		!strings.HasPrefix(cb.ResponseURL, emu.URL()+"/actions/") {
		t.Fatalf("block action = %+v / callback %+v", act, cb)
	}
	if ack.EnvelopeID == "" || len(ack.Payload) != 0 {
		t.Fatalf("click ack = %+v", ack)
	}
	acks := emu.Acks()
	if len(acks) != 2 || acks[0].Latency <= 0 || acks[1].Latency <= 0 {
		t.Fatalf("acks = %+v", acks)
	}

	// Replace the clicked message via its response_url.
	if _, _, err := app.api.PostMessageContext(ctx, "", slack.MsgOptionReplaceOriginal(cb.ResponseURL),
		slack.MsgOptionText("approved by bob", false)); err != nil {
		t.Fatal(err)
	}
	m, _ := emu.Message(chAlerts, ts)
	if m.Text != "approved by bob" || len(m.Edits) != 1 || m.Blocks != nil {
		t.Fatalf("replace_original: %+v", m)
	}

	// An Events API event reaches the app too.
	if _, err := emu.SendEvent(ctx, map[string]any{"type": "app_mention", "user": alice, "channel": chAlerts,
		"text": "<@" + emu.BotUserID() + "> list", "ts": ts, "event_ts": ts}); err != nil {
		t.Fatal(err)
	}
	if ev := <-app.events; ev.Type != slackevents.CallbackEvent || ev.InnerEvent.Type != "app_mention" || ev.TeamID != emu.TeamID() {
		t.Fatalf("event = %+v", ev)
	}

	// Clicking a button that is not there is refused before anything is sent.
	if _, err := emu.Click(ctx, slackemu.Click{UserID: bob, ChannelID: chAlerts, MessageTS: ts, ActionID: "set_image"}); !errors.Is(err, slackemu.ErrNoSuchAction) {
		t.Fatalf("click on removed button: %v", err)
	}
}

func TestAckTimeout(t *testing.T) {
	emu := newEmu(t, slackemu.WithAckTimeout(300*time.Millisecond))
	ctx := testCtx(t)
	app := startSocketApp(t, emu, true)
	waitConns(t, ctx, emu, 1, 1)

	_, err := emu.SlashCommand(ctx, slackemu.SlashCommand{Command: "/pullfix", Text: "list", UserID: alice, ChannelID: chAlerts})
	if !errors.Is(err, slackemu.ErrAckTimeout) {
		t.Fatalf("want ErrAckTimeout, got %v", err)
	}
	<-app.slash // it was delivered, just never acknowledged
	if env := emu.Envelopes(); len(env) != 1 || !env[0].TimedOut || env[0].Acked {
		t.Fatalf("envelopes = %+v", env)
	}
}

func TestNoConnectionIsDispatchFailed(t *testing.T) {
	emu := newEmu(t)
	_, err := emu.SlashCommand(testCtx(t), slackemu.SlashCommand{Command: "/pullfix", UserID: alice, ChannelID: chAlerts})
	if !errors.Is(err, slackemu.ErrNotConnected) {
		t.Fatalf("want ErrNotConnected, got %v", err)
	}
}

func TestReconnectAfterDisconnectAndDrop(t *testing.T) {
	emu := newEmu(t, slackemu.WithDisconnectGrace(time.Minute))
	ctx := testCtx(t)
	app := startSocketApp(t, emu, false)
	waitConns(t, ctx, emu, 1, 1)

	// Slack asks the client to refresh: slack-go calls apps.connections.open
	// again and dials a new socket, then closes the old one itself.
	if n := emu.Disconnect("refresh_requested"); n != 1 {
		t.Fatalf("Disconnect told %d connections", n)
	}
	if err := emu.WaitFor(ctx, func() bool {
		cs := emu.Connections()
		return len(emu.Calls("apps.connections.open")) == 2 && len(cs) == 2 && emu.OpenConnections() == 1 && !cs[0].ClosedAt.IsZero()
	}); err != nil {
		t.Fatalf("no reconnect after disconnect: %v (%+v)", err, emu.Connections())
	}
	ack, err := emu.SlashCommand(ctx, slackemu.SlashCommand{Command: "/pullfix", Text: "after refresh", UserID: alice, ChannelID: chAlerts})
	if err != nil || ack.ConnID != 2 {
		t.Fatalf("after refresh: ack %+v err %v", ack, err)
	}
	if cmd := <-app.slash; cmd.Text != "after refresh" {
		t.Fatalf("got %q", cmd.Text)
	}

	// A hard drop (no close frame): the client notices and reconnects.
	if n := emu.DropConnections(); n != 1 {
		t.Fatalf("dropped %d", n)
	}
	waitConns(t, ctx, emu, 1, 3)
	ack, err = emu.SlashCommand(ctx, slackemu.SlashCommand{Command: "/pullfix", Text: "after drop", UserID: alice, ChannelID: chAlerts})
	if err != nil || ack.ConnID != 3 {
		t.Fatalf("after drop: ack %+v err %v", ack, err)
	}
	if cmd := <-app.slash; cmd.Text != "after drop" {
		t.Fatalf("got %q", cmd.Text)
	}
	if n := len(emu.Calls("apps.connections.open")); n != 3 {
		t.Fatalf("apps.connections.open called %d times, want 3", n)
	}
}

func TestEachEnvelopeGoesToOneConnection(t *testing.T) {
	emu := newEmu(t)
	ctx := testCtx(t)
	a := startSocketApp(t, emu, false)
	b := startSocketApp(t, emu, false)
	waitConns(t, ctx, emu, 2, 2)

	for i := range 4 {
		if _, err := emu.SlashCommand(ctx, slackemu.SlashCommand{Command: "/pullfix", Text: fmt.Sprint(i), UserID: alice, ChannelID: chAlerts}); err != nil {
			t.Fatal(err)
		}
	}
	envs := emu.Envelopes()
	if len(envs) != 4 {
		t.Fatalf("sent %d envelopes for 4 commands", len(envs))
	}
	perConn := map[int]int{}
	ids := map[string]bool{}
	for _, env := range envs {
		if ids[env.ID] || !env.Acked {
			t.Fatalf("envelope %s sent twice or unacked", env.ID)
		}
		ids[env.ID] = true
		perConn[env.ConnID]++
	}
	if len(perConn) != 2 || perConn[1] != 2 || perConn[2] != 2 {
		t.Fatalf("distribution = %v", perConn)
	}
	if len(a.slash)+len(b.slash) != 4 || len(a.slash) != 2 {
		t.Fatalf("apps received %d + %d commands", len(a.slash), len(b.slash))
	}
}

// httpApp is an HTTP-mode app that verifies signatures the way slack-go's
// examples do and refuses replays.
type httpApp struct {
	secret string
	mu     sync.Mutex
	seen   map[string]bool
	got    []string
}

func (h *httpApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sv, err := slack.NewSecretsVerifier(r.Header, h.secret)
	if err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	r.Body = io.NopCloser(io.TeeReader(r.Body, &sv))
	var what string
	switch r.URL.Path {
	case "/slack/commands":
		cmd, err := slack.SlashCommandParse(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		what = "cmd:" + cmd.Command + ":" + cmd.Text + ":" + cmd.UserID
	case "/slack/interactivity":
		cb, err := slack.InteractionCallbackParse(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		what = "click:" + cb.ActionCallback.BlockActions[0].ActionID + ":" + cb.ActionCallback.BlockActions[0].Value
	}
	if err := sv.Ensure(); err != nil {
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	sig := r.Header.Get(slackemu.HeaderSignature)
	h.mu.Lock()
	replay := h.seen[sig]
	h.seen[sig] = true
	if !replay {
		h.got = append(h.got, what)
	}
	h.mu.Unlock()
	if replay {
		http.Error(w, "replayed", http.StatusUnauthorized)
		return
	}
	if strings.HasPrefix(what, "cmd:") {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"response_type":"ephemeral","text":"working on it"}`)
	}
}

func TestHTTPModeSignedRequests(t *testing.T) {
	app := &httpApp{secret: "s3cret-signing", seen: map[string]bool{}}
	srv := httptest.NewServer(app)
	defer srv.Close()
	emu := newEmu(t, slackemu.WithSigningSecret(app.secret), slackemu.WithRequestURLs(slackemu.RequestURLs{
		SlashCommands: srv.URL + "/slack/commands", Interactivity: srv.URL + "/slack/interactivity"}))
	ctx := testCtx(t)

	cmd := slackemu.SlashCommand{Command: "/pullfix", Text: "ui-new -n default", UserID: alice, ChannelID: chAlerts}
	ack, err := emu.SlashCommand(ctx, cmd)
	if err != nil || ack.Mode != "http" || ack.StatusCode != 200 {
		t.Fatalf("genuine: %+v %v", ack, err)
	}
	if eph := emu.Ephemerals(alice); len(eph) != 1 || eph[0].Text != "working on it" {
		t.Fatalf("response body not shown: %+v", eph)
	}
	if _, err := emu.Replay(ctx, ack); !isStatus(err, 401) {
		t.Fatalf("replay accepted: %v", err)
	}
	for _, f := range []slackemu.Forgery{slackemu.BadSignature, slackemu.StaleTimestamp, slackemu.Unsigned, slackemu.TamperedBody} {
		c := cmd
		c.Forge = f
		if _, err := emu.SlashCommand(ctx, c); !isStatus(err, 401) {
			t.Errorf("forgery %d accepted: %v", f, err)
		}
	}

	api := botAPI(emu)
	ts := postIncident(t, ctx, api)
	if _, err := emu.Click(ctx, slackemu.Click{UserID: bob, ChannelID: chAlerts, MessageTS: ts, ActionID: "dismiss"}); err != nil {
		t.Fatal(err)
	}
	if _, err := emu.Click(ctx, slackemu.Click{UserID: bob, ChannelID: chAlerts, MessageTS: ts, ActionID: "dismiss", Forge: slackemu.BadSignature}); !isStatus(err, 401) {
		t.Fatalf("forged click accepted: %v", err)
	}
	app.mu.Lock()
	defer app.mu.Unlock()
	want := []string{"cmd:/pullfix:ui-new -n default:" + alice, "click:dismiss:inc-1"}
	if strings.Join(app.got, "|") != strings.Join(want, "|") {
		t.Fatalf("app accepted %q, want %q", app.got, want)
	}
}

func isStatus(err error, status int) bool {
	var de *slackemu.DeliveryError
	return errors.As(err, &de) && de.Status == status
}

func TestSignMatchesSlackAndSecretsVerifier(t *testing.T) {
	// Slack's documented example (fixture slash-commands/01).
	body := readShared(t, "data/slack-payloads/slash-commands/01_signing-doc-example_webhook-collect_private-channel.txt")
	got := slackemu.Sign("8f742231b10e8888abcd99yyyzzz85a5", time.Unix(1531420618, 0), body)
	if want := "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	// And slack-go's verifier accepts a fresh signature from SignHeader.
	h := http.Header{}
	slackemu.SignHeader(h, "secret", time.Now(), body)
	sv, err := slack.NewSecretsVerifier(h, "secret")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = sv.Write(body)
	if err := sv.Ensure(); err != nil {
		t.Fatal(err)
	}
	slackemu.SignHeader(h, "secret", time.Now().Add(-6*time.Minute), body)
	if _, err := slack.NewSecretsVerifier(h, "secret"); !errors.Is(err, slack.ErrExpiredTimestamp) {
		t.Fatalf("stale timestamp: %v", err)
	}
}

func TestStateView(t *testing.T) {
	emu := newEmu(t)
	ctx := testCtx(t)
	ts := postIncident(t, ctx, botAPI(emu))

	resp, err := http.Get(emu.StateURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st slackemu.State
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	if st.Team.ID != emu.TeamID() || len(st.Channels) != 2 {
		t.Fatalf("state = %+v", st)
	}
	var msgs []slackemu.StateMessage
	for _, c := range st.Channels {
		if c.ID == chAlerts {
			msgs = c.Messages
		}
	}
	if len(msgs) != 1 || msgs[0].TS != ts || !strings.Contains(string(msgs[0].Blocks), `"set_image"`) {
		t.Fatalf("messages = %+v", msgs)
	}
}

func TestResponseURLUsesAreLimited(t *testing.T) {
	emu := newEmu(t)
	ctx := testCtx(t)
	app := startSocketApp(t, emu, false)
	waitConns(t, ctx, emu, 1, 1)
	if _, err := emu.SlashCommand(ctx, slackemu.SlashCommand{Command: "/pullfix", Text: "list", UserID: alice, ChannelID: chAlerts}); err != nil {
		t.Fatal(err)
	}
	cmd := <-app.slash
	post := func(text string, opt slack.MsgOption) error {
		_, _, err := app.api.PostMessageContext(ctx, "", opt, slack.MsgOptionText(text, false))
		return err
	}
	// in_channel posts a visible message; replace_original then edits it.
	if err := post("incidents: 1", slack.MsgOptionResponseURL(cmd.ResponseURL, slack.ResponseTypeInChannel)); err != nil {
		t.Fatal(err)
	}
	if err := post("incidents: 0", slack.MsgOptionReplaceOriginal(cmd.ResponseURL)); err != nil {
		t.Fatal(err)
	}
	msgs := emu.Messages(chAlerts)
	if len(msgs) != 1 || msgs[0].Text != "incidents: 0" || msgs[0].Source != "response_url" || len(msgs[0].Edits) != 1 {
		t.Fatalf("messages = %+v", msgs)
	}
	for i := range 3 {
		if err := post(fmt.Sprint("update ", i), slack.MsgOptionResponseURL(cmd.ResponseURL, slack.ResponseTypeEphemeral)); err != nil {
			t.Fatalf("use %d: %v", i+3, err)
		}
	}
	var sc slack.StatusCodeError
	if err := post("sixth", slack.MsgOptionResponseURL(cmd.ResponseURL, slack.ResponseTypeEphemeral)); !errors.As(err, &sc) || sc.Code != 404 {
		t.Fatalf("sixth use: %T %v", err, err)
	}
	calls := emu.Calls("response_url")
	if len(calls) != 6 || calls[5].Error != "used_url" || calls[1].Params.Get("replace_original") != "true" {
		t.Fatalf("response_url calls = %+v", calls)
	}
}

// chat.update is Tier 3: 50 per minute for the whole workspace, whatever
// the channel; the 51st answers 429 with Retry-After, a refused call does
// not count, and the window slides.
func TestUpdateTier3Answers429WithRetryAfter(t *testing.T) {
	ctx := testCtx(t)
	t.Run("default 50 per minute across channels", func(t *testing.T) {
		emu := newEmu(t, slackemu.WithPostRate(0, 1))
		api := botAPI(emu)
		var tss [2]string
		for i, ch := range []string{chAlerts, chOther} {
			_, ts, err := api.PostMessageContext(ctx, ch, slack.MsgOptionText("root", false))
			if err != nil {
				t.Fatal(err)
			}
			tss[i] = ts
		}
		for i := range slackemu.DefaultUpdateLimit {
			ch, ts := chAlerts, tss[0]
			if i%2 == 1 {
				ch, ts = chOther, tss[1]
			}
			if _, _, _, err := api.UpdateMessageContext(ctx, ch, ts, slack.MsgOptionText(fmt.Sprint("edit ", i), false)); err != nil {
				t.Fatalf("edit %d within the minute's budget: %v", i, err)
			}
		}
		_, _, _, err := api.UpdateMessageContext(ctx, chAlerts, tss[0], slack.MsgOptionText("one too many", false))
		var rl *slack.RateLimitedError
		if !errors.As(err, &rl) || rl.RetryAfter < time.Second || rl.RetryAfter > time.Minute {
			t.Fatalf("want *slack.RateLimitedError with 1s ≤ RetryAfter ≤ 60s, got %T %v", err, err)
		}
		if n := emu.RateLimited(); n != 1 {
			t.Fatalf("RateLimited() = %d, want 1", n)
		}
		if m, _ := emu.Message(chAlerts, tss[0]); m.Text == "one too many" {
			t.Fatal("a rate-limited edit was applied")
		}
		// Posting is a different method with its own limit.
		if _, _, err := api.PostMessageContext(ctx, chAlerts, slack.MsgOptionText("still posts", false)); err != nil {
			t.Fatalf("post after chat.update ran out: %v", err)
		}
	})
	t.Run("the window slides", func(t *testing.T) {
		emu := newEmu(t, slackemu.WithPostRate(0, 1), slackemu.WithUpdateRate(2, time.Second))
		api := botAPI(emu)
		_, ts, err := api.PostMessageContext(ctx, chAlerts, slack.MsgOptionText("root", false))
		if err != nil {
			t.Fatal(err)
		}
		edit := func() error {
			_, _, _, err := api.UpdateMessageContext(ctx, chAlerts, ts, slack.MsgOptionText("edit", false))
			return err
		}
		for i := range 2 {
			if err := edit(); err != nil {
				t.Fatalf("edit %d: %v", i, err)
			}
		}
		var rl *slack.RateLimitedError
		if err := edit(); !errors.As(err, &rl) || rl.RetryAfter != time.Second {
			t.Fatalf("third edit within the window: want 429 Retry-After 1s, got %v", err)
		}
		// Refused calls do not count: once the first two leave the window,
		// two more are admitted. Poll rather than sleep a guessed time.
		deadline := time.Now().Add(30 * time.Second)
		for edit() != nil {
			if time.Now().After(deadline) {
				t.Fatal("chat.update never admitted again after the window passed")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}
