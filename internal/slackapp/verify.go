package slackapp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Signature verification errors; all of them mean "not from Slack" and are
// answered 401 with no effect.
var (
	ErrMissingSignature = errors.New("slackapp: request not signed (X-Slack-Signature / X-Slack-Request-Timestamp missing)")
	ErrBadSignature     = errors.New("slackapp: request signature does not match")
	ErrStaleTimestamp   = errors.New("slackapp: request timestamp outside the 5-minute window")
	ErrReplayed         = errors.New("slackapp: request already seen (replay)")
)

// Signing headers (facts/slack.md §3).
const (
	headerSignature = "X-Slack-Signature"
	headerTimestamp = "X-Slack-Request-Timestamp"
)

// Defaults of the verifier.
const (
	// DefaultSignatureWindow is Slack's documented tolerance: refuse requests
	// whose timestamp is more than 5 minutes from now, either way.
	DefaultSignatureWindow = 5 * time.Minute
	// DefaultReplayMemory bounds how many recent signatures are remembered.
	DefaultReplayMemory = 10000
)

// Verifier checks Slack's v0 request signature
// ("v0=" + hex(HMAC-SHA256(secret, "v0:" + ts + ":" + body))) in constant
// time, refuses timestamps outside the window, and refuses a request whose
// signature it has already accepted within the window.
//
// slack-go's SecretsVerifier does the first two but not the third: a
// captured request could be replayed for five minutes. Memory is bounded:
// when more than max signatures are remembered, the oldest are forgotten and
// the verifier raises a floor — any request with a timestamp at or below the
// newest forgotten one is refused — so a forgotten signature can never be
// replayed. (Only correctly signed requests are remembered, so nobody without
// the secret can fill the memory.)
type Verifier struct {
	secret []byte
	window time.Duration
	max    int
	now    func() time.Time

	mu    sync.Mutex
	seen  map[string]int64 // signature → timestamp
	order []seenSig        // insertion order, for eviction
	floor int64            // requests with ts <= floor are refused
}

type seenSig struct {
	sig string
	ts  int64
}

// NewVerifier returns a verifier for the app's signing secret.
func NewVerifier(secret string) *Verifier {
	return &Verifier{secret: []byte(secret), window: DefaultSignatureWindow, max: DefaultReplayMemory,
		now: time.Now, seen: map[string]int64{}}
}

// Verify checks the signing headers against the raw body and remembers the
// signature. It returns nil or one of the errors above (wrapped).
func (v *Verifier) Verify(h http.Header, body []byte) error {
	sigHdr, tsHdr := h.Get(headerSignature), h.Get(headerTimestamp)
	if sigHdr == "" || tsHdr == "" || len(v.secret) == 0 {
		return ErrMissingSignature
	}
	ts, err := strconv.ParseInt(tsHdr, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %.20q is not a number", ErrStaleTimestamp, tsHdr)
	}
	now := v.now()
	if d := now.Sub(time.Unix(ts, 0)); d > v.window || d < -v.window {
		return fmt.Errorf("%w (off by %s)", ErrStaleTimestamp, d.Round(time.Second))
	}
	got, ok := strings.CutPrefix(sigHdr, "v0=")
	if !ok {
		return ErrBadSignature
	}
	gotMAC, err := hex.DecodeString(got)
	if err != nil || len(gotMAC) != sha256.Size {
		return ErrBadSignature
	}
	mac := hmac.New(sha256.New, v.secret)
	mac.Write([]byte("v0:" + tsHdr + ":"))
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil), gotMAC) {
		return ErrBadSignature
	}

	v.mu.Lock()
	defer v.mu.Unlock()
	v.forgetLocked(now)
	key := hex.EncodeToString(gotMAC)
	if _, dup := v.seen[key]; dup || ts <= v.floor {
		return ErrReplayed
	}
	v.seen[key] = ts
	v.order = append(v.order, seenSig{key, ts})
	for len(v.order) > v.max {
		old := v.order[0]
		v.order = v.order[1:]
		delete(v.seen, old.sig)
		v.floor = max(v.floor, old.ts)
	}
	return nil
}

// forgetLocked drops signatures whose timestamps left the window: a replay
// of them fails the timestamp check anyway.
func (v *Verifier) forgetLocked(now time.Time) {
	cut := now.Add(-v.window).Unix()
	i := 0
	for i < len(v.order) && v.order[i].ts < cut {
		delete(v.seen, v.order[i].sig)
		i++
	}
	if i > 0 {
		v.order = append([]seenSig(nil), v.order[i:]...)
	}
}
