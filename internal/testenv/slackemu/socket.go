package slackemu

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// maxSocketFrame is Slack's inbound frame limit: a larger ack closes the
// socket with 1009 (facts/slack.md §4).
const maxSocketFrame = 20480

var upgrader = websocket.Upgrader{
	ReadBufferSize:  4096,
	WriteBufferSize: 32 * 1024,
	// slack-go sends Origin https://api.slack.com; Slack does not check it.
	CheckOrigin: func(*http.Request) bool { return true },
}

// sconn is one Socket Mode websocket. Data frames are written under wmu;
// control frames (pings, close) may be written concurrently, as gorilla
// allows.
type sconn struct {
	id       int
	ws       *websocket.Conn
	wmu      sync.Mutex
	done     chan struct{}
	once     sync.Once
	draining bool // guarded by Emulator.mu
}

func (c *sconn) write(frame []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteMessage(websocket.TextMessage, frame)
}

// drop closes the TCP connection without a close frame: a hard drop.
func (c *sconn) drop() {
	c.once.Do(func() {
		close(c.done)
		_ = c.ws.NetConn().Close()
	})
}

type debugInfo struct {
	Host                      string `json:"host"`
	BuildNumber               int    `json:"build_number,omitempty"`
	ApproximateConnectionTime int    `json:"approximate_connection_time,omitempty"`
}

type connectionInfo struct {
	AppID string `json:"app_id"`
}

// helloFrame and disconnectFrame follow the fixtures in
// data/slack-payloads/socket-mode.
type helloFrame struct {
	Type           string         `json:"type"`
	NumConnections int            `json:"num_connections"`
	DebugInfo      debugInfo      `json:"debug_info"`
	ConnectionInfo connectionInfo `json:"connection_info"`
}

type disconnectFrame struct {
	Type      string    `json:"type"`
	Reason    string    `json:"reason"`
	DebugInfo debugInfo `json:"debug_info"`
}

type envelopeFrame struct {
	EnvelopeID             string          `json:"envelope_id"`
	Payload                json.RawMessage `json:"payload"`
	Type                   string          `json:"type"`
	AcceptsResponsePayload bool            `json:"accepts_response_payload"`
	RetryAttempt           *int            `json:"retry_attempt,omitempty"`
	RetryReason            *string         `json:"retry_reason,omitempty"`
}

type ackFrame struct {
	connID  int
	payload json.RawMessage
	at      time.Time
}

func (e *Emulator) host(id int) string { return fmt.Sprintf("applink-emulator-%d", id) }

// serveSocket accepts a websocket whose single-use ticket came from
// apps.connections.open, says hello, pings, and reads acks until the
// connection ends.
func (e *Emulator) serveSocket(w http.ResponseWriter, r *http.Request) {
	ticket := r.URL.Query().Get("ticket")
	e.mu.Lock()
	valid := e.tickets[ticket] && !e.closed
	delete(e.tickets, ticket)
	e.mu.Unlock()
	if !valid {
		http.Error(w, "invalid or used ticket", http.StatusUnauthorized)
		return
	}
	ws, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		e.log.Warn("websocket upgrade", "err", err)
		return
	}
	ws.SetReadLimit(maxSocketFrame)

	// Register and say hello while holding the connection's write lock: a
	// concurrent delivery to it waits until hello is on the wire, and a client
	// that has read hello can be delivered to.
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		_ = ws.NetConn().Close()
		return
	}
	e.nextConnID++
	c := &sconn{id: e.nextConnID, ws: ws, done: make(chan struct{})}
	n := 1
	for _, o := range e.conns {
		if !o.draining {
			n++
		}
	}
	c.wmu.Lock()
	e.conns[c.id] = c
	e.connLog = append(e.connLog, ConnInfo{ID: c.id, OpenedAt: time.Now(), RemoteAddr: r.RemoteAddr})
	e.notifyLocked()
	e.mu.Unlock()

	hello, _ := json.Marshal(helloFrame{Type: "hello", NumConnections: n,
		DebugInfo:      debugInfo{Host: e.host(c.id), BuildNumber: 1, ApproximateConnectionTime: 18060},
		ConnectionInfo: connectionInfo{AppID: e.cfg.appID}})
	_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	err = ws.WriteMessage(websocket.TextMessage, hello)
	c.wmu.Unlock()
	if err == nil {
		e.log.Info("socket connected", "conn", c.id)
		go e.pinger(c) // ends with the connection or the emulator
		e.readAcks(c)
	}

	c.drop()
	e.mu.Lock()
	delete(e.conns, c.id)
	for i := range e.connLog {
		if e.connLog[i].ID == c.id {
			e.connLog[i].ClosedAt = time.Now()
		}
	}
	e.notifyLocked()
	e.mu.Unlock()
	e.log.Info("socket closed", "conn", c.id)
}

// pinger sends WebSocket PINGs; slack-go treats their absence as a dead
// connection.
func (e *Emulator) pinger(c *sconn) {
	if e.cfg.pingInterval <= 0 {
		return
	}
	t := time.NewTicker(e.cfg.pingInterval)
	defer t.Stop()
	for n := 0; ; n++ {
		if err := c.ws.WriteControl(websocket.PingMessage, fmt.Appendf(nil, "ping-%d", n), time.Now().Add(5*time.Second)); err != nil {
			return
		}
		select {
		case <-t.C:
		case <-c.done:
			return
		case <-e.ctx.Done():
			return
		}
	}
}

func (e *Emulator) readAcks(c *sconn) {
	for {
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		e.recordReceived("socket", data)
		at := time.Now()
		var a struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if json.Unmarshal(data, &a) != nil || a.EnvelopeID == "" {
			e.mu.Lock()
			e.strayAcks++
			e.notifyLocked()
			e.mu.Unlock()
			continue
		}
		e.mu.Lock()
		ch, ok := e.pending[a.EnvelopeID]
		delete(e.pending, a.EnvelopeID)
		if !ok {
			e.strayAcks++
			e.notifyLocked()
		}
		e.mu.Unlock()
		if ok {
			ch <- ackFrame{connID: c.id, payload: a.Payload, at: at}
		}
	}
}

// pickConnLocked chooses one open, non-draining connection, round-robin
// (Slack hands each envelope to one of the app's connections).
func (e *Emulator) pickConnLocked() *sconn {
	ids := make([]int, 0, len(e.conns))
	for id, c := range e.conns {
		if !c.draining {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	e.rr++
	return e.conns[ids[e.rr%len(ids)]]
}

// deliverSocket sends one envelope to one connection and waits for its ack.
func (e *Emulator) deliverSocket(ctx context.Context, typ string, payload []byte, accepts bool, meta Ack) (Ack, error) {
	env := envelopeFrame{EnvelopeID: newUUID(), Payload: payload, Type: typ, AcceptsResponsePayload: accepts}
	if typ == "events_api" {
		zero, empty := 0, ""
		env.RetryAttempt, env.RetryReason = &zero, &empty
	}
	frame, err := json.Marshal(env)
	if err != nil {
		return Ack{}, err
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return Ack{}, ErrClosed
	}
	c := e.pickConnLocked()
	if c == nil {
		e.mu.Unlock()
		return Ack{}, ErrNotConnected
	}
	ch := make(chan ackFrame, 1)
	e.pending[env.EnvelopeID] = ch
	rec := &Envelope{ID: env.EnvelopeID, Type: typ, ConnID: c.id, Frame: frame, SentAt: time.Now()}
	e.envelopes = append(e.envelopes, rec)
	for i := range e.connLog {
		if e.connLog[i].ID == c.id {
			e.connLog[i].Envelopes++
		}
	}
	e.notifyLocked()
	e.mu.Unlock()

	sent := time.Now()
	if err := c.write(frame); err != nil {
		// Slack does not know the write failed until the ack is missing.
		e.log.Warn("envelope write failed", "conn", c.id, "err", err)
	}
	timer := time.NewTimer(e.cfg.ackTimeout)
	defer timer.Stop()
	fail := func(err error, timedOut bool) (Ack, error) {
		e.mu.Lock()
		delete(e.pending, env.EnvelopeID)
		rec.TimedOut = timedOut
		e.notifyLocked()
		e.mu.Unlock()
		return Ack{}, err
	}
	select {
	case a := <-ch:
		ack := meta
		ack.Mode, ack.EnvelopeID, ack.ConnID = "socket", env.EnvelopeID, a.connID
		ack.Payload, ack.Latency, ack.At = a.payload, a.at.Sub(sent), a.at
		e.mu.Lock()
		rec.Acked = true
		e.acks = append(e.acks, ack)
		e.notifyLocked()
		e.mu.Unlock()
		return ack, nil
	case <-timer.C:
		return fail(ErrAckTimeout, true)
	case <-ctx.Done():
		return fail(ctx.Err(), false)
	case <-e.ctx.Done():
		return fail(ErrClosed, false)
	}
}

// Disconnect sends a `disconnect` message with reason ("refresh_requested",
// "warning", "too_many_websockets", …) to every open connection, stops
// delivering to them, and closes them after the disconnect grace period.
// It returns how many connections were told.
func (e *Emulator) Disconnect(reason string) int {
	e.mu.Lock()
	var targets []*sconn
	for _, c := range e.conns {
		if !c.draining {
			c.draining = true
			targets = append(targets, c)
			for i := range e.connLog {
				if e.connLog[i].ID == c.id {
					e.connLog[i].Draining = true
				}
			}
		}
	}
	e.notifyLocked()
	e.mu.Unlock()
	for _, c := range targets {
		frame, _ := json.Marshal(disconnectFrame{Type: "disconnect", Reason: reason, DebugInfo: debugInfo{Host: e.host(c.id)}})
		_ = c.write(frame)
		go func() { // ends with the timer, the connection or the emulator
			t := time.NewTimer(e.cfg.disconnectGrace)
			defer t.Stop()
			select {
			case <-t.C:
				c.drop()
			case <-c.done:
			case <-e.ctx.Done():
			}
		}()
	}
	return len(targets)
}

// DropConnections closes every websocket at the TCP level, without a close
// frame or disconnect message, as a network failure would. It returns how
// many were dropped.
func (e *Emulator) DropConnections() int {
	e.mu.Lock()
	targets := make([]*sconn, 0, len(e.conns))
	for _, c := range e.conns {
		targets = append(targets, c)
	}
	e.mu.Unlock()
	for _, c := range targets {
		c.drop()
	}
	return len(targets)
}
