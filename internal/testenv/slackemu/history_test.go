package slackemu_test

import (
	"bytes"
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/pullfix/pullfix/internal/testenv/slackemu"
)

// TestMetadataAndHistory: metadata posted with a message comes back from
// conversations.history (only with include_all_metadata), newest first,
// roots only, paged by cursor and bounded by oldest; chat.update keeps it;
// a malformed metadata is refused as Slack does.
func TestMetadataAndHistory(t *testing.T) {
	emu := newEmu(t, slackemu.WithPostRate(0, 0))
	api := botAPI(emu)
	ctx := testCtx(t)
	md := slack.SlackMetadata{EventType: "pullfix_incident", EventPayload: map[string]any{"incident_id": "abc", "post_id": "p1"}}
	_, ts1, err := api.PostMessageContext(ctx, chAlerts, slack.MsgOptionText("first", false), slack.MsgOptionMetadata(md))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := api.PostMessageContext(ctx, chAlerts, slack.MsgOptionText("reply", false), slack.MsgOptionTS(ts1)); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := api.UpdateMessageContext(ctx, chAlerts, ts1, slack.MsgOptionText("first, edited", false)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, _, err := api.PostMessageContext(ctx, chAlerts, slack.MsgOptionText("later "+string(rune('a'+i)), false)); err != nil {
			t.Fatal(err)
		}
	}
	h, err := api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: chAlerts, Limit: 2, IncludeAllMetadata: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Messages) != 2 || !h.HasMore || h.ResponseMetaData.NextCursor == "" || h.Messages[0].Text != "later c" {
		t.Fatalf("first page: %d messages, has_more %v, cursor %q, first %q", len(h.Messages), h.HasMore, h.ResponseMetaData.NextCursor, h.Messages[0].Text)
	}
	h2, err := api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: chAlerts, Limit: 2, Cursor: h.ResponseMetaData.NextCursor, IncludeAllMetadata: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(h2.Messages) != 2 || h2.HasMore {
		t.Fatalf("second page: %d messages, has_more %v", len(h2.Messages), h2.HasMore)
	}
	first := h2.Messages[1]
	if first.Timestamp != ts1 || first.Text != "first, edited" || first.ReplyCount != 1 {
		t.Errorf("oldest root: ts %s text %q replies %d", first.Timestamp, first.Text, first.ReplyCount)
	}
	if first.Metadata.EventType != "pullfix_incident" || first.Metadata.EventPayload["post_id"] != "p1" {
		t.Errorf("metadata %+v, want the posted one (kept by chat.update)", first.Metadata)
	}
	plain, err := api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: chAlerts, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if got := plain.Messages[len(plain.Messages)-1].Metadata.EventType; got != "" {
		t.Errorf("metadata %q returned without include_all_metadata", got)
	}
	// oldest bounds the scan (exclusive).
	later, err := api.GetConversationHistoryContext(ctx, &slack.GetConversationHistoryParameters{ChannelID: chAlerts, Oldest: ts1})
	if err != nil {
		t.Fatal(err)
	}
	if len(later.Messages) != 3 {
		t.Errorf("%d roots after %s, want 3", len(later.Messages), ts1)
	}
	_, _, err = api.PostMessageContext(ctx, chAlerts, slack.MsgOptionText("x", false), slack.MsgOptionMetadata(slack.SlackMetadata{}))
	if se := slackErr(t, err); se.Err != "invalid_metadata_format" {
		t.Errorf("empty event_type: %v", err)
	}
}

// TestHoldCall: a held call waits; before, a call whose client leaves is
// never handled; after, it is handled and its answer withheld. Every body
// is recorded.
func TestHoldCall(t *testing.T) {
	emu := newEmu(t)
	api := botAPI(emu)
	before := emu.HoldCall("chat.postMessage", false, func(p url.Values) bool { return p.Get("text") == "held-before" })
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, _, err := api.PostMessageContext(ctx, chAlerts, slack.MsgOptionText("held-before", false))
		done <- err
	}()
	select {
	case <-before.Reached():
	case <-time.After(10 * time.Second):
		t.Fatal("the call was not held")
	}
	cancel()
	<-done
	// The emulator's handler sees the client go and drops the call.
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && len(emu.Calls("chat.postMessage")) == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	if n := len(emu.Messages(chAlerts)); n != 0 {
		t.Errorf("%d messages stored from a call dropped before handling", n)
	}

	after := emu.HoldCall("chat.postMessage", true, nil)
	go func() {
		_, _, err := api.PostMessageContext(testCtx(t), chAlerts, slack.MsgOptionText("held-after", false))
		done <- err
	}()
	<-after.Reached()
	if n := len(emu.Messages(chAlerts)); n != 1 {
		t.Errorf("%d messages stored while the answer is held, want 1", n)
	}
	after.Release()
	if err := <-done; err != nil {
		t.Errorf("released call: %v", err)
	}
	var found bool
	for _, r := range emu.Received() {
		found = found || (r.Path == "/api/chat.postMessage" && bytes.Contains(r.Body, []byte("held-after")))
	}
	if !found {
		t.Error("the request body was not recorded")
	}
}
