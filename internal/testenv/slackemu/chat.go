package slackemu

import (
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// wireMessage is a message object as Slack returns it in chat.postMessage,
// chat.update and block_actions payloads.
type wireMessage struct {
	User         string          `json:"user,omitempty"`
	Type         string          `json:"type"`
	TS           string          `json:"ts"`
	BotID        string          `json:"bot_id,omitempty"`
	AppID        string          `json:"app_id,omitempty"`
	Text         string          `json:"text"`
	Team         string          `json:"team,omitempty"`
	BotProfile   *botProfile     `json:"bot_profile,omitempty"`
	ThreadTS     string          `json:"thread_ts,omitempty"`
	ParentUserID string          `json:"parent_user_id,omitempty"`
	Edited       *edited         `json:"edited,omitempty"`
	Blocks       json.RawMessage `json:"blocks,omitempty"`
}

type botProfile struct {
	ID      string `json:"id"`
	AppID   string `json:"app_id"`
	Name    string `json:"name"`
	Deleted bool   `json:"deleted"`
	Updated int64  `json:"updated"`
	TeamID  string `json:"team_id"`
}

type edited struct {
	User string `json:"user"`
	TS   string `json:"ts"`
}

func (e *Emulator) wire(m *Message) *wireMessage {
	w := &wireMessage{
		User: m.User, Type: "message", TS: m.TS, BotID: m.BotID, AppID: m.AppID,
		Text: m.Text, Team: e.cfg.teamID, ThreadTS: m.ThreadTS, Blocks: m.Blocks,
	}
	if m.BotID != "" {
		w.BotProfile = &botProfile{ID: m.BotID, AppID: m.AppID, Name: e.cfg.botName,
			Updated: 1700000000, TeamID: e.cfg.teamID}
	}
	if m.IsReply() {
		w.ParentUserID = e.cfg.botUserID
		if p := e.findMessageLocked(m.Channel, m.ThreadTS); p != nil {
			w.ParentUserID = p.User
		}
	}
	return w
}

// bucket is a token bucket pacing chat.postMessage in one channel.
type bucket struct {
	tokens float64
	last   time.Time
}

// allowPostLocked takes a token for channel, or says how long to wait.
func (e *Emulator) allowPostLocked(channel string) (bool, time.Duration) {
	if e.cfg.postRate <= 0 {
		return true, 0
	}
	now := time.Now()
	b, ok := e.buckets[channel]
	if !ok {
		b = &bucket{tokens: float64(e.cfg.postBurst), last: now}
		e.buckets[channel] = b
	}
	b.tokens = math.Min(float64(e.cfg.postBurst), b.tokens+now.Sub(b.last).Seconds()*e.cfg.postRate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := math.Ceil((1 - b.tokens) / e.cfg.postRate)
	return false, time.Duration(max(wait, 1)) * time.Second
}

// allowUpdateLocked admits a chat.update under the workspace's Tier 3
// window, or says how long until the oldest call in the window leaves it.
// Only admitted calls count, as a 429 consumes nothing.
func (e *Emulator) allowUpdateLocked() (bool, time.Duration) {
	if e.cfg.updateLimit <= 0 || e.cfg.updateWindow <= 0 {
		return true, 0
	}
	now := time.Now()
	cut := 0
	for cut < len(e.updates) && now.Sub(e.updates[cut]) >= e.cfg.updateWindow {
		cut++
	}
	e.updates = e.updates[cut:]
	if len(e.updates) < e.cfg.updateLimit {
		e.updates = append(e.updates, now)
		return true, 0
	}
	wait := e.updates[0].Add(e.cfg.updateWindow).Sub(now)
	return false, time.Duration(max(math.Ceil(wait.Seconds()), 1)) * time.Second
}

// content validates text and blocks the way chat.postMessage does and
// returns the stored blocks, or the error response.
func contentOf(text, blocksParam, attachments string, blocksGiven bool) (json.RawMessage, *apiResponse) {
	var blocks json.RawMessage
	if blocksGiven && strings.TrimSpace(blocksParam) != "" {
		b, code, errs := normalizeBlocks(blocksParam)
		if code != "" {
			r := invalidBlocks(code, errs)
			return nil, &r
		}
		blocks = b
	}
	hasBlocks := len(blocks) > 0 && string(blocks) != "[]"
	if text == "" && !hasBlocks && (attachments == "" || attachments == "[]") {
		r := errResp("no_text")
		return nil, &r
	}
	if utf8.RuneCountInString(text) > maxMessageText {
		r := errResp("msg_too_long")
		return nil, &r
	}
	return blocks, nil
}

func (e *Emulator) chatPostMessage(r *apiRequest) apiResponse {
	p := r.params
	chID := p.Get("channel")
	if _, ok := e.channels[chID]; !ok {
		return errResp("channel_not_found")
	}
	if ok, wait := e.allowPostLocked(chID); !ok {
		return apiResponse{status: http.StatusTooManyRequests, errCode: "ratelimited", retryAfter: wait,
			body: slackError{Error: "ratelimited"}}
	}
	_, blocksGiven := p["blocks"]
	blocks, bad := contentOf(p.Get("text"), p.Get("blocks"), p.Get("attachments"), blocksGiven)
	if bad != nil {
		return *bad
	}
	meta, badMeta := metadataOf(p.Get("metadata"))
	if badMeta != nil {
		return *badMeta
	}
	threadTS := p.Get("thread_ts")
	if threadTS != "" {
		parent := e.findMessageLocked(chID, threadTS)
		if parent == nil || parent.Deleted {
			return errResp("thread_not_found")
		}
		if parent.IsReply() {
			threadTS = parent.ThreadTS
		}
	}
	m := e.storeMessageLocked(chID, threadTS, p.Get("text"), blocks, "chat.postMessage")
	m.Metadata = meta
	resp := struct {
		OK      bool         `json:"ok"`
		Channel string       `json:"channel"`
		TS      string       `json:"ts"`
		Message *wireMessage `json:"message"`
	}{true, chID, m.TS, e.wire(m)}
	return apiResponse{status: 200, body: resp, blocks: blocks}
}

// storeMessageLocked appends a bot message (root or reply) to channel.
func (e *Emulator) storeMessageLocked(chID, threadTS, text string, blocks json.RawMessage, source string) *Message {
	m := &Message{
		Channel: chID, TS: e.nextTSLocked(), ThreadTS: threadTS, User: e.cfg.botUserID,
		BotID: e.cfg.botID, AppID: e.cfg.appID, Text: text, Blocks: blocks,
		Source: source, PostedAt: time.Now(),
	}
	if threadTS != "" {
		if parent := e.findMessageLocked(chID, threadTS); parent != nil {
			parent.Replies++
			parent.ThreadTS = parent.TS
		}
	}
	e.messages[chID] = append(e.messages[chID], m)
	e.notifyLocked()
	return m
}

func (e *Emulator) chatUpdate(r *apiRequest) apiResponse {
	p := r.params
	chID := p.Get("channel")
	if _, ok := e.channels[chID]; !ok {
		return errResp("channel_not_found")
	}
	m := e.findMessageLocked(chID, p.Get("ts"))
	if m == nil || m.Deleted {
		return errResp("message_not_found")
	}
	if m.User != e.cfg.botUserID {
		return errResp("cant_update_message")
	}
	if ok, wait := e.allowUpdateLocked(); !ok {
		return apiResponse{status: http.StatusTooManyRequests, errCode: "ratelimited", retryAfter: wait,
			body: slackError{Error: "ratelimited"}}
	}
	_, blocksGiven := p["blocks"]
	_, textGiven := p["text"]
	if !blocksGiven && !textGiven && p.Get("attachments") == "" {
		return errResp("no_text")
	}
	text := m.Text
	if textGiven {
		text = p.Get("text")
	}
	var blocks json.RawMessage
	if blocksGiven && strings.TrimSpace(p.Get("blocks")) != "" {
		b, code, errs := normalizeBlocks(p.Get("blocks"))
		if code != "" {
			return invalidBlocks(code, errs)
		}
		blocks = b
	}
	if utf8.RuneCountInString(text) > maxMessageText {
		return errResp("msg_too_long")
	}
	if text == "" && (len(blocks) == 0 || string(blocks) == "[]") && p.Get("attachments") == "" {
		return errResp("no_text")
	}
	meta, badMeta := metadataOf(p.Get("metadata"))
	if badMeta != nil {
		return *badMeta
	}
	if meta != nil {
		m.Metadata = meta // chat.update keeps the metadata unless given anew
	}
	e.editMessageLocked(m, text, blocks)
	resp := struct {
		OK      bool         `json:"ok"`
		Channel string       `json:"channel"`
		TS      string       `json:"ts"`
		Text    string       `json:"text"`
		Message *wireMessage `json:"message"`
	}{true, chID, m.TS, m.Text, e.wire(m)}
	return apiResponse{status: 200, body: resp, blocks: blocks}
}

// editMessageLocked records the old version and applies the new one. A
// nil/empty blocks removes the blocks, as chat.update does when only text
// is sent.
func (e *Emulator) editMessageLocked(m *Message, text string, blocks json.RawMessage) {
	m.Edits = append(m.Edits, Revision{Text: m.Text, Blocks: m.Blocks, At: m.EditedAt})
	if len(m.Edits) == 1 {
		m.Edits[0].At = m.PostedAt
	}
	if string(blocks) == "[]" {
		blocks = nil
	}
	m.Text, m.Blocks, m.EditedAt = text, blocks, time.Now()
	e.notifyLocked()
}

func (e *Emulator) chatPostEphemeral(r *apiRequest) apiResponse {
	p := r.params
	chID := p.Get("channel")
	if _, ok := e.channels[chID]; !ok {
		return errResp("channel_not_found")
	}
	user := p.Get("user")
	if u, ok := e.users[user]; !ok || u.IsBot {
		return errResp("user_not_found")
	}
	_, blocksGiven := p["blocks"]
	blocks, bad := contentOf(p.Get("text"), p.Get("blocks"), p.Get("attachments"), blocksGiven)
	if bad != nil {
		return *bad
	}
	eph := e.storeEphemeralLocked(chID, user, p.Get("thread_ts"), p.Get("text"), blocks, "chat.postEphemeral")
	resp := struct {
		OK        bool   `json:"ok"`
		MessageTS string `json:"message_ts"`
	}{true, eph.TS}
	return apiResponse{status: 200, body: resp, blocks: blocks}
}

func (e *Emulator) storeEphemeralLocked(chID, user, threadTS, text string, blocks json.RawMessage, source string) *Ephemeral {
	eph := &Ephemeral{Channel: chID, User: user, TS: e.nextTSLocked(), ThreadTS: threadTS,
		Text: text, Blocks: blocks, Source: source, At: time.Now()}
	e.ephemerals = append(e.ephemerals, eph)
	e.notifyLocked()
	return eph
}

func (e *Emulator) chatGetPermalink(r *apiRequest) apiResponse {
	chID := r.params.Get("channel")
	if _, ok := e.channels[chID]; !ok {
		return errResp("channel_not_found")
	}
	m := e.findMessageLocked(chID, r.params.Get("message_ts"))
	if m == nil || m.Deleted {
		return errResp("message_not_found")
	}
	link := e.teamURL() + "archives/" + chID + "/p" + strings.ReplaceAll(m.TS, ".", "")
	if m.IsReply() {
		link += "?thread_ts=" + m.ThreadTS + "&cid=" + chID
	}
	return okResp(struct {
		OK        bool   `json:"ok"`
		Channel   string `json:"channel"`
		Permalink string `json:"permalink"`
	}{true, chID, link})
}
