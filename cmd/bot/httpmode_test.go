package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pullfix/pullfix/internal/testenv/controlplane"
	"github.com/pullfix/pullfix/internal/testenv/slackemu"
)

// TestHTTPModeWiring runs the bot in HTTP mode (a signing secret, no app
// token): Slack's requests reach the endpoint on PULLFIX_LISTEN_ADDR at
// PULLFIX_SLACK_HTTP_PATH, a genuine /pullfix is answered, and a forged one
// is refused.
func TestHTTPModeWiring(t *testing.T) {
	controlplane.Require(t, cp)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	url := "http://" + addr + "/slack/events"
	emu, err := slackemu.New(slackemu.WithSigningSecret("s3cret-signing"),
		slackemu.WithRequestURLs(slackemu.RequestURLs{SlashCommands: url, Interactivity: url}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emu.Close() })
	emu.AddUser("U0HTTP0001", "hal")
	emu.AddChannel("C0HTTP0001", "pullfix")

	for _, k := range configKeys() {
		t.Setenv(k, "")
		os.Unsetenv(k) // restored by t.Setenv's cleanup
	}
	for k, v := range map[string]string{
		"PULLFIX_KUBECONFIG": cp.Kubeconfig(), "PULLFIX_NAMESPACES": "default", "PULLFIX_CLUSTER_NAME": "http",
		"PULLFIX_SLACK_BOT_TOKEN": emu.BotToken(), "PULLFIX_SLACK_SIGNING_SECRET": "s3cret-signing",
		"PULLFIX_SLACK_API_URL": emu.APIURL(), "PULLFIX_SLACK_CHANNEL": "C0HTTP0001", "PULLFIX_LISTEN_ADDR": addr,
	} {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var logs strings.Builder
	go func() { done <- run(ctx, []string{"run"}, strings.NewReader(""), io.Discard, &syncWriter{w: &logs}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("bot exited with %d: %s", code, logs.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("bot did not stop")
		}
	})

	var ack slackemu.Ack
	deadline := time.Now().Add(60 * time.Second)
	for {
		ack, err = emu.SlashCommand(t.Context(), slackemu.SlashCommand{Command: "/pullfix", Text: "help", UserID: "U0HTTP0001", ChannelID: "C0HTTP0001"})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // the bot is still starting: nothing listens yet
	}
	if err != nil {
		t.Fatalf("genuine /pullfix help: %v", err)
	}
	if ack.StatusCode != 200 || !strings.Contains(string(ack.Payload), "/pullfix") {
		t.Errorf("help answered %d %s", ack.StatusCode, ack.Payload)
	}
	_, err = emu.SlashCommand(t.Context(), slackemu.SlashCommand{Command: "/pullfix", Text: "help", UserID: "U0HTTP0001", ChannelID: "C0HTTP0001", Forge: slackemu.BadSignature})
	var de *slackemu.DeliveryError
	if !errors.As(err, &de) || de.Status != 401 {
		t.Errorf("forged request: %v, want a 401 refusal", err)
	}
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
