package slackemu

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"
)

// Request-signing headers Slack sends in HTTP mode.
const (
	HeaderSignature = "X-Slack-Signature"
	HeaderTimestamp = "X-Slack-Request-Timestamp"
)

// Sign returns the X-Slack-Signature value Slack computes for body sent at
// ts: "v0=" + hex(HMAC-SHA256(secret, "v0:<unix ts>:<body>")).
func Sign(secret string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("v0:" + strconv.FormatInt(ts.Unix(), 10) + ":"))
	mac.Write(body)
	return "v0=" + hex.EncodeToString(mac.Sum(nil))
}

// SignHeader sets the two signing headers on h for body sent at ts.
func SignHeader(h http.Header, secret string, ts time.Time, body []byte) {
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, Sign(secret, ts, body))
}

// Forgery selects how an HTTP-mode request is tampered with, for tests that
// check the app refuses it. It has no effect in Socket Mode.
type Forgery int

const (
	// Genuine: signed now with the configured secret.
	Genuine Forgery = iota
	// BadSignature: signed with a different secret.
	BadSignature
	// StaleTimestamp: correctly signed, but 6 minutes old (outside Slack's
	// 5-minute window).
	StaleTimestamp
	// Unsigned: no signature headers at all.
	Unsigned
	// TamperedBody: signed, then the body was changed in transit.
	TamperedBody
)

// sentRequest is an HTTP-mode request exactly as sent, kept for Replay.
type sentRequest struct {
	url    string
	body   []byte
	header http.Header
}

func (e *Emulator) signedRequest(url string, body []byte, forge Forgery) *sentRequest {
	h := http.Header{}
	h.Set("Content-Type", "application/x-www-form-urlencoded")
	h.Set("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)")
	now := time.Now()
	switch forge {
	case BadSignature:
		SignHeader(h, e.cfg.signingSecret+"-forged", now, body)
	case StaleTimestamp:
		SignHeader(h, e.cfg.signingSecret, now.Add(-6*time.Minute), body)
	case Unsigned:
	case TamperedBody:
		SignHeader(h, e.cfg.signingSecret, now, body)
		body = append(bytes.Clone(body), []byte("&tampered=1")...)
	default:
		SignHeader(h, e.cfg.signingSecret, now, body)
	}
	return &sentRequest{url: url, body: body, header: h}
}

// sendHTTP POSTs sr and waits at most the ack timeout for the answer.
func (e *Emulator) sendHTTP(ctx context.Context, sr *sentRequest, meta Ack) (Ack, error) {
	actx, cancel := context.WithTimeout(ctx, e.cfg.ackTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, sr.url, bytes.NewReader(sr.body))
	if err != nil {
		return Ack{}, err
	}
	req.Header = sr.header.Clone()
	start := time.Now()
	resp, err := e.hc.Do(req)
	if err != nil {
		if ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
			return Ack{}, ErrAckTimeout
		}
		return Ack{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return Ack{}, err
	}
	at := time.Now()
	ack := meta
	ack.Mode, ack.StatusCode, ack.Payload, ack.Latency, ack.At, ack.req = "http", resp.StatusCode, body, at.Sub(start), at, sr
	e.mu.Lock()
	e.acks = append(e.acks, ack)
	e.notifyLocked()
	e.mu.Unlock()
	if resp.StatusCode != http.StatusOK {
		return ack, &DeliveryError{Status: resp.StatusCode}
	}
	return ack, nil
}

// Replay re-sends an HTTP-mode request byte for byte (same body, timestamp
// and signature), as an attacker who captured it would. The app should
// refuse it.
func (e *Emulator) Replay(ctx context.Context, a Ack) (Ack, error) {
	if a.req == nil {
		return Ack{}, errors.New("slackemu: Replay needs an Ack from an HTTP-mode delivery")
	}
	meta := Ack{ResponseURL: a.ResponseURL, TriggerID: a.TriggerID}
	return e.sendHTTP(ctx, a.req, meta)
}
