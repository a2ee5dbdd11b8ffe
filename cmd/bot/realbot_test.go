package main

// The real bot binary, run as its own process against the test control
// plane through a loopback reverse proxy (apiProxy) that can stop one API
// request in the middle, so a test can SIGKILL the bot exactly there.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/pullfix/pullfix/internal/testenv/proc"
)

// realBot is the bot binary, built once per test run.
var realBot struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// realBotBinary builds ./cmd/bot (go build -o, into a temporary directory
// removed by TestMain) on first use and returns its path.
func realBotBinary(t *testing.T) string {
	t.Helper()
	realBot.once.Do(func() {
		dir, err := os.MkdirTemp("", "pullfix-realbot-")
		if err != nil {
			realBot.err = err
			return
		}
		realBot.dir = dir
		began := time.Now()
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "bot"), ".").CombinedOutput()
		if err != nil {
			realBot.err = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		realBot.path = filepath.Join(dir, "bot")
		t.Logf("built the bot binary in %s", time.Since(began).Round(time.Millisecond))
	})
	if realBot.err != nil {
		t.Fatal(realBot.err)
	}
	return realBot.path
}

func removeRealBot() {
	if realBot.dir != "" {
		_ = os.RemoveAll(realBot.dir)
	}
}

// apiProxy is a loopback reverse proxy in front of the kube-apiserver. The
// bot's kubeconfig points at it; a test arms holds that stop one matching
// request — before it reaches the API server (it never happened) or after
// (it happened; the bot never hears so) — until the bot is gone.
type apiProxy struct {
	target *url.URL
	tr     *http.Transport
	srv    *httptest.Server

	mu    sync.Mutex
	holds []*apiHold
	seen  []string // "METHOD path?query" of every request, in order
}

// apiHold stops the first request match accepts.
type apiHold struct {
	name    string
	after   bool
	match   func(p *apiProxy, r *http.Request, body []byte) bool
	reached chan struct{}
	taken   bool
}

func newAPIProxy(t *testing.T, server string, caData []byte) *apiProxy {
	t.Helper()
	u, err := url.Parse(server)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caData) {
		t.Fatal("the control plane's CA does not parse")
	}
	p := &apiProxy{target: u, tr: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}}
	// TLS: client-go sends a bearer token only over https.
	p.srv = httptest.NewUnstartedServer(p)
	p.srv.EnableHTTP2 = true
	p.srv.StartTLS()
	t.Cleanup(func() {
		p.srv.CloseClientConnections()
		p.srv.Close()
		p.tr.CloseIdleConnections()
	})
	return p
}

// kubeconfig writes a kubeconfig for the proxy with the given token.
func (p *apiProxy) kubeconfig(t *testing.T, token, namespace string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig-proxy")
	kc := clientcmdapi.NewConfig()
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw})
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: p.srv.URL, CertificateAuthorityData: ca}
	kc.AuthInfos["pullfix"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "pullfix", Namespace: namespace}
	kc.CurrentContext = "e2e"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// hold arms a hold; its Reached channel closes when a request is held.
func (p *apiProxy) hold(name string, after bool, match func(p *apiProxy, r *http.Request, body []byte) bool) *apiHold {
	h := &apiHold{name: name, after: after, match: match, reached: make(chan struct{})}
	p.mu.Lock()
	p.holds = append(p.holds, h)
	p.mu.Unlock()
	return h
}

// saw reports whether a request went through before whose
// "METHOD path?query" matches.
func (p *apiProxy) saw(match func(string) bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.ContainsFunc(p.seen, match)
}

func (p *apiProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
		_ = r.Body.Close()
	}
	p.mu.Lock()
	holds := slices.Clone(p.holds)
	p.mu.Unlock()
	var h *apiHold
	for _, c := range holds {
		if c.match(p, r, body) {
			p.mu.Lock()
			if !c.taken {
				c.taken, h = true, c
			}
			p.mu.Unlock()
			if h != nil {
				break
			}
		}
	}
	p.mu.Lock()
	p.seen = append(p.seen, r.Method+" "+r.URL.RequestURI())
	p.mu.Unlock()

	out, err := http.NewRequestWithContext(r.Context(), r.Method, p.target.String()+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	out.Header = r.Header.Clone()
	out.Header.Del("Connection")
	out.ContentLength = int64(len(body))
	if h != nil {
		if h.after {
			// The API server carries it out whatever becomes of the bot.
			out = out.WithContext(context.Background())
			if resp, err := p.tr.RoundTrip(out); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		}
		close(h.reached)
		<-r.Context().Done() // until the bot is gone
		return
	}
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		if r.Context().Err() == nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	// Stream (watches): flush every chunk as it comes.
	buf := make([]byte, 32<<10)
	fl, _ := w.(http.Flusher)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// botFleet runs real bot processes (replicas of one Deployment) with e's
// environment, through the proxy.
type botFleet struct {
	t   *testing.T
	e   *e2e
	bin string
	env []string
	dir string
	n   int
}

func newBotFleet(t *testing.T, e *e2e, env map[string]string) *botFleet {
	t.Helper()
	f := &botFleet{t: t, e: e, bin: realBotBinary(t), dir: t.TempDir()}
	f.env = append(f.env, "HOME="+f.dir)
	for k, v := range env {
		f.env = append(f.env, k+"="+v)
	}
	return f
}

// start launches one more replica and returns it.
func (f *botFleet) start() *proc.Process {
	f.t.Helper()
	f.n++
	name := fmt.Sprintf("bot-%d", f.n)
	p := &proc.Process{Name: name, Path: f.bin, Args: []string{"run"}, LogPath: filepath.Join(f.dir, name+".log"), Tee: f.e.logs, Env: f.env}
	if err := p.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = p.Stop(10 * time.Second) })
	return p
}

// leads reports whether replica p has logged that it leads.
func (f *botFleet) leads(p *proc.Process) bool {
	b, err := os.ReadFile(p.LogPath)
	return err == nil && bytes.Contains(b, []byte("leading: syncing incidents"))
}

// waitConnected waits until one more Socket Mode connection than before is
// open: a replica leads and holds Slack.
func (f *botFleet) waitConnected(before int, what string) {
	f.t.Helper()
	waitSlack(f.t, f.e.emu, 90*time.Second, what, func() bool {
		return len(f.e.emu.Connections()) > before && f.e.emu.OpenConnections() > 0
	})
}

// leader returns the replica that leads, among ps.
func (f *botFleet) leader(ps ...*proc.Process) *proc.Process {
	f.t.Helper()
	var found *proc.Process
	poll(f.t, 30*time.Second, "the leading replica", func(context.Context) (bool, error) {
		for _, p := range ps {
			select {
			case <-p.Exited():
				continue
			default:
			}
			if f.leads(p) {
				found = p
				return true, nil
			}
		}
		return false, nil
	})
	return found
}
