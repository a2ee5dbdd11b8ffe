package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pullfix/pullfix/internal/testenv/slackemu"
)

// The side-by-side row: robusta-dev/kubewatch, the watcher people run to
// hear about pods in Slack, under the same storm, posting to a Slack
// emulator of its own (the same limits as pullfix's).
//
// kubewatch's Slack handler calls slack.New(token) with no API URL option
// and reads no setting for one (pkg/handlers/slack/slack.go), so it always
// posts to https://slack.com/api/. It is pointed at the emulator without
// changing its code: HTTPS_PROXY names slackProxy, a loopback CONNECT proxy
// that answers for slack.com with a certificate from a CA made for this
// run (SSL_CERT_FILE, which Go reads on Linux, holds only that CA) and
// forwards each Web API request to the emulator. The API server is on
// 127.0.0.1, which Go never proxies.

// buildKubewatch runs hack/build-kubewatch.sh and returns the binary.
func buildKubewatch(ctx context.Context, root string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(root, "hack", "build-kubewatch.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("build kubewatch: %w", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1], nil
}

// slackProxy is an HTTPS proxy that is slack.com for whoever trusts its CA.
type slackProxy struct {
	ln     net.Listener
	caFile string
	tlsCfg *tls.Config
	fwd    *httputil.ReverseProxy
	conns  chan net.Conn
	srv    *http.Server
	wg     sync.WaitGroup
}

func newSlackProxy(dir, emuURL string) (*slackProxy, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pullfix bench slack.com CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "slack.com"},
		DNSNames: []string{"slack.com", "*.slack.com"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caFile := filepath.Join(dir, "slack-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		return nil, err
	}
	target, err := url.Parse(emuURL)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &slackProxy{ln: ln, caFile: caFile, conns: make(chan net.Conn, 64),
		tlsCfg: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}}},
		fwd:    httputil.NewSingleHostReverseProxy(target)}
	// Requests decrypted from the tunnels: https://slack.com/api/X → the
	// emulator's /api/X.
	p.srv = &http.Server{Handler: p.fwd, ReadHeaderTimeout: 10 * time.Second}
	p.wg.Go(func() { _ = p.srv.Serve(chanListener{p}) })
	p.wg.Go(p.accept)
	return p, nil
}

// URL is the proxy's address for HTTPS_PROXY.
func (p *slackProxy) URL() string { return "http://" + p.ln.Addr().String() }

// accept answers CONNECT slack.com:443 and hands the TLS side of the
// tunnel to the HTTP server.
func (p *slackProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			close(p.conns)
			return
		}
		go func() {
			br := bufio.NewReader(c)
			req, err := http.ReadRequest(br)
			if err != nil || req.Method != http.MethodConnect || !strings.HasSuffix(req.Host, "slack.com:443") {
				_, _ = io.WriteString(c, "HTTP/1.1 403 Forbidden\r\n\r\n")
				c.Close()
				return
			}
			if _, err := io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
				c.Close()
				return
			}
			defer func() { recover() }() // conns closed at shutdown
			p.conns <- tls.Server(c, p.tlsCfg)
		}()
	}
}

func (p *slackProxy) Close() {
	_ = p.ln.Close()
	_ = p.srv.Close()
	p.wg.Wait()
}

// chanListener serves the tunnels' TLS connections.
type chanListener struct{ p *slackProxy }

func (l chanListener) Accept() (net.Conn, error) {
	c, ok := <-l.p.conns
	if !ok {
		return nil, errors.New("closed")
	}
	return c, nil
}
func (l chanListener) Close() error   { return nil }
func (l chanListener) Addr() net.Addr { return l.p.ln.Addr() }

// kubewatchRun is kubewatch running against the benchmark's cluster.
type kubewatchRun struct {
	proc  *botProcess
	emu   *slackemu.Emulator
	proxy *slackProxy
}

const kubewatchChannel = "C0KUBEWATCH"

// startKubewatch starts kubewatch watching pods in every namespace and
// posting to its own emulator, and waits until its informer has synced.
func startKubewatch(ctx context.Context, bin, dir, kubeconfig string) (*kubewatchRun, error) {
	emu, err := slackemu.New(slackemu.WithPostRate(slackemu.DefaultPostRate, slackemu.DefaultPostBurst))
	if err != nil {
		return nil, err
	}
	emu.AddChannel(kubewatchChannel, "kubewatch")
	proxy, err := newSlackProxy(dir, emu.URL())
	if err != nil {
		emu.Close()
		return nil, err
	}
	home := filepath.Join(dir, "kubewatch-home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, err
	}
	// Slack and pods. kubewatch reads this YAML with yaml.v3, which ignores
	// its structs' json tags ("po"): the keys are the lower-cased field
	// names ("pod").
	conf := "namespace: \"\"\nhandler:\n  slack:\n    token: " + emu.BotToken() + "\n    channel: " + kubewatchChannel +
		"\nresource:\n  pod: true\n"
	if err := os.WriteFile(filepath.Join(home, ".kubewatch.yaml"), []byte(conf), 0o600); err != nil {
		return nil, err
	}
	env := map[string]string{
		"HOME": home, "KUBECONFIG": kubeconfig,
		"HTTPS_PROXY": proxy.URL(), "https_proxy": proxy.URL(), "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
		"SSL_CERT_FILE": proxy.caFile, "LISTEN_ADDRESS": "127.0.0.1:0", // its metrics, on loopback
	}
	proc, err := startProcess(ctx, bin, nil, filepath.Join(dir, "kubewatch.log"), env)
	if err != nil {
		proxy.Close()
		emu.Close()
		return nil, err
	}
	k := &kubewatchRun{proc: proc, emu: emu, proxy: proxy}
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if b, _ := os.ReadFile(proc.logPath); strings.Contains(string(b), "synced and ready") {
			return k, nil
		}
		if err, done := proc.exited(); done {
			k.stop()
			return nil, fmt.Errorf("kubewatch stopped: %v; log: %s", err, tail(proc.logPath, 10))
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			k.stop()
			return nil, fmt.Errorf("kubewatch did not sync in 5 minutes; log: %s", tail(proc.logPath, 10))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (k *kubewatchRun) stop() {
	k.proc.stop()
	k.proxy.Close()
	k.emu.Close()
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// KubewatchResult is the side-by-side row.
type KubewatchResult struct {
	RSSMiB      float64 `json:"rss_mib"`
	RSSReadyMiB float64 `json:"rss_ready_mib"`
	DetectP50ms int64   `json:"detect_p50_ms"`
	DetectP99ms int64   `json:"detect_p99_ms"`
	Named       int     `json:"named_workloads"`
	Posts       int     `json:"posts"`
	// PostsPerWorkload counts the accepted posts naming a failing
	// workload's pods, per failing workload.
	PostsPerWorkload float64 `json:"posts_per_failing_workload"`
	Slack429s        int     `json:"slack_429s"`
	// NamesCause: whether any accepted post says why a pod cannot pull.
	NamesCause bool `json:"names_cause"`
}

// measure reads kubewatch's emulator: when each failing workload was first
// named (a pod of it), against the same first failing status write.
func (k *kubewatchRun) measure(bad []failingWorkload, rec *failRecorder) KubewatchResult {
	var r KubewatchResult
	first := map[string]time.Time{}
	perWorkload := 0
	for _, c := range k.emu.Calls("chat.postMessage") {
		if c.Status == 429 {
			r.Slack429s++
		}
		if !c.OK() {
			continue
		}
		r.Posts++
		text := c.Params.Get("text") + c.Params.Get("attachments") + string(c.Blocks)
		for _, w := range bad {
			if strings.Contains(text, w.Name+"-") {
				perWorkload++
				if _, ok := first[w.Namespace+"/"+w.Name]; !ok {
					first[w.Namespace+"/"+w.Name] = c.At
				}
				if strings.Contains(text, "not found") || strings.Contains(text, "ErrImagePull") || strings.Contains(text, "ImagePullBackOff") {
					r.NamesCause = true
				}
			}
		}
	}
	var lat []time.Duration
	for _, w := range bad {
		k := w.Namespace + "/" + w.Name
		at, ok := first[k]
		fw, ok2 := rec.get(k)
		if ok && ok2 {
			lat = append(lat, at.Sub(fw.Written))
		}
	}
	r.Named = len(lat)
	if len(lat) > 0 {
		slices.Sort(lat)
		r.DetectP50ms = percentile(lat, 50).Milliseconds()
		r.DetectP99ms = percentile(lat, 99).Milliseconds()
	}
	r.PostsPerWorkload = float64(perWorkload) / float64(len(bad))
	_, r.RSSMiB = k.proc.memory()
	return r
}
