package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/slack-go/slack"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/slackapp"
	"github.com/pullfix/pullfix/internal/testenv/controlplane"
	"github.com/pullfix/pullfix/internal/testenv/slackemu"
)

var cp *controlplane.ControlPlane

func TestMain(m *testing.M) { os.Exit(controlplane.Run(m, &cp)) }

// Selectors of the page (internal/testenv/slackemu/web): the fix button is
// found by its words, as a person finds it.
const (
	setImageButton = `//button[contains(., "Set image to") and contains(., "retail-store-sample-ui:1.2.1")]`
	modalOpen      = `#modal-back:not([hidden])`
	resolvedHeader = `//div[@class="msg"]//div[contains(@class, "b-header") and contains(., "ui-new 1/1 Running")]`
	patchedReply   = `//div[@class="thread"]//div[@class="reply"][contains(., "Patched")]`
	panelReady     = `//li[@data-tone="ok" and contains(., "Deployment ui-new: ready 1/1")]`
)

// TestDemoInBrowser is the README's demo, end to end, in a real browser:
// the demo's world (control plane, kubelet simulator, registry with the
// runbook's images, Slack emulator and its page) and the real bot binary
// on Socket Mode; headless Chromium loads the page, sees the diagnosis,
// clicks "Set image to …retail-store-sample-ui:1.2.1", cancels the confirm
// dialog (nothing may reach the bot), clicks again and confirms, and waits
// until the page shows the root message edited to "ui-new 1/1 Running", the
// patch in its thread and the panel's Deployment ready. The cluster and the
// emulator's record are then checked independently of the page, and the
// final page is saved as docs/demo.png, the README's picture.
func TestDemoInBrowser(t *testing.T) {
	controlplane.Require(t, cp)
	chromium := requireChromium(t)
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	began := time.Now()
	var progress syncBuffer
	l, err := startLocal(ctx, localOptions{cp: cp, emulateSlack: true, pageAddr: "127.0.0.1:0", out: &progress})
	if err != nil {
		t.Fatalf("start the demo: %v\n%s", err, progress.String())
	}
	defer l.Close()
	t.Logf("demo world up in %s; page %s", time.Since(began).Round(100*time.Millisecond), l.PageURL)

	// The real bot, as `make run` runs it; stopped (SIGINT) before the
	// world it talks to.
	botCtx, stopBot := context.WithCancel(ctx)
	var botLog syncBuffer
	botDone := make(chan error, 1)
	env := append(os.Environ(), l.Env...)
	env = append(env, "PULLFIX_LISTEN_ADDR=127.0.0.1:0", "PULLFIX_LOG_LEVEL=debug")
	go func() { botDone <- bot(botCtx, root, env, &botLog, &botLog) }()
	defer func() {
		stopBot()
		if err := <-botDone; err != nil {
			t.Errorf("bot exited: %v", err)
		}
		if t.Failed() {
			t.Logf("demo progress:\n%s\nbot log (last 60 lines):\n%s", progress.String(), lastLines(botLog.String(), 60))
		}
	}()

	browser, closeBrowser := newBrowser(t, ctx, chromium)
	defer closeBrowser()

	step := func(what string, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, scancel := context.WithTimeout(browser, timeout)
		defer scancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v (page text: %q)", what, err, pageText(browser))
		}
	}

	step("load the page", 30*time.Second,
		chromedp.EmulateViewport(1280, 720),
		chromedp.Navigate(l.PageURL),
		chromedp.WaitVisible(chromedp.CSS(`#channel-name`)),
	)
	// The bot is built, connects over Socket Mode, sees the pod in
	// ImagePullBackOff, probes the registry and posts.
	step("the bot's diagnosis with its fix button", 3*time.Minute,
		chromedp.WaitVisible(chromedp.CSS(`#conn[data-state="up"]`)),
		chromedp.WaitVisible(`//div[contains(@class, "b-header") and contains(., "ui-new: repository not found")]`),
		chromedp.WaitVisible(setImageButton),
	)
	posted := time.Since(began)
	t.Logf("diagnosis on the page %s after start", posted.Round(100*time.Millisecond))
	saveShot(t, browser, root, "demo.png")

	// Cancel first: the confirm dialog must stop the click.
	step("open the confirm dialog and cancel", 20*time.Second,
		chromedp.Click(setImageButton),
		chromedp.WaitVisible(chromedp.CSS(modalOpen)),
	)
	dialog, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(`#modal`)))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Set image?", badImage, goodImage, "Cancel"} {
		if !strings.Contains(dialog, want) {
			t.Errorf("confirm dialog %q lacks %q", dialog, want)
		}
	}
	step("cancel", 10*time.Second,
		chromedp.Click(chromedp.CSS(`#modal-deny`)),
		chromedp.WaitNotVisible(chromedp.CSS(`#modal`)),
	)

	clicked := time.Now()
	step("click again and confirm", 20*time.Second,
		chromedp.Click(setImageButton),
		chromedp.WaitVisible(chromedp.CSS(modalOpen)),
		chromedp.Click(chromedp.CSS(`#modal-confirm`)),
	)
	step("root message edited to 1/1 Running, steps in its thread", 2*time.Minute,
		chromedp.WaitVisible(resolvedHeader),
		chromedp.WaitVisible(patchedReply),
	)
	fixed := time.Since(clicked)
	step("the panel shows the Deployment ready", 30*time.Second, chromedp.WaitVisible(panelReady))
	t.Logf("click → 1/1 Running on the page in %s", fixed.Round(100*time.Millisecond))

	// What the page showed, checked where it happened.
	checkWorld(t, ctx, l)

	saveShot(t, browser, root, "demo-resolved.png")
	t.Logf("whole test %s", time.Since(began).Round(100*time.Millisecond))
}

// saveShot takes a screenshot of the page. It is written to docs/ (the
// README's pictures) only with PULLFIX_UPDATE_SCREENSHOTS=1, so a test run
// leaves the work tree clean; otherwise it goes to the test's temp dir.
func saveShot(t *testing.T, browser context.Context, root, name string) {
	t.Helper()
	saveShotOf(t, browser, root, name, chromedp.FullScreenshot(100))
}

// saveShotOf is saveShot with the screenshot action given: the phone's
// picture is its first screen (chromedp.CaptureScreenshot), not the page.
func saveShotOf(t *testing.T, browser context.Context, root, name string, action chromedp.Action[[]byte]) {
	t.Helper()
	shot, err := chromedp.Run(browser, action)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if !bytes.HasPrefix(shot, []byte("\x89PNG")) {
		t.Fatalf("screenshot is not a PNG (%d bytes)", len(shot))
	}
	out := filepath.Join(t.TempDir(), name)
	if os.Getenv("PULLFIX_UPDATE_SCREENSHOTS") == "1" {
		out = filepath.Join(root, "docs", name)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d KiB)", out, len(shot)/1024)
}

// checkWorld holds the cluster and the emulator's record to what the page
// showed: exactly one click reached the bot (the cancelled one did not), as
// alice; the Deployment runs the verified image, ready; the root message was
// edited and its thread carries the steps.
func checkWorld(t *testing.T, ctx context.Context, l *localEnv) {
	t.Helper()
	var clicks []string
	for _, env := range l.Emu.Envelopes() {
		if env.Type == "interactive" {
			clicks = append(clicks, string(env.Frame))
		}
	}
	if len(clicks) != 1 {
		t.Errorf("%d interactions reached the bot, want exactly 1 (the cancelled dialog must send none)", len(clicks))
	} else {
		var frame struct {
			Payload struct {
				User    struct{ ID string }
				Actions []struct {
					ActionID string `json:"action_id"`
				}
			}
		}
		if err := json.Unmarshal([]byte(clicks[0]), &frame); err != nil {
			t.Errorf("interaction frame: %v", err)
		}
		if frame.Payload.User.ID != aliceID || len(frame.Payload.Actions) != 1 || frame.Payload.Actions[0].ActionID != slackapp.ActionIDSetImage {
			t.Errorf("interaction = %+v, want alice's set_image click", frame.Payload)
		}
	}

	// The page reports what the emulator recorded; the Deployment is read
	// from the API server. The rollout may still be settling old pods, so
	// wait for the Deployment's own view.
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		d, err := l.CS.AppsV1().Deployments("default").Get(ctx, "ui-new", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return d.Spec.Template.Spec.Containers[0].Image == goodImage && d.Status.ReadyReplicas == 1 && d.Status.UpdatedReplicas == 1, nil
	})
	if err != nil {
		d, _ := l.CS.AppsV1().Deployments("default").Get(ctx, "ui-new", metav1.GetOptions{})
		t.Errorf("deployment ui-new never ran %s ready: %v (%+v)", goodImage, err, d.Status)
	}

	roots := l.Emu.Messages(channelID)
	if len(roots) != 1 {
		t.Fatalf("%d root messages in #pullfix, want 1 (one incident, one message)", len(roots))
	}
	if len(roots[0].Edits) == 0 || !strings.Contains(roots[0].Text, "1/1 Running") {
		t.Errorf("root message not edited to the resolved state: edits=%d text=%q", len(roots[0].Edits), roots[0].Text)
	}
	// Thread replies travel in the channel's lane, the root's edit in the
	// workspace's chat.update lane, so the rollout's reply may land just
	// after the edit the page showed: wait for it, with a bound.
	wants := []string{"Approved", "Patched", "1/1 Running"}
	var joined string
	_ = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		var thread []string
		for _, m := range l.Emu.Thread(channelID, roots[0].TS)[1:] {
			thread = append(thread, m.Text)
		}
		joined = strings.Join(thread, "\n")
		for _, want := range wants {
			if !strings.Contains(joined, want) {
				return false, nil
			}
		}
		return true, nil
	})
	for _, want := range wants {
		if !strings.Contains(joined, want) {
			t.Errorf("thread lacks %q:\n%s", want, joined)
		}
	}
}

// requireChromium finds Debian's chromium; without it the test skips with
// the command that installs it, or fails under CI=true.
func requireChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "chromium not found: `make browser` installs Debian's chromium package (apt-get install chromium)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// newBrowser starts headless Chromium with flags for a root user on a
// closed network: no sandbox, no GPU, no QUIC, and nothing that phones
// home; a fresh profile each time.
func newBrowser(t *testing.T, ctx context.Context, path string) (context.Context, func()) {
	t.Helper()
	profile, err := os.MkdirTemp("", "pullfix-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 720),
	)
	browser, cancelBrowser := chromedp.NewContext(alloc, chromedp.WithErrorf(func(format string, args ...any) {
		t.Logf("chromedp: "+format, args...)
	}))
	if err := chromedp.Do(browser); err != nil { // starts the browser
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("start %s: %v", path, err)
	}
	return browser, func() {
		cancelBrowser()
		cancelAlloc() // waits for the browser process to exit
		_ = os.RemoveAll(profile)
	}
}

// pageText is the page's visible text, for failure messages.
func pageText(browser context.Context) string {
	ctx, cancel := context.WithTimeout(browser, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	if err != nil {
		return fmt.Sprintf("(unavailable: %v)", err)
	}
	return lastLines(s, 40)
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// syncBuffer is a bytes.Buffer safe for the bot's two output streams.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPageRendersBlockKit holds the page's drawing of pullfix's own
// messages (slackapp.Render*) to Slack's: mrkdwn becomes bold, code,
// preformatted evidence and mentions with no markup left over; fix buttons
// are primary with their confirm dialog; thread replies sit under their
// root; an edited root says "(edited)"; <!date^…> becomes a date. It needs
// only the emulator and Chromium, not the cluster.
func TestPageRendersBlockKit(t *testing.T) {
	chromium := requireChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	emu, err := slackemu.New(slackemu.WithPostRate(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	emu.AddUser(aliceID, aliceName)
	emu.AddChannel(channelID, channelName)
	srv := httptest.NewServer(emu.Page(slackemu.PageAs(aliceID), slackemu.PageChannel(channelID)))
	defer srv.Close()

	api := slack.New(emu.BotToken(), slack.OptionAPIURL(emu.APIURL()))
	in := slackapp.MessageInput{
		Cluster: "local", Namespace: "default", Kind: "Deployment", Name: "ui-new", Container: "ui",
		Image: badImage, PodCount: 1, IncidentID: "inc1",
		Diagnosis: diagnose.Diagnosis{
			Cause:   diagnose.RepoNotFound,
			Summary: `The repository of "` + badImage + `" does not exist <here> & now.`,
			Evidence: []diagnose.Evidence{
				{Source: diagnose.FromKubelet, Text: badImage + ": not found"},
				{Source: diagnose.FromProbe, Text: "GET /v2/…/manifests/1.2.1: NAME_UNKNOWN"},
			},
			Remedy:     "Check the repository path for a typo.",
			Candidates: []diagnose.Candidate{{ID: "c1", Image: goodImage, Kind: diagnose.CandidateRepository, Digest: "sha256:729b9e4a3a9570a7", Reason: "closest existing repository"}},
			Confidence: diagnose.ConfidenceHigh,
		},
	}
	open := slackapp.Render(in)
	_, ts, err := api.PostMessageContext(ctx, channelID, open.MsgOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	// The details reply, as the bot posts it under every incident.
	if _, _, err := api.PostMessageContext(ctx, channelID, append(slackapp.RenderDetails(in).MsgOptions(), slack.MsgOptionTS(ts))...); err != nil {
		t.Fatal(err)
	}
	until := time.Date(2030, 1, 2, 15, 4, 0, 0, time.UTC)
	reply := slackapp.RenderThreadUpdate(slackapp.ThreadUpdate{Cluster: "local", Namespace: "default", Kind: "Deployment",
		Name: "ui-new", Event: slackapp.UpdateSnoozed, Actor: aliceID, Until: until})
	if _, _, err := api.PostMessageContext(ctx, channelID, append(reply.MsgOptions(), slack.MsgOptionTS(ts))...); err != nil {
		t.Fatal(err)
	}
	in.State, in.Actor, in.Until = slackapp.StateSnoozed, aliceID, until
	if _, _, _, err := api.UpdateMessageContext(ctx, channelID, ts, slackapp.Render(in).MsgOptions()...); err != nil {
		t.Fatal(err)
	}

	browser, closeBrowser := newBrowser(t, ctx, chromium)
	defer closeBrowser()
	if err := chromedp.Do(browser, chromedp.Navigate(srv.URL), chromedp.WaitVisible(chromedp.CSS(`.reply`))); err != nil {
		t.Fatalf("load: %v (page text: %q)", err, pageText(browser))
	}
	type drawn struct {
		Header   string   `json:"header"`
		Bold     []string `json:"bold"`
		Pre      []string `json:"pre"`
		Code     []string `json:"code"`
		Primary  []string `json:"primary"`
		Mentions []string `json:"mentions"`
		Edited   bool     `json:"edited"`
		Replies  []string `json:"replies"`
		Text     string   `json:"text"`
	}
	got, err := chromedp.Run(browser, chromedp.Evaluate[drawn](`(() => {
		const root = document.querySelector('.msg');
		const all = (sel, from) => [...(from || root).querySelectorAll(sel)].map(n => n.innerText.trim());
		return {
			header: root.querySelector('.b-header').innerText,
			bold: all('b', document), pre: all('pre', document), code: all('code', document),
			primary: all('button.btn.primary'),
			mentions: all('.mention', document),
			edited: !!root.querySelector(':scope > .body > .edited'),
			replies: all('.reply .blocks'),
			text: document.body.innerText,
		};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if got.Header != "ui-new: repository not found" {
		t.Errorf("header %q", got.Header)
	}
	for _, want := range []string{"Snoozed", "Kubelet said:", "What to do:", "Details", "Verified fix", "How the fix was found:"} {
		if !slices.Contains(got.Bold, want) && !slices.ContainsFunc(got.Bold, func(b string) bool { return strings.HasPrefix(b, want) }) {
			t.Errorf("bold %q missing from %q", want, got.Bold)
		}
	}
	if len(got.Pre) != 2 || got.Pre[0] != badImage+": not found" {
		t.Errorf("evidence blocks %q", got.Pre)
	}
	if !slices.Contains(got.Code, goodImage) || !slices.Contains(got.Code, "default/ui-new") {
		t.Errorf("inline code %q lacks the candidate image and the workload", got.Code)
	}
	if len(got.Primary) != 1 || got.Primary[0] != "Set image to "+goodImage {
		t.Errorf("primary buttons %q", got.Primary)
	}
	if len(got.Mentions) < 2 || got.Mentions[0] != "@alice" {
		t.Errorf("mentions %q, want @alice in the root and the reply", got.Mentions)
	}
	if !got.Edited {
		t.Error("the edited root does not say (edited)")
	}
	if len(got.Replies) != 2 || !strings.HasPrefix(got.Replies[0], "Details") || !strings.Contains(got.Replies[1], "Snoozed by @alice until") || !strings.Contains(got.Replies[1], "2030") {
		t.Errorf("thread replies %q", got.Replies)
	}
	for _, leak := range []string{"```", "*What to do", "<@", "<!date", "&lt;", "&amp;", "_verified"} {
		if strings.Contains(got.Text, leak) {
			t.Errorf("mrkdwn leaked %q into the page:\n%s", leak, got.Text)
		}
	}
	if !strings.Contains(got.Text, "does not exist <here> & now.") {
		t.Errorf("escaped text not shown as written:\n%s", got.Text)
	}

	// The confirm dialog shows Block Kit's texts; Cancel sends nothing.
	if err := chromedp.Do(browser, chromedp.Click(setImageButton), chromedp.WaitVisible(chromedp.CSS(modalOpen))); err != nil {
		t.Fatal(err)
	}
	dialog, err := chromedp.Run(browser, chromedp.Text(chromedp.CSS(`#modal`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dialog, "Set image?") || !strings.Contains(dialog, badImage+" → "+goodImage) || !strings.Contains(dialog, "Cancel") {
		t.Errorf("dialog %q", dialog)
	}
	if err := chromedp.Do(browser, chromedp.Click(chromedp.CSS(`#modal-deny`)), chromedp.WaitNotVisible(chromedp.CSS(`#modal`))); err != nil {
		t.Fatal(err)
	}
	if n := len(emu.Envelopes()); n != 0 {
		t.Errorf("cancel delivered %d envelopes", n)
	}
}
