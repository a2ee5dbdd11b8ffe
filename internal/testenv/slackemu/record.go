package slackemu

import (
	"encoding/json"
	"net/url"
	"slices"
	"time"
)

// Call is one recorded Web API (or response_url) request and its outcome.
type Call struct {
	Seq        int
	Method     string     // "chat.postMessage", …; "response_url" for response_url posts
	Params     url.Values // request parameters, token removed; non-string JSON values as JSON text
	Blocks     json.RawMessage
	Status     int    // HTTP status answered
	Error      string // Slack error code, "" when ok
	RetryAfter time.Duration
	At         time.Time
}

// OK reports whether Slack would have answered ok:true.
func (c Call) OK() bool { return c.Status == 200 && c.Error == "" }

// Revision is an earlier version of an edited message.
type Revision struct {
	Text   string
	Blocks json.RawMessage
	At     time.Time
}

// Message is a channel message (root or thread reply) as Slack stores it.
type Message struct {
	Channel  string
	TS       string
	ThreadTS string // "" for a root message that has no replies; parent ts for replies
	User     string
	BotID    string
	AppID    string
	Text     string
	Blocks   json.RawMessage // as stored: block_ids filled in where the sender left them out
	Source   string          // "chat.postMessage", "response_url", "ack"
	PostedAt time.Time
	EditedAt time.Time
	Edits    []Revision // earlier versions, oldest first
	Deleted  bool
	Replies  int // for roots: number of thread replies
	// Metadata is the message metadata the app attached
	// ({"event_type":…,"event_payload":…}), nil when none.
	Metadata json.RawMessage
}

// IsReply reports whether m was posted into another message's thread.
func (m Message) IsReply() bool { return m.ThreadTS != "" && m.ThreadTS != m.TS }

// Ephemeral is a message only one user sees.
type Ephemeral struct {
	Channel  string
	User     string
	TS       string
	ThreadTS string
	Text     string
	Blocks   json.RawMessage
	Source   string // "chat.postEphemeral", "response_url", "ack", "http_response"
	At       time.Time
	Edits    []Revision
	Deleted  bool
}

// Envelope is one Socket Mode envelope the emulator sent.
type Envelope struct {
	ID       string
	Type     string // slash_commands, interactive, events_api
	ConnID   int
	Frame    json.RawMessage // the exact frame written
	SentAt   time.Time
	Acked    bool
	TimedOut bool
}

// Ack is an app's acknowledgement of a slash command, interaction or event.
type Ack struct {
	Mode        string          // "socket" or "http"
	EnvelopeID  string          // Socket Mode
	ConnID      int             // connection the ack arrived on
	Payload     json.RawMessage // Socket Mode ack payload, or the HTTP response body
	StatusCode  int             // HTTP mode
	Latency     time.Duration
	ResponseURL string // the response_url sent with the request
	TriggerID   string
	At          time.Time

	req *sentRequest // HTTP mode: exact request, for Replay
}

// ConnInfo describes one Socket Mode connection, open or closed.
type ConnInfo struct {
	ID         int
	OpenedAt   time.Time
	ClosedAt   time.Time // zero while open
	Draining   bool      // sent a disconnect message
	Envelopes  int
	RemoteAddr string
}

func (e *Emulator) recordLocked(c Call) {
	e.seq++
	c.Seq = e.seq
	if c.At.IsZero() {
		c.At = time.Now()
	}
	e.calls = append(e.calls, c)
	e.notifyLocked()
}

// Calls returns the recorded calls of method, oldest first; "" returns all.
func (e *Emulator) Calls(method string) []Call {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Call
	for _, c := range e.calls {
		if method == "" || c.Method == method {
			out = append(out, c)
		}
	}
	return out
}

// RateLimited counts calls answered with HTTP 429.
func (e *Emulator) RateLimited() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.calls {
		if c.Status == 429 {
			n++
		}
	}
	return n
}

func copyMessage(m *Message) Message {
	c := *m
	c.Edits = slices.Clone(m.Edits)
	return c
}

// Messages returns the channel's root messages (not thread replies), oldest
// first, like conversations.history. Deleted messages are left out.
func (e *Emulator) Messages(channel string) []Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Message
	for _, m := range e.messages[channel] {
		if !m.IsReply() && !m.Deleted {
			out = append(out, copyMessage(m))
		}
	}
	return out
}

// Thread returns the parent message followed by its replies, oldest first,
// like conversations.replies.
func (e *Emulator) Thread(channel, ts string) []Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Message
	for _, m := range e.messages[channel] {
		if !m.Deleted && (m.TS == ts || m.ThreadTS == ts) {
			out = append(out, copyMessage(m))
		}
	}
	return out
}

// Message returns one message (root or reply) by channel and ts.
func (e *Emulator) Message(channel, ts string) (Message, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if m := e.findMessageLocked(channel, ts); m != nil {
		return copyMessage(m), true
	}
	return Message{}, false
}

func (e *Emulator) findMessageLocked(channel, ts string) *Message {
	for _, m := range e.messages[channel] {
		if m.TS == ts {
			return m
		}
	}
	return nil
}

// Ephemerals returns the ephemeral messages shown to user, oldest first.
func (e *Emulator) Ephemerals(user string) []Ephemeral {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Ephemeral
	for _, m := range e.ephemerals {
		if m.User == user && !m.Deleted {
			c := *m
			c.Edits = slices.Clone(m.Edits)
			out = append(out, c)
		}
	}
	return out
}

// Envelopes returns every Socket Mode envelope sent, oldest first.
func (e *Emulator) Envelopes() []Envelope {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]Envelope, 0, len(e.envelopes))
	for _, env := range e.envelopes {
		out = append(out, *env)
	}
	return out
}

// Acks returns every acknowledgement received (Socket Mode and HTTP),
// oldest first.
func (e *Emulator) Acks() []Ack {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.acks)
}

// StrayAcks counts acks whose envelope_id the emulator never sent or had
// already seen acknowledged.
func (e *Emulator) StrayAcks() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.strayAcks
}

// Connections returns every Socket Mode connection ever opened, oldest first.
func (e *Emulator) Connections() []ConnInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.connLog)
}

// OpenConnections counts connections that are open and not draining, i.e.
// those an envelope can be delivered to.
func (e *Emulator) OpenConnections() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.conns {
		if !c.draining {
			n++
		}
	}
	return n
}
