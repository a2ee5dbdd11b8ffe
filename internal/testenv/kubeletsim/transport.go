package kubeletsim

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
)

// Special route targets for SetRoute.
const (
	// RouteBlackHole drops the node's packets to the registry: every request
	// hangs until the pull timeout and fails as a dial timeout does, the way
	// a node without a NAT gateway sees public.ecr.aws.
	RouteBlackHole = "blackhole"
	// RouteNXDomain makes the registry host not resolve on the node.
	RouteNXDomain = "nxdomain"
)

// Hosts the recorder answers itself for the special routes. .invalid never
// resolves (RFC 2606), so nothing leaves the machine even if a request slips.
const (
	blackHoleHost = "blackhole.kubeletsim.invalid"
	nxDomainHost  = "nxdomain.kubeletsim.invalid"
)

// exchange is one HTTP request of a pull attempt and what came back.
type exchange struct {
	method     string
	host       string
	path       string
	url        string
	authorized bool
	status     int
	statusText string // "404 Not Found"
	challenge  string // WWW-Authenticate
	codes      []string
	messages   []string
	err        error
}

// recorder sits under go-containerregistry's auth, retry and user-agent
// transports and keeps every exchange of one pull attempt, so the attempt's
// failure can be told the way containerd tells it (which request, which
// status, which challenge) rather than the way ggcr summarises it.
type recorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	log  []exchange
}

// timeoutError is a net.Error that timed out, as a dropped SYN produces.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	x := exchange{
		method:     req.Method,
		host:       req.URL.Host,
		path:       req.URL.Path,
		url:        req.URL.String(),
		authorized: req.Header.Get("Authorization") != "",
	}
	switch req.URL.Hostname() {
	case blackHoleHost:
		<-req.Context().Done()
		x.err = &net.OpError{Op: "dial", Net: "tcp", Err: timeoutError{}}
		r.add(x)
		return nil, x.err
	case nxDomainHost:
		x.err = &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: req.URL.Hostname(), Server: nodeDNSServer, IsNotFound: true}}
		r.add(x)
		return nil, x.err
	}
	resp, err := r.base.RoundTrip(req)
	if err != nil {
		x.err = err
		r.add(x)
		return nil, err
	}
	x.status, x.statusText = resp.StatusCode, resp.Status
	if resp.StatusCode >= 400 {
		x.challenge = resp.Header.Get("WWW-Authenticate")
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64000))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		var env struct {
			Errors []struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"errors"`
		}
		if json.Unmarshal(body, &env) == nil {
			for _, e := range env.Errors {
				x.codes = append(x.codes, e.Code)
				x.messages = append(x.messages, e.Message)
			}
		}
	}
	r.add(x)
	return resp, nil
}

func (r *recorder) add(x exchange) {
	r.mu.Lock()
	r.log = append(r.log, x)
	r.mu.Unlock()
}

func (r *recorder) exchanges() []exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]exchange(nil), r.log...)
}

// route is where the node sends requests for a registry host: a route set
// with SetRoute, else the mirror, else the host itself.
func (s *Simulator) route(host string) string {
	s.mu.RLock()
	t, ok := s.routes[host]
	s.mu.RUnlock()
	if !ok {
		if m, ok := s.cfg.mirrors[host]; ok {
			return m
		}
		return host
	}
	switch t {
	case RouteBlackHole:
		return blackHoleHost
	case RouteNXDomain:
		return nxDomainHost
	}
	return t
}

// SetRoute overrides the node's network path to a registry host (as named in
// pod specs): target is "host:port" to reach instead, RouteBlackHole or
// RouteNXDomain; "" restores the mirror mapping. It takes effect on the next
// pull attempt; the bot's own path to the registry is untouched.
func (s *Simulator) SetRoute(host, target string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if target == "" {
		delete(s.routes, host)
		return
	}
	s.routes[host] = target
}
