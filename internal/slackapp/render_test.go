package slackapp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/testenv/slackemu"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.json from the current rendering")

// causeMessages is one real kubelet message per cause (from
// internal/diagnose/testdata/pull-errors.jsonl and facts/kubelet.md), so the
// goldens show what people will actually read.
var causeMessages = map[diagnose.Cause][2]string{
	diagnose.RepoNotFound:           {"Failed", `Failed to pull image "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1": rpc error: code = NotFound desc = failed to pull and unpack image "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1": failed to resolve reference "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1": public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1: not found`},
	diagnose.TagNotFound:            {"Failed", `Failed to pull image "nginx:1.27.9": rpc error: code = Unknown desc = Error response from daemon: manifest for nginx:1.27.9 not found: manifest unknown: manifest unknown`},
	diagnose.ImageNotFound:          {"Failed", `Failed to pull image "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1": rpc error: code = NotFound desc = failed to pull and unpack image "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1": failed to resolve reference "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1": public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1: not found`},
	diagnose.RegistryUnavailable:    {"Failed", `Failed to pull image "quay.io/acme/api:1.0": rpc error: code = Unknown desc = failed to pull and unpack image "quay.io/acme/api:1.0": failed to resolve reference "quay.io/acme/api:1.0": unexpected status from HEAD request to https://quay.io/v2/acme/api/manifests/1.0: 503 Service Unavailable`},
	diagnose.DigestNotFound:         {"Failed", `Failed to pull image "ghcr.io/acme/api@sha256:0000000000000000000000000000000000000000000000000000000000000001": rpc error: code = NotFound desc = failed to pull and unpack image "ghcr.io/acme/api@sha256:0000000000000000000000000000000000000000000000000000000000000001": failed to resolve reference "ghcr.io/acme/api@sha256:0000000000000000000000000000000000000000000000000000000000000001": ghcr.io/acme/api@sha256:0000000000000000000000000000000000000000000000000000000000000001: not found`},
	diagnose.NotFoundOrUnauthorized: {"Failed", `Failed to pull image "acme/private-api:2.0": rpc error: code = Unknown desc = Error response from daemon: pull access denied for acme/private-api, repository does not exist or may require 'docker login': denied: requested access to the resource is denied`},
	diagnose.Unauthorized:           {"Failed", `Failed to pull image "registry.acme.io/team/api:1.0": rpc error: code = Unknown desc = failed to pull and unpack image "registry.acme.io/team/api:1.0": failed to resolve reference "registry.acme.io/team/api:1.0": pulling from host registry.acme.io failed with status code [manifests 1.0]: 401 Unauthorized`},
	diagnose.AccessDenied:           {"Failed", `Failed to pull image "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:1.0": rpc error: code = Unknown desc = failed to pull and unpack image "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:1.0": failed to resolve reference "123456789012.dkr.ecr.eu-west-1.amazonaws.com/api:1.0": unexpected status from HEAD request to https://123456789012.dkr.ecr.eu-west-1.amazonaws.com/v2/api/manifests/1.0: 403 Forbidden`},
	diagnose.CredentialsExpired:     {"Failed", `Failed to pull image "123456789012.dkr.ecr.us-east-1.amazonaws.com/api:1.0": rpc error: code = Unknown desc = Error response from daemon: pull access denied for 123456789012.dkr.ecr.us-east-1.amazonaws.com/api, repository does not exist or may require 'docker login': denied: Your authorization token has expired. Reauthenticate and try again.`},
	diagnose.RateLimited:            {"Failed", `Failed to pull image "redis:7": rpc error: code = Unknown desc = failed to pull and unpack image "docker.io/library/redis:7": failed to copy: httpReadSeeker: failed open: unexpected status code https://registry-1.docker.io/v2/library/redis/manifests/sha256:abc: 429 Too Many Requests - Server message: toomanyrequests: You have reached your pull rate limit. You may increase the limit by authenticating and upgrading: https://www.docker.com/increase-rate-limit`},
	diagnose.DNSFailure:             {"Failed", `Failed to pull image "registy.acme.io/api:1.0": rpc error: code = Unknown desc = failed to pull and unpack image "registy.acme.io/api:1.0": failed to resolve reference "registy.acme.io/api:1.0": failed to do request: Head "https://registy.acme.io/v2/api/manifests/1.0": dial tcp: lookup registy.acme.io on 10.96.0.10:53: no such host`},
	diagnose.NetworkTimeout:         {"Failed", `Failed to pull image "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1": rpc error: code = Unknown desc = failed to pull and unpack image "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1": failed to resolve reference "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1": failed to do request: Head "https://public.ecr.aws/v2/aws-containers/retail-store-sample-ui/manifests/1.2.1": dial tcp 99.83.145.10:443: i/o timeout`},
	diagnose.ConnectionRefused:      {"Failed", `Failed to pull image "localhost:5000/repository:latest": rpc error: code = Unknown desc = Error response from daemon: Get http://localhost:5000/v2/: dial tcp 127.0.0.1:5000: connect: connection refused`},
	diagnose.TLSError:               {"Failed", `Failed to pull image "registry.internal:5000/api:1.0": rpc error: code = Unknown desc = failed to pull and unpack image "registry.internal:5000/api:1.0": failed to resolve reference "registry.internal:5000/api:1.0": failed to do request: Head "https://registry.internal:5000/v2/api/manifests/1.0": tls: failed to verify certificate: x509: certificate signed by unknown authority`},
	diagnose.HTTPVsHTTPS:            {"Failed", `Failed to pull image "10.0.0.5:5000/api:1.0": rpc error: code = Unknown desc = failed to pull and unpack image "10.0.0.5:5000/api:1.0": failed to resolve reference "10.0.0.5:5000/api:1.0": failed to do request: Head "https://10.0.0.5:5000/v2/api/manifests/1.0": http: server gave HTTP response to HTTPS client`},
	diagnose.PlatformMismatch:       {"Failed", `Failed to pull image "ghcr.io/acme/arm-only:1.0": rpc error: code = NotFound desc = failed to pull and unpack image "ghcr.io/acme/arm-only:1.0": no match for platform in manifest: not found`},
	diagnose.InvalidReference:       {"InvalidImageName", `Failed to apply default image tag "ghcr.io/acme/API:{{ .Values.tag }}": couldn't parse image name "ghcr.io/acme/API:{{ .Values.tag }}": invalid reference format: repository name must be lowercase`},
	diagnose.NeverPull:              {"ErrImageNeverPull", `Container image "acme/local-only:dev" is not present with pull policy of Never`},
	diagnose.UnpackFailed:           {"Failed", `Failed to pull image "ghcr.io/acme/big:1.0": rpc error: code = Unknown desc = failed to pull and unpack image "ghcr.io/acme/big:1.0": failed to extract layer sha256:1111111111111111111111111111111111111111111111111111111111111111: write /var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/42/fs/usr/lib/libbig.so: no space left on device: unknown`},
	diagnose.Unknown:                {"Failed", `Failed to pull image "ghcr.io/acme/odd:1.0": rpc error: code = Unknown desc = something nobody has seen before happened`},
}

// fixtureDiagnosis builds a realistic Diagnosis: the offline classifier's
// words for the message, a probe step, and verified candidates for the
// not-found causes (the runbook's shape: the last healthy revision and the
// nearest existing name).
func fixtureDiagnosis(t testing.TB, c diagnose.Cause) diagnose.Diagnosis {
	t.Helper()
	rm, ok := causeMessages[c]
	if !ok {
		t.Fatalf("no fixture message for cause %s", c)
	}
	cl := diagnose.Classify(rm[0], rm[1])
	image := cl.Image
	if image == "" {
		image = "ghcr.io/acme/app:1.0"
	}
	d := diagnose.Diagnosis{
		Target: diagnose.Target{
			Cluster: "prod-eu", Namespace: "retail", Kind: "Deployment", Name: "ui-new", Container: "ui",
			Image: image, Reason: rm[0], Message: rm[1],
		},
		Cause:      c, // the fixture pins the cause; the classifier supplies the words
		Summary:    cl.Summary,
		Remedy:     cl.Remedy,
		Confidence: diagnose.ConfidenceHigh,
		Certainty:  diagnose.CertaintyWords,
		Evidence:   []diagnose.Evidence{{Source: diagnose.FromKubelet, Text: cl.Evidence}},
	}
	if cl.Cause != c || d.Summary == "" {
		s, r := diagnose.Describe(c, image, cl.Registry)
		d.Summary, d.Remedy = s, r
	}
	if cl.Evidence == "" {
		d.Evidence[0].Text = rm[1]
	}
	switch c {
	case diagnose.RepoNotFound, diagnose.TagNotFound, diagnose.DigestNotFound:
		// Settled by the registry, as the probe does: it says so.
		d.Certainty = diagnose.CertaintyRegistry
		d.Summary, d.Remedy = diagnose.DescribeSettled(c, image, cl.Registry)
	case diagnose.ImageNotFound:
		// The probe could not reach the registry: the words stand.
		d.Confidence = diagnose.ConfidenceMedium
		d.Evidence = append(d.Evidence, diagnose.Evidence{Source: diagnose.FromProbe, Text: "registry probe: Registry unreachable (timeout): context deadline exceeded"})
	}
	switch c {
	case diagnose.RepoNotFound, diagnose.TagNotFound, diagnose.DigestNotFound, diagnose.NotFoundOrUnauthorized, diagnose.PlatformMismatch:
		code := "NAME_UNKNOWN"
		if c == diagnose.TagNotFound || c == diagnose.DigestNotFound {
			code = "MANIFEST_UNKNOWN"
		}
		d.Evidence = append(d.Evidence, diagnose.Evidence{Source: diagnose.FromProbe, Text: "GET manifest answered 404 " + code + " with the pod's credentials"})
		d.Probes = []diagnose.ProbeStep{
			{Request: "GET " + image, Result: "404 " + code, Duration: 41 * time.Millisecond},
			{Request: "GET public.ecr.aws/v2/aws-containers/retail-store-sample-ui/tags/list", Result: "ok 12 tags", Duration: 63 * time.Millisecond},
		}
		d.ProbeDuration = 104 * time.Millisecond
		d.Candidates = []diagnose.Candidate{
			{ID: "c1", Image: "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.0", Kind: diagnose.CandidateLastHealthy,
				Digest: "sha256:5d41402abc4b2a76b9719d911017c592ae6f7a1b9f8a3c2d1e0f9a8b7c6d5e4f", Reason: "revision 3 of ui-new ran it until 10:02"},
			{ID: "c2", Image: "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1", Kind: diagnose.CandidateRepository,
				Digest: "sha256:7c211433f02071597741e6ff5a8ea34789abbf43a1b2c3d4e5f60718293a4b5c", Reason: `closest existing repository to "retailing-store-sample-ui" (edit distance 3)`},
		}
	case diagnose.NetworkTimeout:
		d.NodeSide = true
		d.Confidence = diagnose.ConfidenceMedium
		d.Evidence = append(d.Evidence, diagnose.Evidence{Source: diagnose.FromProbe, Text: "HEAD from the bot's pod: 200 OK in 88ms"})
		d.Probes = []diagnose.ProbeStep{{Request: "HEAD " + image, Result: "ok sha256:7c211433f020", Duration: 88 * time.Millisecond}}
		d.ProbeDuration = 88 * time.Millisecond
	}
	return d
}

func fixtureInput(t testing.TB, c diagnose.Cause) MessageInput {
	d := fixtureDiagnosis(t, c)
	in := MessageInput{
		Cluster: "prod-eu", Namespace: "retail", Kind: "Deployment", Name: "ui-new", Container: "ui",
		Image: d.Target.Image, PodCount: 2, IncidentID: "inc-7f3a9c", Diagnosis: d,
	}
	if c == diagnose.Unauthorized || c == diagnose.NotFoundOrUnauthorized {
		in.ProvenSecrets = []string{"regcred"}
	}
	return in
}

// golden compares m's JSON with testdata/golden/name.json (or rewrites it
// with -update), and checks it against Slack's limits.
func golden(t *testing.T, name string, m Message) {
	t.Helper()
	if err := m.Validate(); err != nil {
		t.Errorf("%s: %v", name, err)
	}
	got, err := json.MarshalIndent(struct {
		Text   string        `json:"text"`
		Blocks []slack.Block `json:"blocks"`
	}{m.Text, m.Blocks}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/slackapp -run TestGolden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s (run with -update to accept):\n%s", name, path, firstDiff(string(want), string(got)))
	}
}

func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\n- %s\n+ %s", i+1, w, g)
		}
	}
	return "(identical lines, different bytes)"
}

// goldenCases are every message pinned by a golden file.
func goldenCases(t testing.TB) map[string]Message {
	cases := map[string]Message{}
	for _, c := range diagnose.Causes() {
		cases["cause_"+string(c)] = Render(fixtureInput(t, c))
	}
	base := fixtureInput(t, diagnose.RepoNotFound)

	fixing := base
	fixing.State, fixing.Actor, fixing.FixAction, fixing.FixImage = StateFixing, "U0APPROVER", ActionSetImage, "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1"
	cases["state_fixing"] = Render(fixing)

	resolved := base
	resolved.State, resolved.Actor, resolved.FixImage, resolved.Ready = StateResolved, "U0APPROVER", "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1", "1/1"
	cases["state_resolved"] = Render(resolved)

	elsewhere := resolved
	elsewhere.Actor = ""
	cases["state_resolved_elsewhere"] = Render(elsewhere)

	still := fixtureInput(t, diagnose.PlatformMismatch)
	still.State, still.FixImage = StateStillFailing, "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1"
	cases["state_still_failing"] = Render(still)

	dismissed := base
	dismissed.State, dismissed.Actor = StateDismissed, "U0ONCALL"
	cases["state_dismissed"] = Render(dismissed)

	snoozed := base
	snoozed.State, snoozed.Actor, snoozed.Until = StateSnoozed, "U0ONCALL", time.Date(2026, 5, 4, 13, 30, 0, 0, time.UTC)
	cases["state_snoozed"] = Render(snoozed)

	for _, c := range []diagnose.Cause{diagnose.RepoNotFound, diagnose.AccessDenied, diagnose.NetworkTimeout, diagnose.HTTPVsHTTPS} {
		cases["details_"+string(c)] = RenderDetails(fixtureInput(t, c))
	}
	cases["group_details"] = RenderGroupDetails(groupInput(t, 3))
	cases["long_evidence_truncated"] = Render(longEvidenceInput(t))
	cases["group"] = RenderGroup(groupInput(t, 60))
	cases["group_small"] = RenderGroup(groupInput(t, 3))

	tu := ThreadUpdate{Cluster: "prod-eu", Namespace: "retail", Kind: "Deployment", Name: "ui-new", Container: "ui",
		Actor: "U0APPROVER", OldImage: "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1", NewImage: "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1"}
	for _, ev := range []UpdateEvent{UpdateApproved, UpdatePatched, UpdateProgress, UpdateResolved, UpdateResolvedElsewhere, UpdateFailed, UpdateRefused, UpdateRechecked, UpdateSnoozed, UpdateDismissed} {
		u := tu
		u.Event = ev
		u.Desired, u.Updated, u.Ready = 3, 2, 1
		switch ev {
		case UpdatePatched:
			u.Patch = `[{"op":"test","path":"/spec/template/spec/containers/0/image","value":"public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1"},{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1"}]`
		case UpdateResolved:
			u.Updated, u.Ready = 3, 3
		case UpdateRefused:
			u.Note = "the image changed since the diagnosis: now ghcr.io/acme/ui:2.0 (someone ran kubectl set image)"
		case UpdateFailed:
			u.Note = "deadline of 5m0s passed"
		case UpdateSnoozed:
			u.Until = time.Date(2026, 5, 4, 13, 30, 0, 0, time.UTC)
		}
		cases["thread_"+string(ev)] = RenderThreadUpdate(u)
	}
	cases["healthy"] = RenderHealthy(HealthyInput{Cluster: "prod-eu", Namespace: "retail", Kind: "Deployment", Name: "ui", Ready: 3, Desired: 3,
		Images: []string{"public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1"}})
	cases["list"] = RenderList(ListInput{Cluster: "prod-eu", Items: []ListItem{
		{IncidentID: "inc-1", Namespace: "retail", Kind: "Deployment", Name: "ui-new", Container: "ui", Cause: diagnose.RepoNotFound, State: StateOpen, PodCount: 1, Since: time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC), Permalink: "https://pullfix-test.slack.com/archives/C1/p1"},
		{IncidentID: "inc-2", Namespace: "payments", Kind: "StatefulSet", Name: "db", Container: "postgres", Cause: diagnose.RateLimited, State: StateSnoozed, PodCount: 3},
	}})
	cases["list_empty"] = RenderList(ListInput{Cluster: "prod-eu", Namespace: "retail"})
	maps.Copy(cases, gitopsGoldenCases(t)) // render_gitops_test.go
	cases["help"] = RenderHelp()
	cases["error"] = RenderError(`unknown flag "--foo": flags are -n NAMESPACE (or --namespace=NAMESPACE) and --help`)
	return cases
}

func longEvidenceInput(t testing.TB) MessageInput {
	in := fixtureInput(t, diagnose.Unknown)
	long := strings.Repeat("layer sha256:0123456789abcdef extraction failed; ", 150) // ≈7,500 characters
	in.Diagnosis.Evidence = []diagnose.Evidence{
		{Source: diagnose.FromKubelet, Text: long},
		{Source: diagnose.FromProbe, Text: "HEAD manifest: 200 OK"},
		{Source: diagnose.FromKubelet, Text: long + "tail"},
	}
	return in
}

func groupInput(t testing.TB, n int) GroupInput {
	d := fixtureDiagnosis(t, diagnose.NetworkTimeout)
	g := GroupInput{Cluster: "prod-eu", GroupID: "grp-public-ecr", Diagnosis: d}
	for i := range n {
		g.Workloads = append(g.Workloads, GroupWorkload{Namespace: fmt.Sprintf("team-%02d", i%7), Kind: "Deployment",
			Name: fmt.Sprintf("service-%03d", i), Container: "app", Image: fmt.Sprintf("public.ecr.aws/acme/service-%03d:1.0", i), PodCount: 1 + i%3})
	}
	return g
}

// TestGolden pins every message's JSON, one file per cause and per state.
func TestGolden(t *testing.T) {
	cases := goldenCases(t)
	for name, m := range cases {
		t.Run(name, func(t *testing.T) { golden(t, name, m) })
	}
	// No stale golden file: every file has a case.
	files, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.json"))
	for _, f := range files {
		if _, ok := cases[strings.TrimSuffix(filepath.Base(f), ".json")]; !ok && !*update {
			t.Errorf("golden file %s has no test case", f)
		}
	}
	if got := len(diagnose.Causes()); got != 20 {
		t.Errorf("diagnose.Causes() has %d causes; the goldens cover each one", got)
	}
}

// buttonsOf lists the buttons of a message (accessories and actions).
func buttonsOf(m Message) []*slack.ButtonBlockElement {
	var out []*slack.ButtonBlockElement
	for _, b := range m.Blocks {
		switch b := b.(type) {
		case *slack.SectionBlock:
			if b.Accessory != nil && b.Accessory.ButtonElement != nil {
				out = append(out, b.Accessory.ButtonElement)
			}
		case *slack.ActionBlock:
			for _, el := range b.Elements.ElementSet {
				if btn, ok := el.(*slack.ButtonBlockElement); ok {
					out = append(out, btn)
				}
			}
		}
	}
	return out
}

func allText(m Message) string {
	js, _ := json.Marshal(m.Blocks)
	var sb strings.Builder
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if s, ok := v["text"].(string); ok {
				sb.WriteString(s + "\n")
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var any_ any
	_ = json.Unmarshal(js, &any_)
	walk(any_)
	return sb.String()
}

// TestRenderContent checks what the goldens mean, so a careless -update
// cannot bless a broken message.
func TestRenderContent(t *testing.T) {
	for _, c := range diagnose.Causes() {
		t.Run(string(c), func(t *testing.T) {
			in := fixtureInput(t, c)
			m := Render(in)
			if err := m.Validate(); err != nil {
				t.Fatal(err)
			}
			h, ok := m.Blocks[0].(*slack.HeaderBlock)
			if want := "ui-new: " + lowerFirst(c.Title()); !ok || h.Text.Text != want {
				t.Errorf("first block = %#v, want header %q", m.Blocks[0], want)
			}
			for _, want := range []string{c.Title(), "ui-new", "prod-eu"} {
				if !strings.Contains(m.Text, want) {
					t.Errorf("fallback text %q lacks %q", m.Text, want)
				}
			}
			// The root: one evidence line, one context line with
			// cluster, namespace, incident and certainty.
			body := allText(m)
			for _, want := range []string{" said:* ", "cluster `prod-eu`", "namespace `retail`", "incident `inc-7f3a9c`", "certainty: "} {
				if !strings.Contains(body, want) {
					t.Errorf("root message lacks %q:\n%s", want, body)
				}
			}
			// The details reply: the facts the root no longer shows.
			dm := RenderDetails(in)
			if err := dm.Validate(); err != nil {
				t.Fatal(err)
			}
			details := allText(dm)
			for _, want := range []string{"Deployment `retail/ui-new`", "container `ui`", "2 failing pods", "Image: `" + in.Image + "`", "*What to do:*", "*Kubelet said:*\n```"} {
				if !strings.Contains(details, want) {
					t.Errorf("details lack %q:\n%s", want, details)
				}
			}
			if len(in.Diagnosis.Candidates) > 0 && !strings.Contains(details, "*How the fix was found:*") {
				t.Errorf("details do not say how the candidates were found:\n%s", details)
			}
			// Plain words: no "(s)" plurals, no internal names.
			for _, bad := range []string{"(s)", "in_cluster", "last_healthy", "nearest_tag", "closest_repository", "NotifyRef", "diagnose.", string(c) + " "} {
				if strings.Contains(body+details, bad) && !(bad == string(c)+" " && !strings.Contains(string(c), "_")) {
					t.Errorf("message uses %q:\n%s\n%s", bad, body, details)
				}
			}
			btns := buttonsOf(m)
			byID := map[string][]*slack.ButtonBlockElement{}
			for _, b := range btns {
				byID[b.ActionID] = append(byID[b.ActionID], b)
				v, err := DecodeClick("prod-eu", b.ActionID, b.Value)
				if err != nil {
					t.Errorf("button %q: %v", b.Text.Text, err)
				} else if v.IncidentID != "inc-7f3a9c" {
					t.Errorf("button %q names incident %q", b.Text.Text, v.IncidentID)
				}
			}
			for _, id := range []string{ActionIDRecheck, ActionIDSnooze, ActionIDDismiss} {
				if len(byID[id]) != 1 {
					t.Errorf("%d %s buttons, want 1", len(byID[id]), id)
				}
			}
			if len(in.Diagnosis.Candidates) > 0 {
				rb := byID[ActionIDRollback]
				if len(rb) != 1 || rb[0].Text.Text != "Roll back to public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.0" {
					t.Errorf("rollback buttons = %v", rb)
				}
				si := byID[ActionIDSetImage]
				if len(si) != 1 || si[0].Style != slack.StylePrimary || si[0].Confirm == nil {
					t.Fatalf("set-image buttons = %v", si)
				}
				if want := "`" + in.Image + "` → `public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1`"; !strings.Contains(si[0].Confirm.Text.Text, want) {
					t.Errorf("confirm text %q lacks old → new %q", si[0].Confirm.Text.Text, want)
				}
				if v, _ := DecodeAction(si[0].Value); v.Arg != "c2" || strings.Contains(si[0].Value, "retail") {
					t.Errorf("set-image value %q: want candidate id c2 and no image", si[0].Value)
				}
			} else if len(byID[ActionIDSetImage])+len(byID[ActionIDRollback]) != 0 {
				t.Errorf("fix buttons without candidates")
			}
			if len(in.ProvenSecrets) > 0 {
				if s := byID[ActionIDAddSecret]; len(s) != 1 || s[0].Text.Text != "Add imagePullSecret regcred" {
					t.Errorf("add-secret buttons = %v", s)
				}
			}
		})
	}
}

func TestRenderStates(t *testing.T) {
	base := fixtureInput(t, diagnose.RepoNotFound)
	newImage := "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1"
	tests := []struct {
		name        string
		edit        func(*MessageInput)
		header      string
		contains    []string
		textHas     []string
		fixButtons  bool
		ctrlButtons []string
	}{
		{name: "open", edit: func(*MessageInput) {}, header: "ui-new: repository not found", fixButtons: true,
			ctrlButtons: []string{ActionIDRecheck, ActionIDSnooze, ActionIDDismiss}, textHas: []string{"Repository not found", "Deployment ui-new", "prod-eu"}},
		{name: "fixing", edit: func(in *MessageInput) { in.State, in.Actor, in.FixImage = StateFixing, "U0APPROVER", newImage },
			header: "ui-new: repository not found", contains: []string{"*Fixing:* set image to `" + newImage + "` — approved by <@U0APPROVER>"},
			textHas: []string{"Fixing", "ui-new", "prod-eu"}},
		{name: "resolved", edit: func(in *MessageInput) {
			in.State, in.Actor, in.FixImage, in.Ready = StateResolved, "U0APPROVER", newImage, "1/1"
		}, header: "✅ ui-new 1/1 Running on retail-store-sample-ui:1.2.1", contains: []string{"Fixed by <@U0APPROVER>"},
			textHas: []string{"ui-new 1/1 Running", "prod-eu", "Repository not found"}},
		{name: "resolved elsewhere", edit: func(in *MessageInput) { in.State, in.FixImage, in.Ready = StateResolved, newImage, "1/1" },
			header: "✅ ui-new 1/1 Running on retail-store-sample-ui:1.2.1", contains: []string{"Resolved without a pullfix fix"}},
		{name: "still failing", edit: func(in *MessageInput) { in.State, in.FixImage = StateStillFailing, newImage },
			header: "Still failing — ui-new: repository not found", contains: []string{"⚠️ *Still failing after set image to `" + newImage + "`.*"}, fixButtons: true,
			ctrlButtons: []string{ActionIDRecheck, ActionIDSnooze, ActionIDDismiss}, textHas: []string{"Still failing", "prod-eu"}},
		{name: "dismissed", edit: func(in *MessageInput) { in.State, in.Actor = StateDismissed, "U0ONCALL" },
			header: "ui-new: repository not found", contains: []string{"*Dismissed* by <@U0ONCALL>"}},
		{name: "snoozed", edit: func(in *MessageInput) {
			in.State, in.Actor, in.Until = StateSnoozed, "U0ONCALL", time.Date(2026, 5, 4, 13, 30, 0, 0, time.UTC)
		}, header: "ui-new: repository not found", contains: []string{"*Snoozed* until <!date^1777901400^{date_short_pretty} {time}|2026-05-04 13:30 UTC>"},
			fixButtons: true, ctrlButtons: []string{ActionIDRecheck, ActionIDDismiss}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base
			tt.edit(&in)
			m := Render(in)
			if err := m.Validate(); err != nil {
				t.Fatal(err)
			}
			if h := m.Blocks[0].(*slack.HeaderBlock).Text.Text; h != tt.header {
				t.Errorf("header %q, want %q", h, tt.header)
			}
			body := allText(m)
			for _, s := range append(tt.contains, "prod-eu") {
				if !strings.Contains(body, s) {
					t.Errorf("message lacks %q:\n%s", s, body)
				}
			}
			// The fallback names cause, workload and cluster in every state.
			for _, s := range append(tt.textHas, "Repository not found", "ui-new", "prod-eu") {
				if !strings.Contains(m.Text, s) {
					t.Errorf("text %q lacks %q", m.Text, s)
				}
			}
			var fixes int
			var ctrl []string
			for _, b := range buttonsOf(m) {
				if a, _ := ActionForID(b.ActionID); a.IsFix() {
					fixes++
				} else {
					ctrl = append(ctrl, b.ActionID)
				}
			}
			if (fixes > 0) != tt.fixButtons {
				t.Errorf("%d fix buttons, want any=%v", fixes, tt.fixButtons)
			}
			if strings.Join(ctrl, ",") != strings.Join(tt.ctrlButtons, ",") {
				t.Errorf("control buttons %v, want %v", ctrl, tt.ctrlButtons)
			}
		})
	}
}

func TestRenderLongEvidenceTruncated(t *testing.T) {
	m := RenderDetails(longEvidenceInput(t))
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	body := allText(m)
	if root := Render(longEvidenceInput(t)); root.Validate() != nil || len(allText(root)) > 1200 {
		t.Errorf("root message with long evidence: %d characters (%v)", len(allText(root)), root.Validate())
	}
	if !strings.Contains(body, "Evidence truncated:") {
		t.Errorf("no truncation note")
	}
	if !strings.Contains(body, "HEAD manifest: 200 OK") {
		t.Errorf("the short probe line was cut to make room for the long ones")
	}
}

// TestRenderExtremes renders inputs at and beyond every limit; the result
// must still pass the limit checker and keep its meaning.
func TestRenderExtremes(t *testing.T) {
	long := strings.Repeat("x", 5000)
	longImage := "registry.example.com/" + strings.Repeat("very-long-path-segment/", 12) + "service-with-a-long-name:2026.05.04-build.1234567"
	in := fixtureInput(t, diagnose.TagNotFound)
	in.Name = strings.Repeat("a", 253)
	in.Namespace = strings.Repeat("n", 63)
	in.Cluster = strings.Repeat("c", 128)
	in.Image = longImage
	in.Diagnosis.Summary, in.Diagnosis.Remedy = long, long
	in.Diagnosis.Evidence = []diagnose.Evidence{{Source: diagnose.FromKubelet, Text: "<script>&`" + long}}
	in.Diagnosis.Candidates = nil
	for i := range 12 {
		in.Diagnosis.Candidates = append(in.Diagnosis.Candidates, diagnose.Candidate{ID: fmt.Sprintf("c%d", i+1), Image: longImage + fmt.Sprint(i), Kind: diagnose.CandidateTag, Reason: long})
	}
	for i := range 12 {
		in.ProvenSecrets = append(in.ProvenSecrets, fmt.Sprintf("%s-%d", strings.Repeat("s", 240), i))
	}
	for i := range 60 {
		in.Diagnosis.Probes = append(in.Diagnosis.Probes, diagnose.ProbeStep{Request: "GET " + long[:300], Result: fmt.Sprint(i)})
	}
	m := Render(in)
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	btns := buttonsOf(m)
	if got := len(btns); got != maxCandidatesShown+maxSecretsShown+3 {
		t.Errorf("%d buttons, want %d", got, maxCandidatesShown+maxSecretsShown+3)
	}
	for _, b := range btns {
		if n := utf8.RuneCountInString(b.Text.Text); n > maxButtonText {
			t.Errorf("button text %d chars", n)
		}
		if _, err := DecodeClick(in.Cluster, b.ActionID, b.Value); err != nil {
			t.Errorf("button %q: %v", b.Text.Text, err)
		}
	}
	if b := btns[0].Text.Text; !strings.HasPrefix(b, "Set image to service-with-a-long-name:2026.05.04-build.1234567") {
		t.Errorf("long image button = %q; want the last path element", b)
	}
	dm := RenderDetails(in)
	if err := dm.Validate(); err != nil {
		t.Fatal(err)
	}
	if body := allText(m) + allText(dm); strings.Contains(body, "<script>") || !strings.Contains(body, "&lt;script&gt;&amp;") {
		t.Errorf("mrkdwn control characters not escaped")
	}
	if d := allText(dm); !strings.Contains(d, "more candidates not shown") && !strings.Contains(d, "more not shown") {
		t.Errorf("dropped candidates not announced")
	}

	// An incident id that cannot be encoded: no buttons, and the message says so.
	in2 := fixtureInput(t, diagnose.RepoNotFound)
	in2.IncidentID = ""
	m2 := Render(in2)
	if len(buttonsOf(m2)) != 0 || !strings.Contains(allText(m2), "buttons unavailable") {
		t.Errorf("empty incident id: buttons %d, note missing", len(buttonsOf(m2)))
	}
	if err := m2.Validate(); err != nil {
		t.Error(err)
	}
}

func TestRenderGroup(t *testing.T) {
	m := RenderGroup(groupInput(t, 60))
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	body := allText(m)
	if !strings.Contains(body, "_…and 35 more_") {
		t.Errorf("long list not cut with 'and N more':\n%s", body)
	}
	if h := m.Blocks[0].(*slack.HeaderBlock).Text.Text; h != "60 workloads: registry unreachable (timeout)" {
		t.Errorf("header %q", h)
	}
	if !strings.Contains(m.Text, "60 workloads in cluster prod-eu") || !strings.Contains(m.Text, "and 55 more") {
		t.Errorf("text %q", m.Text)
	}
	for _, b := range buttonsOf(m) {
		if a, _ := ActionForID(b.ActionID); a.IsFix() {
			t.Errorf("group message offers fix %q; fixes are per workload", b.Text.Text)
		}
		if v, err := DecodeClick("prod-eu", b.ActionID, b.Value); err != nil || v.IncidentID != "grp-public-ecr" {
			t.Errorf("group button %q: %v %v", b.Text.Text, v, err)
		}
	}
	// Ten thousand workloads: still one valid message.
	if err := RenderGroup(groupInput(t, 10000)).Validate(); err != nil {
		t.Error(err)
	}
}

func TestRenderListLimits(t *testing.T) {
	var items []ListItem
	for i := range 500 {
		items = append(items, ListItem{IncidentID: fmt.Sprint(i), Namespace: "ns", Kind: "Deployment", Name: fmt.Sprintf("w-%d", i), Cause: diagnose.TagNotFound})
	}
	m := RenderList(ListInput{Cluster: "prod", Items: items})
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(allText(m), "more_") || !strings.HasPrefix(m.Text, "500 open") {
		t.Errorf("list of 500: text %q", m.Text)
	}
}

// TestValidateCatchesViolations: the limit checker is what the other
// tests rely on, so it must itself reject what Slack rejects.
func TestValidateCatchesViolations(t *testing.T) {
	btn := func(text, value string) *slack.ButtonBlockElement {
		return slack.NewButtonBlockElement(ActionIDRecheck, value, slack.NewTextBlockObject(slack.PlainTextType, text, false, false))
	}
	tests := map[string]Message{
		"no text":       {Blocks: []slack.Block{slack.NewDividerBlock()}},
		"long header":   {Text: "x", Blocks: []slack.Block{slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, strings.Repeat("h", 151), false, false))}},
		"mrkdwn header": {Text: "x", Blocks: []slack.Block{slack.NewHeaderBlock(mrkdwnText("h"))}},
		"long section":  {Text: "x", Blocks: []slack.Block{slack.NewSectionBlock(mrkdwnText(strings.Repeat("s", 3001)), nil, nil)}},
		"long button":   {Text: "x", Blocks: []slack.Block{slack.NewActionBlock("a", btn(strings.Repeat("b", 76), "v"))}},
		"long value":    {Text: "x", Blocks: []slack.Block{slack.NewActionBlock("a", btn("b", strings.Repeat("v", 2001)))}},
		"dup action":    {Text: "x", Blocks: []slack.Block{slack.NewActionBlock("a", btn("b", "v"), btn("c", "v"))}},
		"dup block id":  {Text: "x", Blocks: []slack.Block{slack.NewActionBlock("a", btn("b", "v")), slack.NewActionBlock("a", btn("b", "v"))}},
		"51 blocks": func() Message {
			m := Message{Text: "x"}
			for range 51 {
				m.Blocks = append(m.Blocks, slack.NewDividerBlock())
			}
			return m
		}(),
	}
	for name, m := range tests {
		var le *LimitError
		if err := m.Validate(); !errors.As(err, &le) || len(le.Problems) == 0 {
			t.Errorf("%s: Validate() = %v, want a *LimitError", name, err)
		}
	}
}

// TestRenderedMessagesAcceptedBySlack posts every golden message through
// the real slack-go client to the emulator, which rejects what Slack
// would (invalid_blocks, msg_too_long, no_text), then decodes each stored
// button's value as a click would carry it.
func TestRenderedMessagesAcceptedBySlack(t *testing.T) {
	emu, err := slackemu.New(slackemu.WithPostRate(0, 1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	emu.AddChannel("C0ALERTS", "alerts")
	api := slack.New(emu.BotToken(), slack.OptionAPIURL(emu.APIURL()))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cases := goldenCases(t)
	cases["extreme"] = func() Message {
		in := fixtureInput(t, diagnose.TagNotFound)
		in.Diagnosis.Evidence = []diagnose.Evidence{{Source: diagnose.FromKubelet, Text: strings.Repeat("é<>&`", 4000)}}
		return Render(in)
	}()
	cases["group_10000"] = RenderGroup(groupInput(t, 10000))
	for name, m := range cases {
		_, ts, err := api.PostMessageContext(ctx, "C0ALERTS", m.MsgOptions()...)
		if err != nil {
			t.Errorf("%s: chat.postMessage: %v", name, err)
			continue
		}
		stored, ok := emu.Message("C0ALERTS", ts)
		if !ok {
			t.Errorf("%s: not stored", name)
			continue
		}
		if stored.Text != m.Text {
			t.Errorf("%s: stored text %q, want %q", name, stored.Text, m.Text)
		}
		var blocks slack.Blocks
		if err := json.Unmarshal(stored.Blocks, &blocks); err != nil {
			t.Errorf("%s: stored blocks do not parse: %v", name, err)
			continue
		}
		if len(blocks.BlockSet) != len(m.Blocks) {
			t.Errorf("%s: %d blocks stored, %d sent", name, len(blocks.BlockSet), len(m.Blocks))
		}
		for _, b := range buttonsOf(Message{Blocks: blocks.BlockSet}) {
			if _, err := DecodeAction(b.Value); err != nil {
				t.Errorf("%s: stored button %q: %v", name, b.Text.Text, err)
			}
		}
	}
	// The update path: chat.update with a resolved rendering removes the buttons.
	open := Render(fixtureInput(t, diagnose.RepoNotFound))
	_, ts, err := api.PostMessageContext(ctx, "C0ALERTS", open.MsgOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	res := fixtureInput(t, diagnose.RepoNotFound)
	res.State, res.FixImage, res.Ready, res.Actor = StateResolved, "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1", "1/1", "U0APPROVER"
	if _, _, _, err := api.UpdateMessageContext(ctx, "C0ALERTS", ts, Render(res).MsgOptions()...); err != nil {
		t.Fatal(err)
	}
	stored, _ := emu.Message("C0ALERTS", ts)
	var blocks slack.Blocks
	if err := json.Unmarshal(stored.Blocks, &blocks); err != nil {
		t.Fatal(err)
	}
	if n := len(buttonsOf(Message{Blocks: blocks.BlockSet})); n != 0 || !strings.HasPrefix(stored.Text, "✅ Deployment ui-new 1/1 Running") {
		t.Errorf("after update: %d buttons, text %q", n, stored.Text)
	}
}

// BenchmarkRender: rendering is on the notification path (one call per
// incident message and per edit).
func BenchmarkRender(b *testing.B) {
	in := fixtureInput(b, diagnose.RepoNotFound)
	for b.Loop() {
		_ = Render(in)
	}
}

// TestCausesAgree: the README's causes list, diagnose.Causes() and the
// renderer name the same causes, so a new cause cannot ship without its
// title, its golden message and its line in the README.
func TestCausesAgree(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Causes\n")
	list, _, ok2 := strings.Cut(section, "(`internal/diagnose/types.go`)")
	if !ok || !ok2 {
		t.Fatal("README.md has no '## Causes' section listing the causes before (`internal/diagnose/types.go`)")
	}
	var inReadme []string
	for _, f := range strings.Split(list, "`") {
		if f = strings.TrimSpace(f); f != "" && strings.Trim(f, "abcdefghijklmnopqrstuvwxyz_") == "" {
			inReadme = append(inReadme, f)
		}
	}
	var inTypes []string
	titles := map[string]diagnose.Cause{}
	for _, c := range diagnose.Causes() {
		inTypes = append(inTypes, string(c))
		title := c.Title()
		if other, dup := titles[title]; dup {
			t.Errorf("causes %s and %s share the title %q", other, c, title)
		}
		titles[title] = c
		if c != diagnose.Unknown && title == diagnose.Cause("no such cause").Title() {
			t.Errorf("cause %s has no title of its own", c)
		}
		if _, err := os.Stat(filepath.Join("testdata", "golden", "cause_"+string(c)+".json")); err != nil {
			t.Errorf("cause %s has no golden message: %v", c, err)
		}
		if _, ok := causeMessages[c]; !ok {
			t.Errorf("cause %s has no fixture message", c)
		}
		if s, r := diagnose.Describe(c, "ghcr.io/acme/app:1", "ghcr.io"); s == "" || r == "" {
			t.Errorf("cause %s has no summary or remedy", c)
		}
	}
	if strings.Join(inReadme, ",") != strings.Join(inTypes, ",") {
		t.Errorf("README causes %v\n  differ from diagnose.Causes() %v", inReadme, inTypes)
	}
	if len(causeMessages) != len(inTypes) {
		t.Errorf("%d fixture messages for %d causes", len(causeMessages), len(inTypes))
	}
}

// TestStepMeaning: each registry request says what it established; the
// probe's normal HTTPS→HTTP fallback is not shown as an error.
func TestStepMeaning(t *testing.T) {
	tests := []struct{ req, res, want string }{
		{"GET 127.0.0.1:5000/v2/", "error: tls: first record does not look like a TLS handshake", "registry speaks plain HTTP (as configured)"},
		{"GET 127.0.0.1:5000/v2/", "error: http: server gave HTTP response to HTTPS client", "registry speaks plain HTTP (as configured)"},
		{"GET public.ecr.aws/v2/", "401", "registry asks for a token (normal; the token request follows)"},
		{"GET public.ecr.aws/v2/", "200", "registry answers"},
		{"HEAD public.ecr.aws/v2/a/b/manifests/1.2.1", "404 NAME_UNKNOWN", "repository does not exist (404 NAME_UNKNOWN)"},
		{"GET r.example/v2/a/manifests/9", "404 MANIFEST_UNKNOWN", "tag or manifest does not exist (404 MANIFEST_UNKNOWN)"},
		{"HEAD r.example/v2/a/manifests/1", "200 sha256:0123456789abcdef0123", "exists: sha256:0123456789ab"},
		{"GET r.example/token?scope=repository:a:pull", "403 DENIED", "access denied (403 DENIED)"},
		{"GET r.example/v2/a/manifests/1", "429 TOOMANYREQUESTS", "rate limited (429 TOOMANYREQUESTS)"},
		{"GET r.example/v2/a/manifests/1", "503", "registry error (503)"},
		{"GET r.example/v2/", "error: dial tcp 10.0.0.1:443: i/o timeout", "no answer in time: dial tcp 10.0.0.1:443: i/o timeout"},
		{"GET r.example/v2/a/tags/list", "ok 12 tags", "ok 12 tags"},
	}
	for _, tt := range tests {
		if got := stepMeaning(diagnose.ProbeStep{Request: tt.req, Result: tt.res}); got != tt.want {
			t.Errorf("stepMeaning(%q, %q) = %q, want %q", tt.req, tt.res, got, tt.want)
		}
	}
}

// TestEvidenceLine: the root's one line is the registry's own answer when
// it gave one, else the kubelet's words.
func TestEvidenceLine(t *testing.T) {
	d := diagnose.Diagnosis{Certainty: diagnose.CertaintyRegistry, Probes: []diagnose.ProbeStep{
		{Request: "GET public.ecr.aws/v2/", Result: "401"},
		{Request: "HEAD public.ecr.aws/v2/aws-containers/retailing-store-sample-ui/manifests/1.2.1", Result: "404 NAME_UNKNOWN"},
	}}
	if got, want := evidenceLine(d, ""), "*Registry said:* public.ecr.aws: `NAME_UNKNOWN` for `aws-containers/retailing-store-sample-ui`"; got != want {
		t.Errorf("registry line = %q, want %q", got, want)
	}
	// Through a mirror: the line names the image's registry.
	mirrored := d
	mirrored.Probes = []diagnose.ProbeStep{{Request: "GET 127.0.0.1:5000/v2/aws-containers/retailing-store-sample-ui/manifests/1.2.1", Result: "404 NAME_UNKNOWN"}}
	if got, want := evidenceLine(mirrored, "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1"), "*Registry said:* public.ecr.aws: `NAME_UNKNOWN` for `aws-containers/retailing-store-sample-ui`"; got != want {
		t.Errorf("mirrored line = %q, want %q", got, want)
	}
	d = diagnose.Diagnosis{Certainty: diagnose.CertaintyWords, Evidence: []diagnose.Evidence{{Source: diagnose.FromKubelet, Text: "dial tcp 10.0.0.1:443:\n i/o timeout"}}}
	if got, want := evidenceLine(d, ""), "*Kubelet said:* `dial tcp 10.0.0.1:443: i/o timeout`"; got != want {
		t.Errorf("kubelet line = %q, want %q", got, want)
	}
}

// TestFixReason: the line beside the primary button.
func TestFixReason(t *testing.T) {
	in := MessageInput{Image: "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1"}
	c := diagnose.Candidate{Image: "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1", Kind: diagnose.CandidateRepository, Digest: "sha256:abc"}
	if got, want := fixReason(in, c), "same tag, repository 3 letters away, verified for linux/amd64"; got != want {
		t.Errorf("fixReason = %q, want %q", got, want)
	}
	c = diagnose.Candidate{Image: "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.0", Kind: diagnose.CandidateTag}
	if got, want := fixReason(in, c), "nearest existing tag"; got != want {
		t.Errorf("fixReason = %q, want %q", got, want)
	}
}

// TestKeyWords: a long kubelet message is cut from the front, keeping the
// words that say what failed.
func TestKeyWords(t *testing.T) {
	msg := `failed to pull and unpack image "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1": failed to resolve reference "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1": failed to do request: Head "https://public.ecr.aws/v2/aws-containers/retail-store-sample-ui/manifests/1.2.1": dial tcp 99.83.145.10:443: i/o timeout`
	got := keyWords(msg, 160)
	if !strings.HasPrefix(got, "…") || !strings.HasSuffix(got, "dial tcp 99.83.145.10:443: i/o timeout") || utf8.RuneCountInString(got) > 160 {
		t.Errorf("keyWords = %q", got)
	}
	if got := keyWords("short: not found", 160); got != "short: not found" {
		t.Errorf("short message changed: %q", got)
	}
}

// TestWithDetails: the ephemeral answer carries the root and, below a
// divider, the details, within Slack's limits.
func TestWithDetails(t *testing.T) {
	in := fixtureInput(t, diagnose.RepoNotFound)
	m := WithDetails(Render(in), RenderDetails(in))
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	body := allText(m)
	for _, want := range []string{"ui-new: repository not found", "Verified fix", "*Kubelet said:*", "*How the fix was found:*"} {
		if !strings.Contains(body, want) {
			t.Errorf("ephemeral answer lacks %q", want)
		}
	}
	if m.Text != Render(in).Text {
		t.Errorf("text %q, want the root's", m.Text)
	}
	big := Message{Text: "x"}
	for i := range maxBlocks {
		big.Blocks = append(big.Blocks, slack.NewDividerBlock())
		_ = i
	}
	if n := len(WithDetails(Render(in), big).Blocks); n > maxBlocks {
		t.Errorf("%d blocks, limit %d", n, maxBlocks)
	}
}
