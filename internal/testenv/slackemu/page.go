package slackemu

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strings"
	"time"
)

// The page: one channel of the emulated workspace drawn in a browser the way
// Slack draws it (header, sections, fields, context, dividers, buttons with
// their confirm dialogs, thread replies, "(edited)"), kept live over
// Server-Sent Events, with buttons and a slash-command box that act as one
// workspace member through Click and SlashCommand — so a click on the page
// travels to the app exactly as a click in Slack would (Socket Mode or HTTP).
// It lets a person (or a headless browser) watch and drive a bot that talks
// to the emulator, without a Slack workspace. Nothing in it is needed by
// tests that use the emulator directly.

//go:embed web
var pageFiles embed.FS

// PanelLine is one line of the page's side panel. Tone colours it: "ok",
// "warn", "bad" or "" (neutral).
type PanelLine struct {
	Text   string `json:"text"`
	Detail string `json:"detail,omitempty"`
	Tone   string `json:"tone,omitempty"`
}

// Panel is the page's side panel: what the world outside Slack looks like
// (for the demo, the cluster), refreshed every second.
type Panel struct {
	Title string      `json:"title"`
	Lines []PanelLine `json:"lines"`
}

// PanelFunc reads the panel's content; an error is shown in the panel.
type PanelFunc func(ctx context.Context) (Panel, error)

// PageOption configures Page.
type PageOption func(*pageConfig)

type pageConfig struct {
	as      string
	channel string
	panel   PanelFunc
	title   string
}

// PageAs sets the workspace member the page acts as: clicks and slash
// commands come from this user, and their ephemeral messages are shown. The
// user must have been added with AddUser. Default: none, and the page is
// read-only (buttons answer "no acting user").
func PageAs(userID string) PageOption { return func(c *pageConfig) { c.as = userID } }

// PageChannel sets the channel shown. Default: the first channel added.
func PageChannel(id string) PageOption { return func(c *pageConfig) { c.channel = id } }

// PagePanel adds a side panel whose content f returns; the page polls it
// every second. Default: no panel.
func PagePanel(f PanelFunc) PageOption { return func(c *pageConfig) { c.panel = f } }

// PageTitle sets the browser tab's title. Default: "#channel — slackemu".
func PageTitle(t string) PageOption { return func(c *pageConfig) { c.title = t } }

// pageState is what the page renders: the channel, the acting user's
// ephemerals in it, and the names behind every user id.
type pageState struct {
	Team        StateTeam         `json:"team"`
	Channel     StateChannel      `json:"channel"`
	Channels    []pageChannelRef  `json:"channels"`
	Ephemerals  []StateEphemeral  `json:"ephemerals"`
	Users       map[string]string `json:"users"`
	As          string            `json:"as"`
	AsName      string            `json:"as_name"`
	Connections int               `json:"connections"`
	Title       string            `json:"title"`
	Panel       bool              `json:"panel"`
}

type pageChannelRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// pageClick is the page's POST /page/click body.
type pageClick struct {
	TS       string `json:"ts"`
	ActionID string `json:"action_id"`
	BlockID  string `json:"block_id"`
}

// pageCommand is the page's POST /page/command body: "/pullfix list".
type pageCommand struct {
	Text string `json:"text"`
}

// pageResult answers a click or command: ok, or Slack's words for what
// went wrong ("dispatch_failed", "operation_timeout").
type pageResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Page returns an http.Handler serving the page at "/" and its endpoints
// under "/page/" (state, events, click, command, panel). Mount it on its own
// loopback listener (it is not on the emulator's API listener, which
// speaks only Slack's protocols).
func (e *Emulator) Page(opts ...PageOption) http.Handler {
	var cfg pageConfig
	for _, o := range opts {
		o(&cfg)
	}
	web, err := fs.Sub(pageFiles, "web")
	if err != nil {
		panic(err) // the embedded directory is part of the build
	}
	p := &page{e: e, cfg: cfg}
	mux := http.NewServeMux()
	static := http.FileServerFS(web)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		static.ServeHTTP(w, r)
	})
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", static))
	mux.HandleFunc("GET /page/state", p.serveState)
	mux.HandleFunc("GET /page/events", p.serveEvents)
	mux.HandleFunc("POST /page/click", p.serveClick)
	mux.HandleFunc("POST /page/command", p.serveCommand)
	mux.HandleFunc("GET /page/panel", p.servePanel)
	return mux
}

type page struct {
	e   *Emulator
	cfg pageConfig
}

// state builds the page's view under the emulator's lock, once, so the
// channel, ephemerals and names are consistent with each other.
func (p *page) state() pageState {
	s := p.e.State()
	p.e.mu.Lock()
	users := make(map[string]string, len(p.e.users))
	for id, u := range p.e.users {
		users[id] = u.Name
	}
	p.e.mu.Unlock()

	ps := pageState{Team: s.Team, Users: users, As: p.cfg.as, AsName: users[p.cfg.as],
		Connections: s.Connections, Ephemerals: []StateEphemeral{}, Panel: p.cfg.panel != nil}
	for _, c := range s.Channels {
		ps.Channels = append(ps.Channels, pageChannelRef{ID: c.ID, Name: c.Name})
	}
	ch := p.channel()
	for _, c := range s.Channels {
		if c.ID == ch {
			ps.Channel = c
		}
	}
	if ps.Channel.Messages == nil {
		ps.Channel.Messages = []StateMessage{}
	}
	for _, m := range s.Ephemerals {
		if m.Channel == ch && m.User == p.cfg.as && !m.Deleted {
			ps.Ephemerals = append(ps.Ephemerals, m)
		}
	}
	ps.Title = p.cfg.title
	if ps.Title == "" {
		ps.Title = "#" + ps.Channel.Name + " — slackemu"
	}
	return ps
}

// channel is the configured channel, else the first one added.
func (p *page) channel() string {
	if p.cfg.channel != "" {
		return p.cfg.channel
	}
	p.e.mu.Lock()
	defer p.e.mu.Unlock()
	if len(p.e.chOrder) > 0 {
		return p.e.chOrder[0]
	}
	return ""
}

func (p *page) serveState(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, p.state(), 0)
}

// serveEvents streams the page state as Server-Sent Events: one "state"
// event now and one after every recorded change (coalesced: a burst of
// changes while a send is in flight becomes one event). It ends when the
// client goes away or the emulator closes.
func (p *page) serveEvents(w http.ResponseWriter, r *http.Request) {
	fl, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	last := ""
	for {
		p.e.mu.Lock()
		ch, closed := p.e.changed, p.e.closed
		p.e.mu.Unlock()
		if closed {
			return
		}
		body, err := json.Marshal(p.state())
		if err != nil {
			return
		}
		// Pings and acks are changes too; send only what the page shows.
		if string(body) != last {
			last = string(body)
			if _, err := fmt.Fprintf(w, "event: state\ndata: %s\n\n", body); err != nil {
				return
			}
			fl.Flush()
		}
		select {
		case <-ch:
		case <-keepalive.C:
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil {
				return
			}
			fl.Flush()
		case <-r.Context().Done():
			return
		case <-p.e.ctx.Done():
			return
		}
	}
}

// maxPageBody bounds what the page may POST.
const maxPageBody = 64 << 10

func (p *page) serveClick(w http.ResponseWriter, r *http.Request) {
	var c pageClick
	if err := json.NewDecoder(io.LimitReader(r.Body, maxPageBody)).Decode(&c); err != nil || c.TS == "" || c.ActionID == "" {
		writeJSON(w, http.StatusBadRequest, pageResult{Error: "want JSON {ts, action_id, block_id}"}, 0)
		return
	}
	if p.cfg.as == "" {
		writeJSON(w, http.StatusOK, pageResult{Error: "this page has no acting user (slackemu.PageAs)"}, 0)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.e.cfg.ackTimeout+5*time.Second)
	defer cancel()
	_, err := p.e.Click(ctx, Click{UserID: p.cfg.as, ChannelID: p.channel(), MessageTS: c.TS, ActionID: c.ActionID, BlockID: c.BlockID})
	writeJSON(w, http.StatusOK, resultOf(err), 0)
}

func (p *page) serveCommand(w http.ResponseWriter, r *http.Request) {
	var c pageCommand
	if err := json.NewDecoder(io.LimitReader(r.Body, maxPageBody)).Decode(&c); err != nil {
		writeJSON(w, http.StatusBadRequest, pageResult{Error: "want JSON {text}"}, 0)
		return
	}
	text := strings.TrimSpace(c.Text)
	if !strings.HasPrefix(text, "/") {
		writeJSON(w, http.StatusOK, pageResult{Error: "only slash commands can be sent here, e.g. /pullfix help"}, 0)
		return
	}
	if p.cfg.as == "" {
		writeJSON(w, http.StatusOK, pageResult{Error: "this page has no acting user (slackemu.PageAs)"}, 0)
		return
	}
	cmd, rest, _ := strings.Cut(text, " ")
	ctx, cancel := context.WithTimeout(r.Context(), p.e.cfg.ackTimeout+5*time.Second)
	defer cancel()
	_, err := p.e.SlashCommand(ctx, SlashCommand{Command: cmd, Text: strings.TrimSpace(rest), UserID: p.cfg.as, ChannelID: p.channel()})
	writeJSON(w, http.StatusOK, resultOf(err), 0)
}

// resultOf turns a Click / SlashCommand error into what Slack would show.
func resultOf(err error) pageResult {
	var de *DeliveryError
	switch {
	case err == nil:
		return pageResult{OK: true}
	case errors.Is(err, ErrNotConnected):
		return pageResult{Error: "dispatch_failed: the app is not connected (no Socket Mode connection yet)"}
	case errors.Is(err, ErrAckTimeout):
		return pageResult{Error: "operation_timeout: the app did not answer within 3 seconds"}
	case errors.As(err, &de):
		return pageResult{Error: fmt.Sprintf("the app answered HTTP %d", de.Status)}
	}
	return pageResult{Error: err.Error()}
}

func (p *page) servePanel(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if p.cfg.panel == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no panel"}, 0)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	panel, err := p.cfg.panel(ctx)
	if panel.Lines == nil {
		panel.Lines = []PanelLine{}
	}
	out := struct {
		Panel
		Error string `json:"error,omitempty"`
	}{Panel: panel}
	if err != nil {
		out.Error = err.Error()
	}
	writeJSON(w, http.StatusOK, out, 0)
}
