package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/slack-go/slack"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/slackapp"
	"github.com/pullfix/pullfix/internal/testenv/slackemu"
)

// phoneCase is one message as the channel shows it: the root (and its
// details reply, as the bot posts it), and what must be visible on a
// phone without scrolling.
type phoneCase struct {
	name    string
	root    slackapp.Message
	details slackapp.Message
	// title, cause and button: texts of the header, the evidence line
	// and the button that must be on the first screen.
	title, cause, button string
}

// phoneCases are the runbook's message, one storm group, and the
// access-denied and timeout branches, rendered by slackapp as the bot
// renders them.
func phoneCases() []phoneCase {
	runbook := slackapp.MessageInput{
		Cluster: "local", Namespace: "default", Kind: "Deployment", Name: "ui-new", Container: "ui",
		Image: badImage, PodCount: 1, IncidentID: "inc-20260504-ui-new",
		Diagnosis: diagnose.Diagnosis{
			Cause:     diagnose.RepoNotFound,
			Certainty: diagnose.CertaintyRegistry,
			Summary:   `The repository of "` + badImage + `" does not exist on public.ecr.aws: the registry said so when pullfix asked.`,
			Evidence: []diagnose.Evidence{
				{Source: diagnose.FromKubelet, Text: `failed to pull and unpack image "` + badImage + `": failed to resolve reference "` + badImage + `": ` + badImage + `: not found`},
				{Source: diagnose.FromProbe, Text: "GET manifest answered 404 NAME_UNKNOWN with the pod's credentials"},
			},
			Probes: []diagnose.ProbeStep{
				{Request: "GET public.ecr.aws/v2/", Result: "error: tls: first record does not look like a TLS handshake", Duration: 2 * time.Millisecond},
				{Request: "GET public.ecr.aws/v2/", Result: "401", Duration: 3 * time.Millisecond},
				{Request: "GET public.ecr.aws/token?scope=repository:aws-containers/retailing-store-sample-ui:pull", Result: "200", Duration: 4 * time.Millisecond},
				{Request: "GET public.ecr.aws/v2/aws-containers/retailing-store-sample-ui/manifests/1.2.1", Result: "404 NAME_UNKNOWN", Duration: 3 * time.Millisecond},
				{Request: "HEAD public.ecr.aws/v2/aws-containers/retail-store-sample-ui/manifests/1.2.1", Result: "200 sha256:729b9e4a3a9570a7c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5", Duration: 3 * time.Millisecond},
			},
			ProbeDuration: 15 * time.Millisecond,
			Remedy:        "Check the repository path for a typo (organisation, project, hyphens and plurals); pick the closest existing repository or the image of the last working revision, and update the workload's image.",
			Candidates: []diagnose.Candidate{{ID: "c1", Image: goodImage, Kind: diagnose.CandidateRepository,
				Digest: "sha256:729b9e4a3a9570a7c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5",
				Reason: `the closest existing repository name to "retailing-store-sample-ui" (3 letters away, from the registry's catalog), with the same tag 1.2.1`}},
			Confidence: diagnose.ConfidenceHigh,
		},
	}

	denied := runbook
	denied.IncidentID = "inc-20260504-denied"
	denied.Image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/ui:1.2.1"
	denied.ProvenSecrets = []string{"regcred"}
	denied.Diagnosis = diagnose.Diagnosis{
		Cause:     diagnose.AccessDenied,
		Certainty: diagnose.CertaintyRegistry,
		Summary:   "The registry refused the node's credentials for this image.",
		Evidence: []diagnose.Evidence{
			{Source: diagnose.FromKubelet, Text: `failed to pull and unpack image "` + denied.Image + `": failed to resolve reference: pull access denied, repository does not exist or may require authorization: authorization failed: no basic auth credentials`},
		},
		Probes: []diagnose.ProbeStep{
			{Request: "GET 123456789012.dkr.ecr.eu-west-1.amazonaws.com/v2/", Result: "401", Duration: 3 * time.Millisecond},
			{Request: "GET 123456789012.dkr.ecr.eu-west-1.amazonaws.com/v2/shop/ui/manifests/1.2.1", Result: "403 DENIED", Duration: 3 * time.Millisecond},
		},
		Remedy: "Give the node role ecr:GetAuthorizationToken, ecr:BatchGetImage and ecr:GetDownloadUrlForLayer (AmazonEC2ContainerRegistryReadOnly), or add an imagePullSecret whose credentials the registry accepts.",
	}

	timeout := runbook
	timeout.IncidentID = "inc-20260504-timeout"
	timeout.Image = goodImage
	timeout.Diagnosis = diagnose.Diagnosis{
		Cause:     diagnose.NetworkTimeout,
		Certainty: diagnose.CertaintyWords,
		NodeSide:  true,
		Summary:   "The node could not reach public.ecr.aws in time.",
		Evidence: []diagnose.Evidence{
			{Source: diagnose.FromKubelet, Text: `failed to pull and unpack image "` + goodImage + `": failed to resolve reference: failed to do request: Head "https://public.ecr.aws/v2/aws-containers/retail-store-sample-ui/manifests/1.2.1": dial tcp 99.83.145.10:443: i/o timeout`},
		},
		Remedy: "Check node egress to the registry: a route through a NAT gateway, internet gateway or transit gateway, security groups and network ACLs allowing outbound 443, the HTTP(S) proxy settings of the container runtime, and VPC endpoints for private registries.",
	}

	group := slackapp.GroupInput{Cluster: "local", GroupID: "grp-public-ecr", Diagnosis: diagnose.Diagnosis{
		Cause:     diagnose.RegistryUnavailable,
		Certainty: diagnose.CertaintyRegistry,
		Summary:   "public.ecr.aws answers 503: the registry, or the proxy in front of it, is failing.",
		Evidence:  []diagnose.Evidence{{Source: diagnose.FromKubelet, Text: "unexpected status from HEAD request: 503 Service Unavailable"}},
		Probes:    []diagnose.ProbeStep{{Request: "HEAD public.ecr.aws/v2/aws-containers/retail-store-sample-cart/manifests/1.2.1", Result: "503", Duration: 9 * time.Millisecond}},
		Remedy:    "Wait for the registry to recover, or point the workloads at a mirror.",
	}}
	for i, n := range []string{"cart", "catalog", "checkout", "orders", "ui"} {
		group.Workloads = append(group.Workloads, slackapp.GroupWorkload{Namespace: "retail", Kind: "Deployment", Name: n, Container: n,
			Image: "public.ecr.aws/aws-containers/retail-store-sample-" + n + ":1.2.1", PodCount: 1 + i%2})
	}

	return []phoneCase{
		{name: "runbook", root: slackapp.Render(runbook), details: slackapp.RenderDetails(runbook),
			title: "ui-new: repository not found", cause: "NAME_UNKNOWN", button: "Set image to " + goodImage},
		{name: "storm group", root: slackapp.RenderGroup(group), details: slackapp.RenderGroupDetails(group),
			title: "5 workloads: registry unavailable", cause: "HTTP 503", button: "Re-check"},
		{name: "access denied", root: slackapp.Render(denied), details: slackapp.RenderDetails(denied),
			title: "ui-new: access to the image denied", cause: "DENIED", button: "Add imagePullSecret regcred"},
		{name: "timeout", root: slackapp.Render(timeout), details: slackapp.RenderDetails(timeout),
			title: "ui-new: registry unreachable (timeout)", cause: "i/o timeout", button: "Re-check"},
	}
}

// box is an element's bounding box in CSS pixels, and the viewport's size.
type box struct {
	Found  bool    `json:"found"`
	Top    float64 `json:"top"`
	Bottom float64 `json:"bottom"`
	Left   float64 `json:"left"`
	Right  float64 `json:"right"`
	VW     float64 `json:"vw"`
	VH     float64 `json:"vh"`
}

func (b box) String() string {
	return fmt.Sprintf("[%.0f,%.0f]-[%.0f,%.0f] in %.0f×%.0f", b.Left, b.Top, b.Right, b.Bottom, b.VW, b.VH)
}

func (b box) onFirstScreen() bool {
	return b.Found && b.Top >= 0 && b.Left >= 0 && b.Bottom <= b.VH && b.Right <= b.VW
}

// measure finds, in the root message, the header, the block holding
// cause, the button labelled button, and the root's own height (without
// its thread).
func measure(ctx context.Context, c phoneCase) (title, cause, button, root box, err error) {
	var got struct {
		Title, Cause, Button, Root box
	}
	js := fmt.Sprintf(`(() => {
		const vw = window.innerWidth, vh = window.innerHeight;
		const bx = n => { if (!n) return {found: false}; const r = n.getBoundingClientRect();
			return {found: true, top: r.top, bottom: r.bottom, left: r.left, right: r.right, vw, vh}; };
		const root = document.querySelector('.msg');
		const body = root && root.querySelector(':scope > .body');
		const find = (sel, text) => body && [...body.querySelectorAll(sel)].find(n => n.innerText.includes(text));
		return {
			Title: bx(find('.b-header', %q)),
			Cause: bx(find('.b-section, .b-context', %q)),
			Button: bx(find('button', %q)),
			Root: bx(body),
		};
	})()`, c.title, c.cause, c.button)
	got, err = chromedp.Run(ctx, chromedp.Evaluate[struct{ Title, Cause, Button, Root box }](js))
	return got.Title, got.Cause, got.Button, got.Root, err
}

// TestMessageFitsAPhone: paged at night on a phone (390 × 844), the
// on-call engineer sees what broke, why in one line, and the button that
// fixes it, without scrolling; at 1,280 px the root message is at most
// 400 px tall. The runbook's message, a storm group and the access-denied
// and timeout branches, each posted through the Slack emulator with its
// details reply and drawn by the emulator's page in headless Chromium.
func TestMessageFitsAPhone(t *testing.T) {
	chromium := requireChromium(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	browser, closeBrowser := newBrowser(t, ctx, chromium)
	defer closeBrowser()

	for _, c := range phoneCases() {
		t.Run(c.name, func(t *testing.T) {
			for _, m := range []slackapp.Message{c.root, c.details} {
				if err := m.Validate(); err != nil {
					t.Fatal(err)
				}
			}
			emu, err := slackemu.New(slackemu.WithPostRate(0, 1))
			if err != nil {
				t.Fatal(err)
			}
			defer emu.Close()
			emu.AddUser(aliceID, aliceName)
			emu.AddChannel(channelID, channelName)
			srv := httptest.NewServer(emu.Page(slackemu.PageAs(aliceID), slackemu.PageChannel(channelID)))
			// The page holds a connection open to follow the channel; the
			// browser, shared by the cases, leaves it before the server
			// closes.
			defer func() {
				lctx, lcancel := context.WithTimeout(browser, 10*time.Second)
				defer lcancel()
				_ = chromedp.Do(lctx, chromedp.Navigate("about:blank"))
				srv.CloseClientConnections()
				srv.Close()
			}()
			api := slack.New(emu.BotToken(), slack.OptionAPIURL(emu.APIURL()))
			_, ts, err := api.PostMessageContext(ctx, channelID, c.root.MsgOptions()...)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := api.PostMessageContext(ctx, channelID, append(c.details.MsgOptions(), slack.MsgOptionTS(ts))...); err != nil {
				t.Fatal(err)
			}

			for _, vp := range []struct {
				w, h  int
				phone bool
			}{{390, 844, true}, {1280, 800, false}} {
				sctx, scancel := context.WithTimeout(browser, 30*time.Second)
				err := chromedp.Do(sctx,
					chromedp.EmulateViewport(int64(vp.w), int64(vp.h)),
					chromedp.Navigate(srv.URL),
					chromedp.WaitVisible(chromedp.CSS(`.reply`)),
				)
				scancel()
				if err != nil {
					t.Fatalf("load at %d×%d: %v (page text: %q)", vp.w, vp.h, err, pageText(browser))
				}
				title, cause, button, root, err := measure(browser, c)
				if err != nil {
					t.Fatal(err)
				}
				t.Logf("%d×%d: title %s, cause %s, button %s, root message %.0f px tall", vp.w, vp.h, title, cause, button, root.Bottom-root.Top)
				if vp.phone {
					for _, e := range []struct {
						what string
						b    box
					}{{"title " + c.title, title}, {"cause line " + c.cause, cause}, {"button " + c.button, button}} {
						if !e.b.onFirstScreen() {
							t.Errorf("at %d×%d the %s is not on the first screen: found=%v %s", vp.w, vp.h, e.what, e.b.Found, e.b)
						}
					}
					if c.name == "runbook" {
						saveShotOf(t, browser, mustRepoRoot(t), "demo-phone.png", chromedp.CaptureScreenshot())
					}
				} else if h := root.Bottom - root.Top; !root.Found || h > 400 {
					t.Errorf("at %d px wide the root message is %.0f px tall, want at most 400", vp.w, h)
				}
			}
			// The details are one thread away: the reply holds the
			// kubelet's words.
			if th := emu.Thread(channelID, ts); len(th) != 2 || !strings.HasPrefix(th[1].Text, "Details: ") {
				t.Errorf("thread %d messages, want the root and its details reply", len(th))
			}
		})
	}
}

func mustRepoRoot(t *testing.T) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}
