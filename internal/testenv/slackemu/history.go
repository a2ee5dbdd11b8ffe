package slackemu

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
)

// Message metadata and conversations.history: an app can attach metadata
// (event_type, event_payload) to the messages it posts, and read a
// channel's recent messages back with it (include_all_metadata). pullfix
// finds its own root message after a crash this way, since
// chat.postMessage has no idempotency key.

// metadataOf validates chat.postMessage's and chat.update's metadata
// parameter: a JSON object with a non-empty string event_type and an
// object event_payload, as slack.SlackMetadata marshals it.
func metadataOf(raw string) (json.RawMessage, *apiResponse) {
	if strings.TrimSpace(raw) == "" {
		return nil, nil
	}
	var md struct {
		EventType    *string         `json:"event_type"`
		EventPayload json.RawMessage `json:"event_payload"`
	}
	bad := errResp("invalid_metadata_format")
	if err := json.Unmarshal([]byte(raw), &md); err != nil || md.EventType == nil || *md.EventType == "" || len(*md.EventType) > 255 {
		return nil, &bad
	}
	if len(md.EventPayload) > 0 && string(md.EventPayload) != "null" {
		var obj map[string]any
		if json.Unmarshal(md.EventPayload, &obj) != nil {
			return nil, &bad
		}
	}
	return json.RawMessage(raw), nil
}

// historyMessage is a message as conversations.history returns it.
type historyMessage struct {
	*wireMessage
	ReplyCount int             `json:"reply_count,omitempty"`
	Metadata   json.RawMessage `json:"metadata,omitempty"`
}

// conversationsHistory answers a channel's root messages, newest first,
// between oldest and latest (exclusive unless inclusive=1), limit per page
// (default 100, at most 999), with an opaque cursor for the next page;
// metadata only with include_all_metadata=1.
func (e *Emulator) conversationsHistory(r *apiRequest) apiResponse {
	p := r.params
	chID := p.Get("channel")
	if _, ok := e.channels[chID]; !ok {
		return errResp("channel_not_found")
	}
	limit := 100
	if s := p.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return errResp("invalid_limit")
		}
		limit = min(n, 999)
	}
	inclusive := p.Get("inclusive") == "1" || p.Get("inclusive") == "true"
	withMeta := p.Get("include_all_metadata") == "1" || p.Get("include_all_metadata") == "true"
	oldest, _ := strconv.ParseFloat(p.Get("oldest"), 64)
	latest := 0.0
	if s := p.Get("latest"); s != "" {
		latest, _ = strconv.ParseFloat(s, 64)
	}
	skip := 0
	if c := p.Get("cursor"); c != "" {
		b, err := base64.StdEncoding.DecodeString(c)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(b), "skip:"))
		if err != nil || err2 != nil || n < 0 {
			return errResp("invalid_cursor")
		}
		skip = n
	}
	var roots []*Message
	all := e.messages[chID]
	for i := len(all) - 1; i >= 0; i-- {
		m := all[i]
		if m.IsReply() || m.Deleted {
			continue
		}
		ts, _ := strconv.ParseFloat(m.TS, 64)
		if ts < oldest || (!inclusive && ts == oldest && oldest != 0) {
			continue
		}
		if latest != 0 && (ts > latest || (!inclusive && ts == latest)) {
			continue
		}
		roots = append(roots, m)
	}
	page := roots[min(skip, len(roots)):]
	more := len(page) > limit
	if more {
		page = page[:limit]
	}
	out := make([]historyMessage, 0, len(page))
	for _, m := range page {
		hm := historyMessage{wireMessage: e.wire(m), ReplyCount: m.Replies}
		if withMeta {
			hm.Metadata = m.Metadata
		}
		out = append(out, hm)
	}
	next := ""
	if more {
		next = base64.StdEncoding.EncodeToString([]byte("skip:" + strconv.Itoa(skip+limit)))
	}
	return okResp(struct {
		OK               bool             `json:"ok"`
		Messages         []historyMessage `json:"messages"`
		HasMore          bool             `json:"has_more"`
		PinCount         int              `json:"pin_count"`
		ResponseMetadata struct {
			NextCursor string `json:"next_cursor"`
		} `json:"response_metadata"`
	}{OK: true, Messages: out, HasMore: more, ResponseMetadata: struct {
		NextCursor string `json:"next_cursor"`
	}{next}})
}
