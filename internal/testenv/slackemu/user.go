package slackemu

import (
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SlashCommand is a person typing "/command text" in a channel.
type SlashCommand struct {
	Command   string // "/pullfix"
	Text      string // everything after the first space
	UserID    string // must have been added with AddUser
	ChannelID string // must have been added with AddChannel
	Forge     Forgery
}

// Click is a person clicking a button in a message the bot posted (or in an
// ephemeral message shown to them).
type Click struct {
	UserID    string
	ChannelID string
	MessageTS string
	ActionID  string
	// Value overrides the button's value, as a forged client could; empty
	// means the value in the message.
	Value string
	// BlockID narrows the button search when an action_id repeats across
	// blocks; empty means the first match.
	BlockID string
	Forge   Forgery
	// Unrendered sends ActionID and Value although the message shows no
	// such element: a forged client, or one holding an older version of
	// the message. The app must judge it by its own state.
	Unrendered bool
}

// slashPayload is the JSON form of a slash command (Socket Mode), in the
// fixture's field order. is_enterprise_install arrives as a string in
// Socket Mode.
type slashPayload struct {
	Token               string `json:"token"`
	TeamID              string `json:"team_id"`
	TeamDomain          string `json:"team_domain"`
	ChannelID           string `json:"channel_id"`
	ChannelName         string `json:"channel_name"`
	UserID              string `json:"user_id"`
	UserName            string `json:"user_name"`
	Command             string `json:"command"`
	Text                string `json:"text"`
	APIAppID            string `json:"api_app_id"`
	IsEnterpriseInstall string `json:"is_enterprise_install"`
	ResponseURL         string `json:"response_url"`
	TriggerID           string `json:"trigger_id"`
}

// form renders the payload as Slack's x-www-form-urlencoded body, keeping
// Slack's field order (url.Values.Encode would sort it).
func (p slashPayload) form() []byte {
	pairs := [][2]string{
		{"token", p.Token}, {"team_id", p.TeamID}, {"team_domain", p.TeamDomain},
		{"channel_id", p.ChannelID}, {"channel_name", p.ChannelName}, {"user_id", p.UserID},
		{"user_name", p.UserName}, {"command", p.Command}, {"text", p.Text},
		{"api_app_id", p.APIAppID}, {"is_enterprise_install", p.IsEnterpriseInstall},
		{"response_url", p.ResponseURL}, {"trigger_id", p.TriggerID},
	}
	var b strings.Builder
	for i, kv := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(kv[0] + "=" + url.QueryEscape(kv[1]))
	}
	return []byte(b.String())
}

type payloadUser struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Name     string `json:"name"`
	TeamID   string `json:"team_id"`
}

type payloadTeam struct {
	ID     string `json:"id"`
	Domain string `json:"domain"`
}

type payloadChannel struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type payloadContainer struct {
	Type        string `json:"type"`
	MessageTS   string `json:"message_ts"`
	ThreadTS    string `json:"thread_ts,omitempty"`
	ChannelID   string `json:"channel_id"`
	IsEphemeral bool   `json:"is_ephemeral"`
}

type payloadAction struct {
	ActionID string          `json:"action_id"`
	BlockID  string          `json:"block_id"`
	Text     json.RawMessage `json:"text,omitempty"`
	Value    string          `json:"value,omitempty"`
	Style    string          `json:"style,omitempty"`
	Type     string          `json:"type"`
	ActionTS string          `json:"action_ts"`
}

// blockActionsPayload follows socket-mode/interactive_block_actions_message-button_java-slack-sdk.json.
type blockActionsPayload struct {
	Type                string           `json:"type"`
	User                payloadUser      `json:"user"`
	APIAppID            string           `json:"api_app_id"`
	Token               string           `json:"token"`
	Container           payloadContainer `json:"container"`
	TriggerID           string           `json:"trigger_id"`
	Team                payloadTeam      `json:"team"`
	Enterprise          *struct{}        `json:"enterprise"`
	IsEnterpriseInstall bool             `json:"is_enterprise_install"`
	Channel             payloadChannel   `json:"channel"`
	Message             *wireMessage     `json:"message,omitempty"`
	State               struct {
		Values map[string]any `json:"values"`
	} `json:"state"`
	ResponseURL string          `json:"response_url"`
	Actions     []payloadAction `json:"actions"`
}

// triggerID mimics Slack's "<digits>.<digits>.<hex>" trigger ids.
func (e *Emulator) triggerIDLocked() string {
	e.idSeq++
	return fmt.Sprintf("%d.%d.%s", 1000000000000+e.idSeq, 4744562912, randomHex(16))
}

// SlashCommand delivers a slash command as the user typed it, over Socket
// Mode or (with RequestURLs.SlashCommands) HTTP, and waits for the app's
// acknowledgement. A response in the ack is shown the way Slack shows it:
// ephemeral by default, in the channel with response_type "in_channel".
func (e *Emulator) SlashCommand(ctx context.Context, cmd SlashCommand) (Ack, error) {
	e.mu.Lock()
	u, ok := e.users[cmd.UserID]
	if !ok {
		e.mu.Unlock()
		return Ack{}, fmt.Errorf("%w: %q", ErrUnknownUser, cmd.UserID)
	}
	ch, ok := e.channels[cmd.ChannelID]
	if !ok {
		e.mu.Unlock()
		return Ack{}, fmt.Errorf("%w: %q", ErrUnknownChannel, cmd.ChannelID)
	}
	ru, rurl := e.newResponseURLLocked("commands", ch.ID, u.ID, "", false)
	p := slashPayload{
		Token: e.cfg.verificationToken, TeamID: e.cfg.teamID, TeamDomain: e.cfg.teamDomain,
		ChannelID: ch.ID, ChannelName: ch.Name, UserID: u.ID, UserName: u.Name,
		Command: cmd.Command, Text: cmd.Text, APIAppID: e.cfg.appID, IsEnterpriseInstall: "false",
		ResponseURL: rurl, TriggerID: e.triggerIDLocked(),
	}
	e.mu.Unlock()

	meta := Ack{ResponseURL: p.ResponseURL, TriggerID: p.TriggerID}
	var (
		ack Ack
		err error
	)
	if e.cfg.urls.SlashCommands != "" {
		ack, err = e.sendHTTP(ctx, e.signedRequest(e.cfg.urls.SlashCommands, p.form(), cmd.Forge), meta)
		if err == nil {
			e.applyHTTPResponse(ru, &ack)
		}
		return ack, err
	}
	body, _ := json.Marshal(p)
	ack, err = e.deliverSocket(ctx, "slash_commands", body, true, meta)
	if err == nil && len(ack.Payload) > 0 && string(ack.Payload) != "null" {
		e.applyAckPayload(ru, ack.Payload, "ack")
	}
	return ack, err
}

// applyHTTPResponse shows an HTTP-mode slash command's response body, as
// Slack does: JSON is a message, other non-empty text an ephemeral message.
func (e *Emulator) applyHTTPResponse(ru *responseURL, ack *Ack) {
	if len(strings.TrimSpace(string(ack.Payload))) == 0 {
		return
	}
	if json.Valid(ack.Payload) && strings.HasPrefix(strings.TrimSpace(string(ack.Payload)), "{") {
		e.applyAckPayload(ru, ack.Payload, "http_response")
		return
	}
	msg, _ := json.Marshal(map[string]string{"text": string(ack.Payload)})
	e.applyAckPayload(ru, msg, "http_response")
}

// applyAckPayload shows the message carried by an acknowledgement.
func (e *Emulator) applyAckPayload(ru *responseURL, payload []byte, source string) {
	var rm responseMessage
	if json.Unmarshal(payload, &rm) != nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if code, _ := e.applyResponseLocked(ru, rm, source); code != "" {
		e.log.Warn("ack payload rejected", "error", code)
	}
}

// Click delivers a block_actions interaction for a button the user can see
// and waits for the app's acknowledgement.
func (e *Emulator) Click(ctx context.Context, c Click) (Ack, error) {
	e.mu.Lock()
	payload, ruURL, err := e.clickPayloadLocked(c)
	e.mu.Unlock()
	if err != nil {
		return Ack{}, err
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return Ack{}, err
	}
	meta := Ack{ResponseURL: ruURL, TriggerID: payload.TriggerID}
	if e.cfg.urls.Interactivity != "" {
		form := []byte("payload=" + url.QueryEscape(string(body)))
		return e.sendHTTP(ctx, e.signedRequest(e.cfg.urls.Interactivity, form, c.Forge), meta)
	}
	return e.deliverSocket(ctx, "interactive", body, false, meta)
}

func (e *Emulator) clickPayloadLocked(c Click) (*blockActionsPayload, string, error) {
	u, ok := e.users[c.UserID]
	if !ok {
		return nil, "", fmt.Errorf("%w: %q", ErrUnknownUser, c.UserID)
	}
	ch, ok := e.channels[c.ChannelID]
	if !ok {
		return nil, "", fmt.Errorf("%w: %q", ErrUnknownChannel, c.ChannelID)
	}
	var (
		blocks   json.RawMessage
		threadTS string
		msg      *wireMessage
		eph      bool
	)
	if m := e.findMessageLocked(ch.ID, c.MessageTS); m != nil && !m.Deleted {
		blocks, msg = m.Blocks, e.wire(m)
		if m.IsReply() {
			threadTS = m.ThreadTS
		}
	} else if em := e.findEphemeralLocked(ch.ID, c.MessageTS, u.ID); em != nil {
		blocks, threadTS, eph = em.Blocks, em.ThreadTS, true
	} else {
		return nil, "", fmt.Errorf("%w: %s/%s", ErrNoSuchMessage, ch.ID, c.MessageTS)
	}
	el, blockID, ok := findAction(blocks, c.ActionID, c.BlockID)
	if !ok && c.Unrendered && c.Value != "" {
		el, blockID, ok = map[string]any{"type": "button", "value": c.Value}, c.BlockID, true
	}
	if !ok {
		return nil, "", fmt.Errorf("%w: action_id %q", ErrNoSuchAction, c.ActionID)
	}
	act := payloadAction{ActionID: c.ActionID, BlockID: blockID, Type: "button", ActionTS: actionTS()}
	if t, ok := el["text"]; ok {
		act.Text, _ = json.Marshal(t)
	}
	if typ, ok := el["type"].(string); ok {
		act.Type = typ
	}
	act.Value, _ = el["value"].(string)
	act.Style, _ = el["style"].(string)
	if c.Value != "" {
		act.Value = c.Value
	}
	_, rurl := e.newResponseURLLocked("actions", ch.ID, u.ID, c.MessageTS, eph)
	p := &blockActionsPayload{
		Type:        "block_actions",
		User:        payloadUser{ID: u.ID, Username: u.Name, Name: u.Name, TeamID: e.cfg.teamID},
		APIAppID:    e.cfg.appID,
		Token:       e.cfg.verificationToken,
		Container:   payloadContainer{Type: "message", MessageTS: c.MessageTS, ThreadTS: threadTS, ChannelID: ch.ID, IsEphemeral: eph},
		TriggerID:   e.triggerIDLocked(),
		Team:        payloadTeam{ID: e.cfg.teamID, Domain: e.cfg.teamDomain},
		Channel:     payloadChannel{ID: ch.ID, Name: ch.Name},
		Message:     msg,
		ResponseURL: rurl,
		Actions:     []payloadAction{act},
	}
	p.State.Values = map[string]any{}
	return p, rurl, nil
}

func (e *Emulator) findEphemeralLocked(channel, ts, user string) *Ephemeral {
	for _, m := range e.ephemerals {
		if m.Channel == channel && m.TS == ts && m.User == user && !m.Deleted {
			return m
		}
	}
	return nil
}

// findAction locates an interactive element by action_id in actions blocks
// and section accessories.
func findAction(blocks json.RawMessage, actionID, blockID string) (map[string]any, string, bool) {
	var bs []map[string]any
	if json.Unmarshal(blocks, &bs) != nil {
		return nil, "", false
	}
	for _, b := range bs {
		id, _ := b["block_id"].(string)
		if blockID != "" && id != blockID {
			continue
		}
		var els []any
		if list, ok := b["elements"].([]any); ok && b["type"] == "actions" {
			els = list
		}
		if acc, ok := b["accessory"]; ok {
			els = append(els, acc)
		}
		for _, raw := range els {
			if el, ok := raw.(map[string]any); ok && el["action_id"] == actionID {
				return el, id, true
			}
		}
	}
	return nil, "", false
}

func actionTS() string {
	now := time.Now().UnixMicro()
	return strconv.FormatInt(now/1_000_000, 10) + "." + fmt.Sprintf("%06d", now%1_000_000)
}

// SendEvent delivers an Events API event (the inner "event" object, e.g.
// {"type":"app_mention",…}) wrapped in an event_callback, over Socket Mode or
// (with RequestURLs.Events) HTTP, and waits for the ack. Unacknowledged
// events are not redelivered.
func (e *Emulator) SendEvent(ctx context.Context, event any) (Ack, error) {
	inner, err := json.Marshal(event)
	if err != nil {
		return Ack{}, err
	}
	now := time.Now()
	e.mu.Lock()
	e.idSeq++
	cb := map[string]any{
		"token": e.cfg.verificationToken, "team_id": e.cfg.teamID, "api_app_id": e.cfg.appID,
		"event": json.RawMessage(inner), "type": "event_callback",
		"event_id": fmt.Sprintf("Ev%010d", e.idSeq), "event_time": now.Unix(),
		"authorizations": []map[string]any{{"enterprise_id": nil, "team_id": e.cfg.teamID,
			"user_id": e.cfg.botUserID, "is_bot": true, "is_enterprise_install": false}},
		"is_ext_shared_channel": false,
	}
	e.mu.Unlock()
	body, _ := json.Marshal(cb)
	if e.cfg.urls.Events != "" {
		h := e.signedRequest(e.cfg.urls.Events, body, Genuine)
		h.header.Set("Content-Type", "application/json")
		return e.sendHTTP(ctx, h, Ack{})
	}
	return e.deliverSocket(ctx, "events_api", body, false, Ack{})
}

// isJSONContent reports whether a Content-Type is JSON.
func isJSONContent(ct string) bool {
	mt, _, _ := mime.ParseMediaType(ct)
	return mt == "application/json"
}
