package slackemu

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"
)

// Received is one request body (or Socket Mode frame) the emulator got
// from the app: what a test searches when nothing secret may leave the
// bot (TestCanaryCredentialsNeverLeave).
type Received struct {
	// Path is the request path ("/api/chat.postMessage", "/actions/…"),
	// or "socket" for a frame the app wrote on its Socket Mode connection.
	Path string
	Body []byte
	At   time.Time
}

// Received returns every request body and Socket Mode frame received,
// oldest first, byte for byte (the Web API's token parameter included:
// the caller decides what counts as the credential's own use).
func (e *Emulator) Received() []Received {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.received)
}

func (e *Emulator) recordReceived(path string, body []byte) {
	e.mu.Lock()
	e.received = append(e.received, Received{Path: path, Body: bytes.Clone(body), At: time.Now()})
	e.mu.Unlock()
}

// recordBodies records each request's body before the handler reads it.
func (e *Emulator) recordBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Method != http.MethodGet {
			body, err := io.ReadAll(io.LimitReader(r.Body, 10<<20))
			if err == nil {
				e.recordReceived(r.URL.Path, body)
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Hold stops one Web API call of the app in the middle, so a test can kill
// the app exactly there: before the emulator handles it (Slack never got
// it) or after (Slack did it; the app never hears back). Create it with
// HoldCall; it holds the first matching call only.
type Hold struct {
	method  string
	after   bool
	match   func(url.Values) bool
	reached chan struct{}
	release chan struct{}
	once    sync.Once
	taken   bool
}

// Reached is closed when a matching call is being held.
func (h *Hold) Reached() <-chan struct{} { return h.reached }

// Release lets the held call go on (a no-op if the app is gone).
func (h *Hold) Release() { h.once.Do(func() { close(h.release) }) }

// HoldCall holds the next call of method whose parameters match (nil
// matches any): before it is handled, or — with after — once it has been
// handled and before the answer is written. A held call whose client goes
// away (the app was killed) ends there: before, it is never handled.
func (e *Emulator) HoldCall(method string, after bool, match func(url.Values) bool) *Hold {
	h := &Hold{method: method, after: after, match: match, reached: make(chan struct{}), release: make(chan struct{})}
	e.mu.Lock()
	e.holds = append(e.holds, h)
	e.mu.Unlock()
	return h
}

// takeHold returns the armed hold for this call, if any, disarming it.
func (e *Emulator) takeHold(method string, after bool, params url.Values) *Hold {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, h := range e.holds {
		if !h.taken && h.method == method && h.after == after && (h.match == nil || h.match(params)) {
			h.taken = true
			return h
		}
	}
	return nil
}

// wait holds the call until released or its client is gone; it reports
// whether the call should go on.
func (h *Hold) wait(ctx context.Context) bool {
	close(h.reached)
	select {
	case <-h.release:
		return true
	case <-ctx.Done():
		return false
	}
}
