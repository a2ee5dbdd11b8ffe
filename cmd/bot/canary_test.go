package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pullfix/pullfix/internal/slackapp"
	"github.com/pullfix/pullfix/internal/testenv/node"
	"github.com/pullfix/pullfix/internal/testenv/registries"
	"github.com/pullfix/pullfix/internal/testenv/slackemu"
)

// canaries are unique secret values, one per kind of secret pullfix holds.
type canaries map[string]string

func newCanaries() canaries {
	u := func() string { return strings.ToLower(rand.Text()) }
	return canaries{
		"bot token":            "xoxb-" + u() + "-canary",
		"app token":            "xapp-1-" + u() + "-canary",
		"signing secret":       "canary-signing-" + u(),
		"pull secret password": "canary-password-" + u(),
	}
}

// forms are the shapes a leaked secret takes: raw, and base64 (standard
// and URL alphabets) at each of the three alignments it can have inside a
// longer encoded string — the prefix-dependent first group and the
// suffix-dependent last group dropped, so a canary inside a base64
// blob (a docker config's auth, a Secret's data) is found too.
func forms(secret string) []string {
	out := []string{secret}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for pad := range 3 {
			s := enc.EncodeToString(append(make([]byte, pad), secret...))
			start := 0
			if pad > 0 {
				start = 4
			}
			out = append(out, s[start:len(s)-4])
		}
	}
	return out
}

// sink is one place a secret must never reach, and what it holds.
type sink struct {
	name string
	data []byte
}

// leaks returns every (canary, sink) pair where a form of the canary is
// found, as "canary in sink (form)".
func (c canaries) leaks(sinks []sink) []string {
	var out []string
	for _, name := range sortedKeys(c) {
		for i, f := range forms(c[name]) {
			for _, s := range sinks {
				if bytes.Contains(s.data, []byte(f)) {
					kind := "raw"
					if i > 0 {
						kind = "base64"
					}
					out = append(out, fmt.Sprintf("%s in %s (%s)", name, s.name, kind))
				}
			}
		}
	}
	return out
}

func sortedKeys(c canaries) []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// withoutAuthToken drops the Web API's token parameter from a request body
// when it is the bot token: that is the credential's own use (slack-go
// sends it in the form), not a leak. Anything else in the body stays.
func withoutAuthToken(path string, body []byte, botToken string) []byte {
	if !strings.HasPrefix(path, "/api/") {
		return body
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil || vals.Get("token") != botToken {
		return body
	}
	vals.Del("token")
	return []byte(vals.Encode())
}

// TestCanarySearcherFindsPlanted proves the search would fail the canary
// test: each canary planted raw, base64-encoded inside a longer blob (at
// every alignment, both alphabets) and URL-encoded in a form is found, a
// bot token is not hidden by the token-parameter rule when it appears
// elsewhere in the body, and clean sinks pass.
func TestCanarySearcherFindsPlanted(t *testing.T) {
	c := newCanaries()
	for _, name := range sortedKeys(c) {
		secret := c[name]
		for pad := range 3 {
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
				blob := enc.EncodeToString([]byte(strings.Repeat("x", pad) + "user:" + secret + "@tail"))
				if got := c.leaks([]sink{{"blob", []byte(`{"auth":"` + blob + `"}`)}}); len(got) == 0 {
					t.Errorf("%s base64-encoded at offset %d (%v) not found", name, pad, enc == base64.URLEncoding)
				}
			}
		}
		if got := c.leaks([]sink{{"log", []byte("level=DEBUG msg=x value=" + secret + "\n")}}); len(got) != 1 || !strings.Contains(got[0], name) {
			t.Errorf("%s raw: %q", name, got)
		}
		form := url.Values{"text": {"oops " + secret}}.Encode()
		if got := c.leaks([]sink{{"form", []byte(form)}}); len(got) == 0 {
			t.Errorf("%s in a form body not found", name)
		}
	}
	bot := c["bot token"]
	body := withoutAuthToken("/api/chat.postMessage", []byte(url.Values{"token": {bot}, "text": {"hello"}}.Encode()), bot)
	if got := c.leaks([]sink{{"body", body}}); len(got) != 0 {
		t.Errorf("the bot token as the Web API credential counted as a leak: %q", got)
	}
	body = withoutAuthToken("/api/chat.postMessage", []byte(url.Values{"token": {bot}, "text": {"token is " + bot}}.Encode()), bot)
	if got := c.leaks([]sink{{"body", body}}); len(got) == 0 {
		t.Error("the bot token in a message text was hidden by the credential rule")
	}
	if got := c.leaks([]sink{{"clean", []byte("nothing secret here xoxb-REDACTED")}}); len(got) != 0 {
		t.Errorf("clean sink: %q", got)
	}
}

// TestCanaryCredentialsNeverLeave gives every secret pullfix holds a
// unique canary value — the bot token, the app token, the signing secret
// and a pull secret's password — and runs the access-denied branch end to
// end with the real binary at debug level with /metrics and /debug/pprof
// on: the probe with the pull secret, the "Add imagePullSecret" fix, the
// rollout, an on-demand diagnosis, a refused click and a failed command.
// Then it searches every sink for every canary, raw and base64: the bot's
// logs, every request body and Socket Mode frame the Slack emulator
// received (and every answer it got), every message and private answer
// shown to people, the namespace's Events, the workload's and its
// ReplicaSets' and pods' objects (annotations included), the state
// ConfigMap, /metrics and the profiling endpoint's text pages. Zero hits,
// in Socket Mode and in HTTP mode.
func TestCanaryCredentialsNeverLeave(t *testing.T) {
	for _, mode := range []string{"socket", "http"} {
		t.Run(mode, func(t *testing.T) { canaryRun(t, mode) })
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func canaryRun(t *testing.T, mode string) {
	c := newCanaries()
	password := c["pull secret password"]
	ecr := registries.New(t, registries.WithBasicAuth(registries.BasicAuth{Users: map[string]registries.BasicUser{"AWS": {Password: password}}}))
	ecr.Push(t, "retail-store-sample-ui:1.2.1", registries.MultiArch...)
	image := ecrHost + "/retail-store-sample-ui:1.2.1"

	addr := freeAddr(t)
	w := world{mirrors: map[string]string{ecrHost: ecr.Host}, routes: map[string]node.Route{ecrHost: {Registry: ecr}},
		emuOpts: []slackemu.Option{slackemu.WithTokens(c["bot token"], c["app token"]), slackemu.WithSigningSecret(c["signing secret"])}}
	if mode == "http" {
		u := "http://" + addr + "/slack/events"
		w.httpAddr = addr
		w.emuOpts = append(w.emuOpts, slackemu.WithRequestURLs(slackemu.RequestURLs{SlashCommands: u, Interactivity: u}))
	}
	e := newE2E(t, w)
	e.env["PULLFIX_LISTEN_ADDR"] = addr
	e.env["PULLFIX_LOG_LEVEL"] = "debug"
	e.env["PULLFIX_PPROF"] = "true"
	e.createPullSecret(t, "regcred", ecrHost, "AWS", password)
	ctx := t.Context()
	if _, err := e.admin.CoreV1().ServiceAccounts(e.ns).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta:       metav1.ObjectMeta{Name: "builder"},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	fleet := newBotFleet(t, e, e.env)
	bot := fleet.start()
	ops := "http://" + addr
	if mode == "socket" {
		fleet.waitConnected(0, "the bot to lead and hold Slack")
	} else {
		poll(t, 60*time.Second, "the bot to lead and answer /readyz", func(ctx context.Context) (bool, error) {
			resp, err := http.Get(ops + "/readyz")
			if err != nil {
				return false, nil
			}
			resp.Body.Close()
			return resp.StatusCode == 200 && fleet.leads(bot), nil
		})
	}

	e.createDeployment(t, "ui-new", image)
	root := e.waitRoot(t)
	waitSlack(t, e.emu, 60*time.Second, "the proven pull secret in the message", func() bool {
		m, _ := e.emu.Message(channelID, root.TS)
		var bs blocks
		return json.Unmarshal(m.Blocks, &bs) == nil && bs.hasAction(slackapp.ActionIDAddSecret)
	})
	root = e.root(t, root.TS)
	add := parseBlocks(t, root.Blocks).button(t, slackapp.ActionIDAddSecret, "Add imagePullSecret regcred")

	// Answers to people, refusals and errors included.
	if _, err := e.emu.SlashCommand(ctx, slackemu.SlashCommand{Command: "/pullfix", Text: "ui-new -n " + e.ns, UserID: approverID, ChannelID: channelID}); err != nil {
		t.Fatalf("/pullfix ui-new: %v", err)
	}
	if _, err := e.emu.SlashCommand(ctx, slackemu.SlashCommand{Command: "/pullfix", Text: "no-such-workload -n " + e.ns, UserID: approverID, ChannelID: channelID}); err != nil {
		t.Fatalf("/pullfix no-such-workload: %v", err)
	}
	e.click(t, bystanderID, root, add)
	waitSlack(t, e.emu, 30*time.Second, "the answers to the commands and the refused click", func() bool {
		return len(e.emu.Ephemerals(approverID)) >= 3 && len(e.emu.Ephemerals(bystanderID)) >= 1
	})

	e.click(t, approverID, root, add)
	e.waitReady(t, "ui-new", image)
	waitSlack(t, e.emu, 60*time.Second, "the root message to say ui-new 1/1 Running", func() bool {
		m, _ := e.emu.Message(channelID, root.TS)
		var bs blocks
		return json.Unmarshal(m.Blocks, &bs) == nil && strings.HasPrefix(bs.header(), "✅ ui-new 1/1 Running")
	})
	e.waitState(t, slackapp.Ref(channelID, root.TS), "resolved")

	// Every sink.
	var sinks []sink
	get := func(path string) {
		resp, err := http.Get(ops + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || len(b) == 0 {
			t.Fatalf("GET %s: %d, %d bytes", path, resp.StatusCode, len(b))
		}
		sinks = append(sinks, sink{"GET " + path, b})
	}
	get("/metrics")
	get("/debug/pprof/")
	get("/debug/pprof/cmdline")
	get("/debug/pprof/goroutine?debug=2")
	if err := bot.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	sinks = append(sinks, sink{"the bot's logs", []byte(e.logs.String())})
	received := e.emu.Received()
	for _, r := range received {
		sinks = append(sinks, sink{"Slack request " + r.Path, withoutAuthToken(r.Path, r.Body, c["bot token"])})
	}
	for _, a := range e.emu.Acks() {
		sinks = append(sinks, sink{"Slack ack", a.Payload})
	}
	shown, _ := json.Marshal(map[string]any{
		"messages": e.emu.Thread(channelID, root.TS), "approver": e.emu.Ephemerals(approverID), "bystander": e.emu.Ephemerals(bystanderID),
	})
	sinks = append(sinks, sink{"what Slack shows people", shown})
	objs := map[string]func() (any, error){
		"Events": func() (any, error) { return e.admin.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{}) },
		"the Deployment": func() (any, error) {
			return e.admin.AppsV1().Deployments(e.ns).Get(ctx, "ui-new", metav1.GetOptions{})
		},
		"the ReplicaSets":  func() (any, error) { return e.admin.AppsV1().ReplicaSets(e.ns).List(ctx, metav1.ListOptions{}) },
		"the pods":         func() (any, error) { return e.admin.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{}) },
		"the bot's Events": func() (any, error) { return e.admin.CoreV1().Events(e.system).List(ctx, metav1.ListOptions{}) },
		"the state ConfigMap": func() (any, error) {
			return e.admin.CoreV1().ConfigMaps(e.system).Get(ctx, e.env["PULLFIX_STATE_CONFIGMAP"], metav1.GetOptions{})
		},
	}
	for name, read := range objs {
		o, err := read()
		if err != nil {
			t.Fatalf("reading %s: %v", name, err)
		}
		b, _ := json.Marshal(o)
		sinks = append(sinks, sink{name, b})
	}
	if leaks := c.leaks(sinks); len(leaks) > 0 {
		t.Errorf("secrets leaked:\n  %s", strings.Join(leaks, "\n  "))
	}
	total := 0
	for _, s := range sinks {
		total += len(s.data)
	}
	t.Logf("%d sinks, %d KiB searched (%d Slack request bodies and frames, %d KiB of debug logs); no canary found", len(sinks), total>>10, len(received), len(e.logs.String())>>10)
	// The search ran on what it should: the Slack calls carried the bot
	// token, the registry was asked with the password, the logs are at
	// debug level.
	if !slices.ContainsFunc(received, func(r slackemu.Received) bool { return bytes.Contains(r.Body, []byte(c["bot token"])) }) {
		t.Error("no Slack request carried the bot token: the bodies searched are not the bot's calls")
	}
	if !strings.Contains(e.logs.String(), "level=DEBUG") {
		t.Error("the bot did not log at debug level")
	}
}
