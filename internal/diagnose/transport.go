package diagnose

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// newBaseTransport clones base and bounds every phase of a request by
// timeout. go-containerregistry's DefaultTransport has no response-header
// timeout: a server that accepts and never answers would hang a probe with
// a background context forever (facts §1.4).
func newBaseTransport(base http.RoundTripper, timeout time.Duration) http.RoundTripper {
	if base == nil {
		base = remote.DefaultTransport
	}
	t, ok := base.(*http.Transport)
	if !ok {
		// Not ours to reconfigure; the per-probe context deadline still
		// bounds it.
		return base
	}
	t = t.Clone()
	if dial := t.DialContext; dial != nil {
		// Keep the caller's dialer (it may use a private resolver) and
		// only bound it.
		t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			return dial(ctx, network, addr)
		}
	} else {
		t.DialContext = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
	}
	t.TLSHandshakeTimeout = timeout
	t.ResponseHeaderTimeout = timeout
	t.ExpectContinueTimeout = time.Second
	return t
}

// observingTransport records every request in the probe's trace (found in
// the request context), reports it to the observer, and answers repeated
// pings from a short-lived cache.
//
// The ping cache is what keeps the probe frugal: go-containerregistry sends
// GET /v2/ before the first request of every repository, and its answer
// (200, or 401 with the auth challenge) is a property of the registry, not
// of the image. Only those two answers, and the deterministic "this host
// speaks plain HTTP" failure of an HTTPS attempt, are cached; network
// errors are not, so an outage is always observed afresh.
type observingTransport struct {
	inner    http.RoundTripper
	observer func(RequestInfo)
	logger   *slog.Logger
	pingTTL  time.Duration

	mu    sync.Mutex
	pings map[string]pingEntry // scheme://host
}

type pingEntry struct {
	status  int
	header  http.Header
	err     error
	expires time.Time
}

func (t *observingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	tr := traceFrom(req.Context())
	isPing := req.Method == http.MethodGet && req.URL.Path == "/v2/"
	key := req.URL.Scheme + "://" + req.URL.Host
	if isPing && t.pingTTL > 0 {
		if resp, err, ok := t.cachedPing(key, req); ok {
			// Not a request: it is neither traced nor observed.
			return resp, err
		}
	}

	start := time.Now()
	resp, err := t.inner.RoundTrip(req)
	elapsed := time.Since(start)

	info := RequestInfo{Method: req.Method, Host: req.URL.Host, Path: req.URL.Path, Err: err, Duration: elapsed}
	step := ProbeStep{Request: stepName(req), Duration: elapsed}
	var meta responseMeta
	if err != nil {
		step.Result = "error: " + err.Error()
		if isPing && t.pingTTL > 0 && req.URL.Scheme == "https" && notTLS(err) {
			t.storePing(key, pingEntry{err: err})
		}
	} else {
		info.Status = resp.StatusCode
		meta.status = resp.StatusCode
		meta.retryAfter = resp.Header.Get("Retry-After")
		meta.path = req.URL.Path
		step.Result = fmt.Sprintf("%d", resp.StatusCode)
		if resp.StatusCode >= 400 && req.Method != http.MethodHead {
			codes := peekCodes(resp)
			if codes != "" {
				step.Result += " " + codes
			}
		} else if d := resp.Header.Get("Docker-Content-Digest"); d != "" && resp.StatusCode < 300 {
			step.Result += " " + d
		}
		if isPing && t.pingTTL > 0 && (resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized) {
			t.storePing(key, pingEntry{status: resp.StatusCode, header: resp.Header.Clone()})
		}
	}
	if tr != nil {
		tr.add(step, &meta)
	}
	if t.observer != nil {
		t.observer(info)
	}
	t.logger.LogAttrs(req.Context(), slog.LevelDebug, "registry request",
		slog.String("request", step.Request), slog.String("result", step.Result), slog.Duration("elapsed", elapsed))
	return resp, err
}

// notTLS recognises an HTTPS attempt answered by a plain-HTTP server: a
// property of the server, so worth remembering (go-containerregistry tries
// HTTPS first even for registries it may reach over HTTP).
func notTLS(err error) bool {
	var rh tls.RecordHeaderError
	return errors.Is(err, http.ErrSchemeMismatch) || errors.As(err, &rh)
}

func (t *observingTransport) cachedPing(key string, req *http.Request) (*http.Response, error, bool) {
	t.mu.Lock()
	e, ok := t.pings[key]
	t.mu.Unlock()
	if !ok || time.Now().After(e.expires) {
		return nil, nil, false
	}
	if e.err != nil {
		return nil, e.err, true
	}
	return &http.Response{
		Status:     http.StatusText(e.status),
		StatusCode: e.status,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  e.header.Clone(),
		Body:    http.NoBody,
		Request: req,
	}, nil, true
}

func (t *observingTransport) storePing(key string, e pingEntry) {
	e.expires = time.Now().Add(t.pingTTL)
	t.mu.Lock()
	if t.pings == nil {
		t.pings = map[string]pingEntry{}
	}
	t.pings[key] = e
	t.mu.Unlock()
}

// stepName renders "GET host/v2/repo/manifests/tag" without query secrets
// (token requests carry only scope and service in the query).
func stepName(req *http.Request) string {
	s := req.Method + " " + req.URL.Host + req.URL.Path
	if q := req.URL.Query(); q.Has("scope") {
		s += "?scope=" + strings.Join(q["scope"], " ")
	}
	return s
}

// peekCodes reads a small error body, restores it for go-containerregistry
// and returns its registry error codes ("NAME_UNKNOWN").
func peekCodes(resp *http.Response) string {
	const limit = 64 << 10
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	rest := resp.Body
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(b), rest), rest}
	if err != nil {
		return ""
	}
	var body struct {
		Errors []struct {
			Code string `json:"code"`
		} `json:"errors"`
	}
	if json.Unmarshal(b, &body) != nil {
		return ""
	}
	codes := make([]string, 0, len(body.Errors))
	for _, e := range body.Errors {
		codes = append(codes, e.Code)
	}
	return strings.Join(codes, ",")
}

// responseMeta is what the trace keeps about a response beyond its step.
type responseMeta struct {
	status     int
	path       string
	retryAfter string
}

// trace collects what one probe did; it travels in the request context.
type trace struct {
	mu    sync.Mutex
	steps []ProbeStep
	metas []responseMeta
}

type traceKey struct{}

func withTrace(ctx context.Context, t *trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

func traceFrom(ctx context.Context) *trace {
	t, _ := ctx.Value(traceKey{}).(*trace)
	return t
}

func (t *trace) add(s ProbeStep, m *responseMeta) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.steps = append(t.steps, s)
	if m != nil {
		t.metas = append(t.metas, *m)
	}
}

func (t *trace) snapshot() ([]ProbeStep, []responseMeta) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]ProbeStep(nil), t.steps...), append([]responseMeta(nil), t.metas...)
}

// retryAfter is the last Retry-After header the registry sent.
func (t *trace) retryAfter() string {
	_, metas := t.snapshot()
	for i := len(metas) - 1; i >= 0; i-- {
		if metas[i].retryAfter != "" {
			return metas[i].retryAfter
		}
	}
	return ""
}

// tokenGranted reports whether a token service (any path outside /v2/)
// answered 200: the credentials, possibly anonymous, were accepted.
func (t *trace) tokenGranted() bool {
	_, metas := t.snapshot()
	for _, m := range metas {
		if m.status == http.StatusOK && !strings.HasPrefix(m.path, "/v2/") {
			return true
		}
	}
	return false
}
