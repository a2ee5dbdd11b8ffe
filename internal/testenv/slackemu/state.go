package slackemu

import (
	"encoding/json"
	"net/http"
	"slices"
)

// State is the read-only view served at GET /emu/state. Its JSON field
// names are stable: a demo page renders it.
type State struct {
	Team        StateTeam        `json:"team"`
	Channels    []StateChannel   `json:"channels"`
	Ephemerals  []StateEphemeral `json:"ephemerals"`
	Connections int              `json:"connections"`  // open Socket Mode connections
	RateLimited int              `json:"rate_limited"` // calls answered 429
}

// StateTeam identifies the workspace and the bot.
type StateTeam struct {
	ID        string `json:"id"`
	Domain    string `json:"domain"`
	BotUserID string `json:"bot_user_id"`
	BotName   string `json:"bot_name"`
}

// StateChannel is a channel and its messages (roots and replies, in ts
// order; a reply has thread_ts != ts).
type StateChannel struct {
	ID       string         `json:"id"`
	Name     string         `json:"name"`
	Messages []StateMessage `json:"messages"`
}

// StateMessage is one message with its current blocks.
type StateMessage struct {
	TS       string          `json:"ts"`
	ThreadTS string          `json:"thread_ts,omitempty"`
	User     string          `json:"user"`
	Text     string          `json:"text"`
	Blocks   json.RawMessage `json:"blocks,omitempty"`
	Edits    int             `json:"edits"`
	Replies  int             `json:"replies"`
	Deleted  bool            `json:"deleted,omitempty"`
}

// StateEphemeral is a message shown to one user.
type StateEphemeral struct {
	Channel string          `json:"channel"`
	User    string          `json:"user"`
	TS      string          `json:"ts"`
	Text    string          `json:"text"`
	Blocks  json.RawMessage `json:"blocks,omitempty"`
	Deleted bool            `json:"deleted,omitempty"`
}

// State returns the current view of the workspace.
func (e *Emulator) State() State {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := State{
		Team:        StateTeam{ID: e.cfg.teamID, Domain: e.cfg.teamDomain, BotUserID: e.cfg.botUserID, BotName: e.cfg.botName},
		Channels:    []StateChannel{},
		Ephemerals:  []StateEphemeral{},
		Connections: len(e.conns),
	}
	for _, c := range e.calls {
		if c.Status == http.StatusTooManyRequests {
			s.RateLimited++
		}
	}
	for _, id := range slices.Sorted(slices.Values(e.chOrder)) {
		ch := e.channels[id]
		sc := StateChannel{ID: ch.ID, Name: ch.Name, Messages: []StateMessage{}}
		for _, m := range e.messages[id] {
			sc.Messages = append(sc.Messages, StateMessage{TS: m.TS, ThreadTS: m.ThreadTS, User: m.User,
				Text: m.Text, Blocks: m.Blocks, Edits: len(m.Edits), Replies: m.Replies, Deleted: m.Deleted})
		}
		s.Channels = append(s.Channels, sc)
	}
	for _, m := range e.ephemerals {
		s.Ephemerals = append(s.Ephemerals, StateEphemeral{Channel: m.Channel, User: m.User, TS: m.TS,
			Text: m.Text, Blocks: m.Blocks, Deleted: m.Deleted})
	}
	return s
}

func (e *Emulator) serveState(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, e.State(), 0)
}
