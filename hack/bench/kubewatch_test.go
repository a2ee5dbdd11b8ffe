package main

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"net/url"
	"os"
	"testing"

	"github.com/slack-go/slack"

	"github.com/pullfix/pullfix/internal/testenv/slackemu"
)

// TestSlackProxy: a slack-go client that knows only https://slack.com/api/
// (as kubewatch's does) reaches the emulator through the proxy, trusting
// only the run's CA — what HTTPS_PROXY and SSL_CERT_FILE give kubewatch.
func TestSlackProxy(t *testing.T) {
	emu, err := slackemu.New()
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	emu.AddChannel(kubewatchChannel, "kubewatch")
	p, err := newSlackProxy(t.TempDir(), emu.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	pem, err := os.ReadFile(p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	proxyURL, _ := url.Parse(p.URL())
	hc := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{RootCAs: roots}}}
	api := slack.New(emu.BotToken(), slack.OptionHTTPClient(hc))
	if _, _, err := api.PostMessage(kubewatchChannel, slack.MsgOptionText("A `pod` in namespace `x` has been `created`", false)); err != nil {
		t.Fatalf("post through the proxy: %v", err)
	}
	if msgs := emu.Messages(kubewatchChannel); len(msgs) != 1 {
		t.Fatalf("emulator holds %d messages, want 1", len(msgs))
	}
}
