package registries

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
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

// Dropped is a loopback address:port whose SYNs are dropped: a listener
// whose accept queue is full and is never drained. A client's connect
// times out exactly as on a route that drops packets (a missing NAT
// gateway, a security group without egress) — "dial tcp …: i/o timeout"
// after the client's own dial timeout — where BlackHole's connect succeeds
// and the request then hangs. A real containerd has a dial timeout (30 s)
// but no response timeout, so only this shape ends a pull with an error.
type Dropped struct {
	// Host is "127.0.0.1:port" (or the address given to DroppedRouteAt).
	Host string

	fd    int
	conns []net.Conn
}

// DroppedRoute starts a Dropped address on 127.0.0.1; it is closed when
// the test ends.
func DroppedRoute(t testing.TB) *Dropped {
	t.Helper()
	return DroppedRouteAt(t, [4]byte{127, 0, 0, 1}, 0)
}

// DroppedRouteAt is DroppedRoute on ip:port (port 0: any).
func DroppedRouteAt(t testing.TB, ip [4]byte, port int) *Dropped {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: ip, Port: port}); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	// Backlog 0: the kernel queues one connection, then drops SYNs.
	if err := syscall.Listen(fd, 0); err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		syscall.Close(fd)
		t.Fatal(err)
	}
	bound := sa.(*syscall.SockaddrInet4)
	d := &Dropped{Host: fmt.Sprintf("%d.%d.%d.%d:%d", ip[0], ip[1], ip[2], ip[3], bound.Port), fd: fd}
	t.Cleanup(d.Close)
	// Fill the accept queue: connect until a connect no longer completes.
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", d.Host, 300*time.Millisecond)
		if err != nil {
			break
		}
		d.conns = append(d.conns, c)
		if i > 64 {
			t.Fatalf("dropped route %s: the accept queue never filled", d.Host)
		}
	}
	return d
}

// Close releases the listener and the connections that fill its queue.
func (d *Dropped) Close() {
	for _, c := range d.conns {
		c.Close()
	}
	d.conns = nil
	if d.fd >= 0 {
		syscall.Close(d.fd)
		d.fd = -1
	}
}
