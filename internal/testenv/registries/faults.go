package registries

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
)

// RateLimit answers 429 TOOMANYREQUESTS once After requests to
// repositories have been served (pings and token requests are free, as on
// Docker Hub).
type RateLimit struct {
	After int
	// RetryAfter is the Retry-After header value, e.g. "30".
	RetryAfter string
}

func rateLimited(rl RateLimit, next http.Handler) http.Handler {
	var served atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if _, isRepo := repoOf(req.URL.Path); isRepo {
			if served.Add(1) > int64(rl.After) {
				if rl.RetryAfter != "" {
					w.Header().Set("Retry-After", rl.RetryAfter)
				}
				writeError(w, http.StatusTooManyRequests, "TOOMANYREQUESTS",
					"You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit", nil)
				return
			}
		}
		next.ServeHTTP(w, req)
	})
}

// ServerError makes the registry answer a 5xx, like a registry (or the
// load balancer in front of it) that is failing.
type ServerError struct {
	// Status is the HTTP status, e.g. 500, 502, 503 or 504.
	Status int
	// Repos limits the failure to these repositories (exact or
	// "prefix/*"); empty fails every request, the /v2/ ping included.
	Repos []string
}

func serverError(se ServerError, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		repo, isRepo := repoOf(req.URL.Path)
		if len(se.Repos) == 0 || (isRepo && matchRepo(se.Repos, repo)) {
			if se.Status == http.StatusServiceUnavailable {
				writeError(w, se.Status, "UNAVAILABLE", "service unavailable", nil)
				return
			}
			// Proxies answer in HTML, not the distribution error JSON.
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(se.Status)
			fmt.Fprintf(w, "<html><body><h1>%d %s</h1></body></html>\n", se.Status, http.StatusText(se.Status))
			return
		}
		next.ServeHTTP(w, req)
	})
}

func denied(repos []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if repo, ok := repoOf(req.URL.Path); ok && matchRepo(repos, repo) {
			writeError(w, http.StatusForbidden, "DENIED", "requested access to the resource is denied", nil)
			return
		}
		next.ServeHTTP(w, req)
	})
}

func noCatalog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/v2/_catalog" {
			writeError(w, http.StatusNotFound, "UNSUPPORTED", "The operation is unsupported.", nil)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// BlackHole is a listener on 127.0.0.1 that accepts connections and never
// answers: the shape of a dropped route or a firewall that lets SYNs
// through to a hung proxy. Its Host is "127.0.0.1:port"; connections and
// listener close when the test ends.
func BlackHole(t testing.TB) *Hole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &Hole{Host: ln.Addr().String(), ln: ln}
	go h.serve()
	t.Cleanup(h.Close)
	return h
}

// Hole is a black-hole listener.
type Hole struct {
	Host string

	ln       net.Listener
	mu       sync.Mutex
	conns    []net.Conn
	accepted atomic.Int64
	open     int
	peak     int
	closed   bool
}

func (h *Hole) serve() {
	for {
		c, err := h.ln.Accept()
		if err != nil {
			return
		}
		h.accepted.Add(1)
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			c.Close()
			return
		}
		h.conns = append(h.conns, c)
		h.open++
		h.peak = max(h.peak, h.open)
		h.mu.Unlock()
		// Read and discard until the client gives up, to know how many
		// connections are open at once; never write.
		go func() {
			buf := make([]byte, 4096)
			for {
				if _, err := c.Read(buf); err != nil {
					break
				}
			}
			h.mu.Lock()
			h.open--
			h.mu.Unlock()
		}()
	}
}

// MaxOpen is the largest number of connections open at once.
func (h *Hole) MaxOpen() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.peak
}

// Accepted is the number of connections accepted so far.
func (h *Hole) Accepted() int { return int(h.accepted.Load()) }

// Close closes the listener and every held connection.
func (h *Hole) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	h.ln.Close()
	for _, c := range h.conns {
		c.Close()
	}
}

// ClosedPort returns "127.0.0.1:port" where nothing listens (connection
// refused): a port that was just bound and released.
func ClosedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
