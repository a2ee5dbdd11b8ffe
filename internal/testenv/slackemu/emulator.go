package slackemu

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Errors returned when acting as a user. They carry Slack's own words where
// Slack shows one to the person.
var (
	// ErrNotConnected: no Socket Mode connection is open and no request URL
	// is configured; Slack tells the user "dispatch_failed".
	ErrNotConnected = errors.New("slackemu: dispatch_failed: no open Socket Mode connection")
	// ErrAckTimeout: the app did not acknowledge within the ack timeout;
	// Slack shows the user "operation_timeout".
	ErrAckTimeout = errors.New("slackemu: operation_timeout: no acknowledgement within the ack timeout")
	// ErrUnknownUser, ErrUnknownChannel: the acting user or channel was never
	// added with AddUser / AddChannel.
	ErrUnknownUser    = errors.New("slackemu: unknown user")
	ErrUnknownChannel = errors.New("slackemu: unknown channel")
	// ErrNoSuchMessage, ErrNoSuchAction: Click names a message or button a
	// user could not see.
	ErrNoSuchMessage = errors.New("slackemu: no such message")
	ErrNoSuchAction  = errors.New("slackemu: no such action in message")
	// ErrClosed: the emulator was closed.
	ErrClosed = errors.New("slackemu: closed")
)

// DeliveryError is returned when the app answered an HTTP-mode request with
// a non-200 status (Slack shows the user an error).
type DeliveryError struct{ Status int }

func (e *DeliveryError) Error() string {
	return fmt.Sprintf("slackemu: app answered HTTP %d", e.Status)
}

// Emulator is a running Slack emulator. Create it with New; it is safe for
// concurrent use.
type Emulator struct {
	cfg  config
	log  *slog.Logger
	ln   net.Listener
	srv  *http.Server
	base string // http://127.0.0.1:port
	hc   *http.Client

	ctx    context.Context // cancelled by Close; stops pingers and timers
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every recorded change
	closed  bool

	users    map[string]*User
	groups   map[string]*UserGroup
	channels map[string]*Channel
	chOrder  []string

	messages   map[string][]*Message // by channel, ts order, roots and replies
	ephemerals []*Ephemeral
	calls      []Call
	envelopes  []*Envelope
	acks       []Ack
	strayAcks  int
	lastMicros int64
	seq        int
	idSeq      int64

	buckets map[string]*bucket
	updates []time.Time // accepted chat.update calls in the current window, oldest first
	faults  map[string][]Fault

	tickets     map[string]bool // issued, unused websocket tickets
	conns       map[int]*sconn
	connLog     []ConnInfo
	nextConnID  int
	rr          int
	pending     map[string]chan ackFrame
	respURLs    map[string]*responseURL
	nextRespURL int64

	received []Received // received.go
	holds    []*Hold
}

// New starts an emulator on 127.0.0.1 (random port). Call Close when done.
func New(opts ...Option) (*Emulator, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("slackemu: listen: %w", err)
	}
	hc := cfg.httpClient
	if hc == nil {
		hc = &http.Client{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Emulator{
		cfg:         cfg,
		log:         cfg.logger.With("component", "slackemu"),
		ln:          ln,
		base:        "http://" + ln.Addr().String(),
		hc:          hc,
		ctx:         ctx,
		cancel:      cancel,
		changed:     make(chan struct{}),
		users:       map[string]*User{},
		groups:      map[string]*UserGroup{},
		channels:    map[string]*Channel{},
		messages:    map[string][]*Message{},
		buckets:     map[string]*bucket{},
		faults:      map[string][]Fault{},
		tickets:     map[string]bool{},
		conns:       map[int]*sconn{},
		pending:     map[string]chan ackFrame{},
		respURLs:    map[string]*responseURL{},
		nextRespURL: 1000000000001,
	}
	e.users[cfg.botUserID] = &User{ID: cfg.botUserID, Name: cfg.botName, IsBot: true}

	mux := http.NewServeMux()
	mux.HandleFunc("/api/", e.serveAPI)
	mux.HandleFunc("GET /link/", e.serveSocket)
	mux.HandleFunc("POST /commands/", e.serveResponseURL)
	mux.HandleFunc("POST /actions/", e.serveResponseURL)
	mux.HandleFunc("GET /emu/state", e.serveState)
	e.srv = &http.Server{Handler: e.recordBodies(mux), ReadHeaderTimeout: 10 * time.Second}
	e.wg.Go(func() {
		if err := e.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			e.log.Error("serve", "err", err)
		}
	})
	e.log.Info("started", "addr", ln.Addr().String())
	return e, nil
}

// Close stops the server and drops every websocket connection.
func (e *Emulator) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	conns := make([]*sconn, 0, len(e.conns))
	for _, c := range e.conns {
		conns = append(conns, c)
	}
	e.notifyLocked()
	e.mu.Unlock()

	e.cancel()
	for _, c := range conns {
		c.drop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := e.srv.Shutdown(ctx)
	e.wg.Wait()
	return err
}

// URL is the emulator's base URL, e.g. "http://127.0.0.1:41234".
func (e *Emulator) URL() string { return e.base }

// APIURL is the Web API base for slack.OptionAPIURL; like Slack's
// "https://slack.com/api/" it ends with a slash.
func (e *Emulator) APIURL() string { return e.base + "/api/" }

// StateURL is the JSON view of the workspace (GET).
func (e *Emulator) StateURL() string { return e.base + "/emu/state" }

// BotToken, AppToken and SigningSecret return the configured credentials so
// tests can build clients; the emulator never logs them.
func (e *Emulator) BotToken() string      { return e.cfg.botToken }
func (e *Emulator) AppToken() string      { return e.cfg.appToken }
func (e *Emulator) SigningSecret() string { return e.cfg.signingSecret }

// TeamID, AppID and BotUserID return the configured identities.
func (e *Emulator) TeamID() string    { return e.cfg.teamID }
func (e *Emulator) AppID() string     { return e.cfg.appID }
func (e *Emulator) BotUserID() string { return e.cfg.botUserID }

// notifyLocked wakes every WaitFor. Callers hold e.mu.
func (e *Emulator) notifyLocked() {
	close(e.changed)
	e.changed = make(chan struct{})
}

// WaitFor blocks until pred returns true, re-evaluating it after every
// recorded change (call, message, ack, connection). pred runs without the
// emulator's lock held, so it may call any query method.
func (e *Emulator) WaitFor(ctx context.Context, pred func() bool) error {
	for {
		e.mu.Lock()
		ch, closed := e.changed, e.closed
		e.mu.Unlock()
		if pred() {
			return nil
		}
		if closed {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("slackemu: WaitFor: %w", ctx.Err())
		}
	}
}

// nextTSLocked returns a Slack-style "seconds.micros" timestamp, strictly
// increasing across the whole workspace (so also per channel).
func (e *Emulator) nextTSLocked() string {
	now := time.Now().UnixMicro()
	if now <= e.lastMicros {
		now = e.lastMicros + 1
	}
	e.lastMicros = now
	return fmt.Sprintf("%d.%06d", now/1_000_000, now%1_000_000)
}

// randomHex returns n random bytes hex-encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newUUID returns a random RFC 4122 v4 id, the shape of Slack's envelope ids.
func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
