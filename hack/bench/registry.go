package main

import (
	"bufio"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/registry"
)

// The benchmark builds its registries from go-containerregistry's
// pkg/registry over httptest directly (as hack/run does) rather than
// through internal/testenv/registries, whose constructors take a
// testing.TB: a main program has none, and the benchmark needs what that
// package does not record — who sent each request (User-Agent), so the
// bot's requests can be told from the simulated kubelets'.

// botUA and simUA are the User-Agent markers of the two clients.
const (
	botUA = "pullfix/"
	simUA = "kubeletsim"
)

// counter counts registry requests by client.
type counter struct {
	mu   sync.Mutex
	bot  int
	sim  int
	rest int
	// botByPath keeps the bot's requests for the report ("GET /v2/…").
	botByPath map[string]int
}

func newCounter() *counter { return &counter{botByPath: map[string]int{}} }

func (c *counter) note(method, path, ua string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case strings.Contains(ua, botUA):
		c.bot++
		c.botByPath[method+" "+path]++
	case strings.Contains(ua, simUA):
		c.sim++
	default:
		c.rest++
	}
}

func (c *counter) counts() (bot, sim, rest int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bot, c.sim, c.rest
}

// benchRegistry is one loopback registry with request counting.
type benchRegistry struct {
	Name  string // the host image references name ("public.ecr.aws")
	Host  string // 127.0.0.1:port, what the mirror maps Name to
	admin string // unwrapped, uncounted: for seeding
	srv   *httptest.Server
	adm   *httptest.Server
	hole  *blackHole
}

func (r *benchRegistry) Close() {
	if r.srv != nil {
		r.srv.Close()
	}
	if r.adm != nil {
		r.adm.Close()
	}
	if r.hole != nil {
		r.hole.Close()
	}
}

// newRegistry starts pkg/registry behind a counting handler. With
// authRequired every request is refused with 401 and a Basic challenge,
// like a private registry asked anonymously.
func newRegistry(hostName string, c *counter, authRequired bool) *benchRegistry {
	inner := registry.New(registry.Logger(stdlog.New(io.Discard, "", 0)))
	var h http.Handler = inner
	if authRequired {
		h = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("WWW-Authenticate", `Basic realm="`+hostName+`"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
		})
	}
	next := h
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		c.note(req.Method, req.URL.Path, req.Header.Get("User-Agent"))
		next.ServeHTTP(w, req)
	}))
	srv.Config.ErrorLog = stdlog.New(io.Discard, "", 0)
	srv.Start()
	adm := httptest.NewServer(inner)
	return &benchRegistry{
		Name: hostName, Host: strings.TrimPrefix(srv.URL, "http://"),
		admin: strings.TrimPrefix(adm.URL, "http://"), srv: srv, adm: adm,
	}
}

// newBlackHoleRegistry accepts connections, reads the request (to count
// it by User-Agent) and never answers: a dropped route.
func newBlackHoleRegistry(hostName string, c *counter) (*benchRegistry, error) {
	h, err := newBlackHole(c)
	if err != nil {
		return nil, err
	}
	return &benchRegistry{Name: hostName, Host: h.ln.Addr().String(), hole: h}, nil
}

type blackHole struct {
	ln    net.Listener
	c     *counter
	mu    sync.Mutex
	conns []net.Conn
}

func newBlackHole(c *counter) (*blackHole, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &blackHole{ln: ln, c: c}
	go h.serve()
	return h, nil
}

func (h *blackHole) serve() {
	for {
		conn, err := h.ln.Accept()
		if err != nil {
			return
		}
		h.mu.Lock()
		h.conns = append(h.conns, conn)
		h.mu.Unlock()
		go func() {
			// Read requests and never answer; the client gives up first.
			br := bufio.NewReader(conn)
			for {
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				h.c.note(req.Method, req.URL.Path, req.Header.Get("User-Agent"))
			}
		}()
	}
}

func (h *blackHole) Close() {
	h.ln.Close()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range h.conns {
		c.Close()
	}
	h.conns = nil
}
