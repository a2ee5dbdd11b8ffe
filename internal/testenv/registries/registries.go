// Package registries starts real OCI registries on loopback for tests:
// go-containerregistry's pkg/registry over httptest, seeded with images of
// chosen platforms, behind wrappers that behave like the registries pods
// pull from (bearer-token auth with Docker Hub's 401 ambiguity, ECR-like
// Basic auth and IAM denials, 403, 429 with Retry-After, TLS with a private
// CA, plain HTTP), plus the failures of the network in between (a black
// hole, a closed port, a host that does not resolve).
//
// Nothing here mocks the registry protocol: clients talk HTTP to
// pkg/registry. Nothing leaves 127.0.0.1: host names are served by a local
// DNS server (see Network).
package registries

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
)

// Registry is one registry server on loopback.
type Registry struct {
	// Host is what image references use: "127.0.0.1:port", or
	// "name:port" when WithHostname was given.
	Host string
	// URL is scheme://Host.
	URL string
	// Addr is the listener's 127.0.0.1:port.
	Addr string

	cfg   config
	inner http.Handler     // pkg/registry, unwrapped
	admin *httptest.Server // the unwrapped registry on its own port, for seeding
	srv   *httptest.Server
	log   requestLog
}

type config struct {
	bearer    *BearerAuth
	basic     *BasicAuth
	denied    []string
	rate      *RateLimit
	server    *ServerError
	ca        *CA
	network   *Network
	hostname  string
	noCatalog bool
	delay     time.Duration
}

// Option configures a Registry.
type Option func(*config)

// WithBearerAuth puts a bearer-token service in front (token endpoint on
// the same host:port, as go-containerregistry requires of a loopback realm).
func WithBearerAuth(a BearerAuth) Option { return func(c *config) { c.bearer = &a } }

// WithBasicAuth puts ECR-like Basic auth in front.
func WithBasicAuth(a BasicAuth) Option { return func(c *config) { c.basic = &a } }

// WithDenied answers 403 DENIED for the named repositories (exact names or
// "prefix/*").
func WithDenied(repos ...string) Option {
	return func(c *config) { c.denied = append(c.denied, repos...) }
}

// WithRateLimit answers 429 TOOMANYREQUESTS with Retry-After.
func WithRateLimit(r RateLimit) Option { return func(c *config) { c.rate = &r } }

// WithServerError answers a 5xx (see ServerError).
func WithServerError(e ServerError) Option { return func(c *config) { c.server = &e } }

// WithTLS serves HTTPS with a certificate issued by ca for the host name
// (see WithHostname) and 127.0.0.1.
func WithTLS(ca *CA) Option { return func(c *config) { c.ca = ca } }

// WithHostname registers name in n's DNS and makes Host "name:port". A
// name that is not an IP makes go-containerregistry speak HTTPS first
// (127.0.0.1 gets plain HTTP), which the TLS and HTTP-vs-HTTPS cases need.
func WithHostname(n *Network, name string) Option {
	return func(c *config) { c.network, c.hostname = n, name }
}

// WithoutCatalog answers /v2/_catalog like registries that lack it
// (404 UNSUPPORTED).
func WithoutCatalog() Option { return func(c *config) { c.noCatalog = true } }

// WithDelay delays every answer (to exercise concurrency bounds).
func WithDelay(d time.Duration) Option { return func(c *config) { c.delay = d } }

// New starts a registry; it is closed when the test ends.
func New(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	r := &Registry{}
	for _, o := range opts {
		o(&r.cfg)
	}
	r.inner = registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.admin = httptest.NewServer(r.inner)
	t.Cleanup(r.admin.Close)

	r.srv = httptest.NewUnstartedServer(r.handler())
	r.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	r.Addr = r.srv.Listener.Addr().String()
	_, port, _ := net.SplitHostPort(r.Addr)
	r.Host = r.Addr
	if r.cfg.hostname != "" {
		r.cfg.network.Add(r.cfg.hostname)
		r.Host = net.JoinHostPort(r.cfg.hostname, port)
	}
	scheme := "http"
	if r.cfg.ca != nil {
		names := []string{"127.0.0.1"}
		if r.cfg.hostname != "" {
			names = append(names, r.cfg.hostname)
		}
		r.srv.TLS = &tls.Config{Certificates: []tls.Certificate{r.cfg.ca.Issue(t, names...)}}
		r.srv.StartTLS()
		scheme = "https"
	} else {
		r.srv.Start()
	}
	t.Cleanup(r.srv.Close)
	r.URL = scheme + "://" + r.Host
	return r
}

// Ref is Host + "/" + repoTag, a reference to this registry.
func (r *Registry) Ref(repoTag string) string { return r.Host + "/" + repoTag }

// AdminHost is the unwrapped registry ("127.0.0.1:port", plain HTTP, no
// auth, not logged): seed or inspect content there.
func (r *Registry) AdminHost() string { return strings.TrimPrefix(r.admin.URL, "http://") }

// ListenAlso serves this registry — auth, faults and request log
// included — on addr too ("127.54.1.2:80"), in plain HTTP, until the test
// ends. The real test node reaches a registry under the name pods use
// ("public.ecr.aws" resolved by a Network to addr's IP), which is how
// containerd sends the pod's credentials to it.
func (r *Registry) ListenAlso(t testing.TB, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: r.srv.Config.Handler, ErrorLog: log.New(io.Discard, "", 0), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
}

// Close stops the server early (e.g. to turn a registry into a refused port).
func (r *Registry) Close() { r.srv.Close() }

func (r *Registry) handler() http.Handler {
	var h http.Handler = r.inner
	if r.cfg.noCatalog {
		h = noCatalog(h)
	}
	if len(r.cfg.denied) > 0 {
		h = denied(r.cfg.denied, h)
	}
	switch {
	case r.cfg.bearer != nil:
		h = newBearer(r, *r.cfg.bearer, h)
	case r.cfg.basic != nil:
		h = newBasic(r, *r.cfg.basic, h)
	}
	if r.cfg.rate != nil {
		h = rateLimited(*r.cfg.rate, h)
	}
	if r.cfg.server != nil {
		h = serverError(*r.cfg.server, h)
	}
	if r.cfg.delay > 0 {
		next, d := h, r.cfg.delay
		h = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			time.Sleep(d)
			next.ServeHTTP(w, req)
		})
	}
	return r.log.wrap(h)
}

// exists asks pkg/registry whether repo has any content, as a token
// service would ask its database.
func (r *Registry) exists(repo string) bool {
	req := httptest.NewRequest(http.MethodGet, "/v2/"+repo+"/tags/list", nil)
	rec := httptest.NewRecorder()
	r.inner.ServeHTTP(rec, req)
	return rec.Code == http.StatusOK
}

// Request is one request the registry served.
type Request struct {
	Method string
	Path   string
	Query  string
	Status int
	// Auth is the Authorization scheme sent ("Basic", "Bearer"), never
	// the credential.
	Auth string
	Time time.Time
}

func (q Request) String() string {
	s := q.Method + " " + q.Path
	if q.Query != "" {
		s += "?" + q.Query
	}
	return fmt.Sprintf("%s -> %d", s, q.Status)
}

// Requests returns the requests served so far, in order.
func (r *Registry) Requests() []Request { return r.log.all() }

// Count is the number of requests served so far.
func (r *Registry) Count() int { return len(r.log.all()) }

// CountPath counts requests whose path contains substr ("/manifests/",
// "/token", "/v2/_catalog").
func (r *Registry) CountPath(substr string) int {
	n := 0
	for _, q := range r.log.all() {
		if strings.Contains(q.Path, substr) {
			n++
		}
	}
	return n
}

// ResetLog forgets the requests served so far.
func (r *Registry) ResetLog() { r.log.reset() }

// InFlightMax is the largest number of requests served concurrently.
func (r *Registry) InFlightMax() int { return r.log.maxInFlight() }

type requestLog struct {
	mu       sync.Mutex
	reqs     []Request
	inFlight int
	peak     int
}

func (l *requestLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		l.mu.Lock()
		l.inFlight++
		l.peak = max(l.peak, l.inFlight)
		l.mu.Unlock()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(sw, req)
		scheme, _, _ := strings.Cut(req.Header.Get("Authorization"), " ")
		l.mu.Lock()
		l.inFlight--
		l.reqs = append(l.reqs, Request{
			Method: req.Method, Path: req.URL.Path, Query: req.URL.RawQuery,
			Status: sw.status, Auth: scheme, Time: time.Now(),
		})
		l.mu.Unlock()
	})
}

func (l *requestLog) all() []Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Request(nil), l.reqs...)
}

func (l *requestLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs, l.peak = nil, 0
}

func (l *requestLog) maxInFlight() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.peak
}

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// repoOf extracts the repository from a /v2/<repo>/{manifests,blobs,tags,referrers}/… path.
func repoOf(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/v2/")
	if !ok {
		return "", false
	}
	for _, sep := range []string{"/manifests/", "/blobs/", "/tags/", "/referrers/"} {
		if i := strings.LastIndex(rest, sep); i > 0 {
			return rest[:i], true
		}
	}
	return "", false
}

// matchRepo matches exact names and "prefix/*" patterns.
func matchRepo(patterns []string, repo string) bool {
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "/*"); ok {
			if strings.HasPrefix(repo, prefix+"/") {
				return true
			}
		} else if p == repo {
			return true
		}
	}
	return false
}

// writeError writes a distribution-spec error body.
func writeError(w http.ResponseWriter, status int, code, message string, detail any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	type diag struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Detail  any    `json:"detail,omitempty"`
	}
	writeJSON(w, map[string]any{"errors": []diag{{code, message, detail}}})
}
