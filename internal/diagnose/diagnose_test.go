package diagnose

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pullfix/pullfix/internal/testenv/registries"
)

// containerdNotFound is the runbook's kubelet message (Kubernetes ≥1.32
// back-off message repeating containerd's error, seeds/000).
func containerdNotFound(image string) string {
	return fmt.Sprintf(`Back-off pulling image %q: ErrImagePull: rpc error: code = NotFound desc = failed to pull and unpack image %q: failed to resolve reference %q: %s: not found`,
		image, image, image, image)
}

func containerdTimeout(image, host string) string {
	return fmt.Sprintf(`Back-off pulling image %q: ErrImagePull: rpc error: code = DeadlineExceeded desc = failed to pull and unpack image %q: failed to resolve reference %q: failed to do request: Head "https://%s/v2/x/manifests/1": dial tcp 10.1.2.3:443: i/o timeout`,
		image, image, image, host)
}

func logDiagnosis(t *testing.T, d Diagnosis) {
	t.Helper()
	t.Logf("cause=%s confidence=%s nodeSide=%t probes=%d in %s", d.Cause, d.Confidence, d.NodeSide, len(d.Probes), d.ProbeDuration)
	t.Logf("summary: %s", d.Summary)
	t.Logf("remedy: %s", d.Remedy)
	for _, e := range d.Evidence {
		t.Logf("evidence[%s]: %s", e.Source, e.Text)
	}
	for _, c := range d.Candidates {
		t.Logf("candidate %s %s (%s): %s", c.ID, c.Image, c.Kind, c.Reason)
	}
	for _, s := range d.Probes {
		t.Logf("  probe %s -> %s", s.Request, s.Result)
	}
}

// runbook is the seed scenario: public.ecr.aws mirrored to a local registry.
func runbook(t *testing.T, opts ...Option) (*registries.Registry, registries.Runbook, *Prober) {
	reg := registries.New(t)
	rb := registries.SeedRunbook(t, reg)
	p := newProber(t, append([]Option{WithMirrors(Mirrors{registries.PublicECR: reg.Host})}, opts...)...)
	return reg, rb, p
}

func TestDiagnoseRunbookRepositoryTypo(t *testing.T) {
	reg, rb, p := runbook(t)
	image := "public.ecr.aws/" + registries.RetailingUI + ":1.2.1"
	want := "public.ecr.aws/" + registries.RetailUI + ":1.2.1"
	target := Target{
		Namespace: "default", Kind: "Deployment", Name: "ui-new", Container: "ui",
		Image: image, Platform: amd64,
		Reason: "ImagePullBackOff", Message: containerdNotFound(image),
	}
	d := NewDiagnoser(p).Diagnose(context.Background(), target, nil)
	logDiagnosis(t, d)
	t.Logf("registry requests for the whole diagnosis: %d", reg.Count())

	if d.Cause != RepoNotFound || d.Confidence != ConfidenceHigh {
		t.Fatalf("cause %s (%s), want repo_not_found (high)", d.Cause, d.Confidence)
	}
	if len(d.Candidates) == 0 {
		t.Fatal("no candidates")
	}
	c := d.Candidates[0]
	if c.ID != "c1" || c.Image != want || c.Kind != CandidateRepository || c.Digest != rb[registries.RetailUI+":1.2.1"].String() {
		t.Fatalf("first candidate %+v, want c1 %s (closest_repository, digest %s)", c, want, rb[registries.RetailUI+":1.2.1"])
	}
	for _, c := range d.Candidates {
		if strings.Contains(c.Image, reg.Host) {
			t.Errorf("candidate %s names the mirror, not the original registry", c.Image)
		}
		for _, sibling := range []string{"cart", "catalog", "orders", "checkout"} {
			if strings.Contains(c.Image, sibling) {
				t.Errorf("a sibling service was offered: %s", c.Image)
			}
		}
	}
	if !hasEvidence(d, FromKubelet, "not found") || !hasEvidence(d, FromProbe, "Repository not found") {
		t.Errorf("evidence lacks the kubelet's or the probe's line: %+v", d.Evidence)
	}
	if len(d.Probes) == 0 || d.ProbeDuration <= 0 {
		t.Errorf("probes %d, duration %s", len(d.Probes), d.ProbeDuration)
	}
	if !strings.Contains(d.Summary, image) {
		t.Errorf("summary does not name the original reference: %s", d.Summary)
	}
	// The words alone said image_not_found; the registry settled it.
	if off := DiagnoseOffline(target); off.Cause != ImageNotFound || off.Certainty != CertaintyWords || strings.Contains(off.Summary, "exists") {
		t.Errorf("offline: %s (%s) %q, want image_not_found from the words, claiming nothing exists", off.Cause, off.Certainty, off.Summary)
	}
	if d.Certainty != CertaintyRegistry || !strings.Contains(d.Summary, "the registry said so") {
		t.Errorf("certainty %s, summary %q: want registry, saying the registry said so", d.Certainty, d.Summary)
	}
}

// TestDiagnoseSettlesImageNotFound: containerd's bare "not found" is
// image_not_found from the words; the probe says which is missing.
func TestDiagnoseSettlesImageNotFound(t *testing.T) {
	_, _, p := runbook(t)
	ui := "public.ecr.aws/" + registries.RetailUI
	cases := []struct {
		image   string
		want    Cause
		summary string
	}{
		{image: "public.ecr.aws/" + registries.RetailingUI + ":1.2.1", want: RepoNotFound, summary: "does not exist on public.ecr.aws: the registry said so"},
		{image: ui + ":1.2.9", want: TagNotFound, summary: "The repository exists on public.ecr.aws but the tag"},
	}
	for _, tc := range cases {
		t.Run(string(tc.want), func(t *testing.T) {
			target := Target{Image: tc.image, Reason: "ErrImagePull", Message: containerdNotFound(tc.image)}
			if c := Classify(target.Reason, target.Message); c.Cause != ImageNotFound || c.Certainty != CertaintyWords {
				t.Fatalf("offline %s (%s), want image_not_found (words)", c.Cause, c.Certainty)
			}
			d := NewDiagnoser(p).Diagnose(context.Background(), target, nil)
			logDiagnosis(t, d)
			if d.Cause != tc.want || d.Certainty != CertaintyRegistry || d.Confidence != ConfidenceHigh {
				t.Fatalf("cause %s certainty %s (%s), want %s settled by the registry (high)", d.Cause, d.Certainty, d.Confidence, tc.want)
			}
			if !strings.Contains(d.Summary, tc.summary) {
				t.Errorf("summary %q lacks %q", d.Summary, tc.summary)
			}
			if len(d.Candidates) == 0 {
				t.Errorf("no candidates for a settled %s", tc.want)
			}
		})
	}
	t.Run("unsettled: the words stand, nothing claimed", func(t *testing.T) {
		closed := registries.ClosedPort(t)
		image := closed + "/team/app:1"
		d := NewDiagnoser(newProber(t, WithTimeout(time.Second))).Diagnose(context.Background(),
			Target{Image: image, Reason: "ErrImagePull", Message: containerdNotFound(image)}, nil)
		logDiagnosis(t, d)
		if d.Cause != ImageNotFound || d.Certainty != CertaintyWords || strings.Contains(d.Summary, "exists on") {
			t.Fatalf("cause %s (%s) %q, want image_not_found from the words", d.Cause, d.Certainty, d.Summary)
		}
	})
}

// TestDiagnoseRegistryUnavailable: a registry answering 5xx is failing,
// not refusing connections; the probe confirms it on loopback.
func TestDiagnoseRegistryUnavailable(t *testing.T) {
	reg := registries.New(t, registries.WithServerError(registries.ServerError{Status: http.StatusServiceUnavailable}))
	p := newProber(t, WithMirrors(Mirrors{"quay.io": reg.Host}))
	image := "quay.io/org/app:1"
	msg := `Failed to pull image "quay.io/org/app:1": rpc error: code = Unknown desc = failed to pull and unpack image "quay.io/org/app:1": failed to resolve reference "quay.io/org/app:1": unexpected status from HEAD request to https://quay.io/v2/org/app/manifests/1: 503 Service Unavailable`
	target := Target{Image: image, Reason: "ErrImagePull", Message: msg}
	if c := Classify(target.Reason, msg); c.Cause != RegistryUnavailable {
		t.Fatalf("offline %s, want registry_unavailable", c.Cause)
	}
	d := NewDiagnoser(p).Diagnose(context.Background(), target, nil)
	logDiagnosis(t, d)
	if d.Cause != RegistryUnavailable || d.Certainty != CertaintyRegistry || d.Confidence != ConfidenceHigh || d.NodeSide {
		t.Fatalf("cause %s certainty %s (%s) nodeSide=%t, want registry_unavailable confirmed by the registry", d.Cause, d.Certainty, d.Confidence, d.NodeSide)
	}
	if len(d.Candidates) != 0 || !strings.Contains(d.Remedy, "status page") || !strings.Contains(d.Remedy, "mirror") {
		t.Errorf("%d candidates, remedy %q: want none, and status page / mirror", len(d.Candidates), d.Remedy)
	}
}

func TestDiagnoseRepositoryTypoWithoutCatalog(t *testing.T) {
	_, _, p := runbook(t, WithCatalogPages(0))
	image := "public.ecr.aws/" + registries.RetailingUI + ":1.2.1"
	d := NewDiagnoser(p).Diagnose(context.Background(), Target{
		Image: image, Reason: "ErrImagePull", Message: containerdNotFound(image),
		KnownRepositories: []string{"public.ecr.aws/" + registries.RetailUI, "public.ecr.aws/" + registries.RetailCart},
	}, nil)
	logDiagnosis(t, d)
	if len(d.Candidates) != 1 || d.Candidates[0].Image != "public.ecr.aws/"+registries.RetailUI+":1.2.1" ||
		!strings.Contains(d.Candidates[0].Reason, "cluster") {
		t.Fatalf("want exactly the cluster-known retail-store-sample-ui:1.2.1, got %+v", d.Candidates)
	}
}

func TestDiagnoseTagTypo(t *testing.T) {
	_, _, p := runbook(t)
	ui := "public.ecr.aws/" + registries.RetailUI
	cases := []struct {
		name  string
		tag   string
		hints []Hint
		want  []string // candidate images in order
		kinds []CandidateKind
	}{
		{name: "missing patch release", tag: "1.2.2",
			want: []string{ui + ":1.2.1", ui + ":1.2.0", ui + ":1.1.0"}, kinds: []CandidateKind{CandidateTag, CandidateTag, CandidateTag}},
		{name: "letter l for digit 1", tag: "1.2.l", want: []string{ui + ":1.2.1", ui + ":1.2.0"}},
		{name: "v prefix", tag: "v1.2.1", want: []string{ui + ":1.2.1"}},
		{name: "last healthy revision first", tag: "1.2.2",
			hints: []Hint{{Image: ui + ":0.8.5", Kind: CandidateLastHealthy, Note: "revision 3 of ui-new"}},
			want:  []string{ui + ":0.8.5", ui + ":1.2.1", ui + ":1.2.0"}, kinds: []CandidateKind{CandidateLastHealthy, CandidateTag, CandidateTag}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			image := ui + ":" + tc.tag
			d := NewDiagnoser(p).Diagnose(context.Background(), Target{
				Image: image, Platform: arm64, Reason: "ErrImagePull", Message: containerdNotFound(image), Hints: tc.hints,
			}, nil)
			logDiagnosis(t, d)
			if d.Cause != TagNotFound || d.Confidence != ConfidenceHigh {
				t.Fatalf("cause %s (%s), want tag_not_found (high)", d.Cause, d.Confidence)
			}
			if len(d.Candidates) < len(tc.want) {
				t.Fatalf("got %d candidates, want at least %d", len(d.Candidates), len(tc.want))
			}
			for i, w := range tc.want {
				c := d.Candidates[i]
				if c.Image != w || c.ID != fmt.Sprintf("c%d", i+1) {
					t.Errorf("candidate %d = %s %s, want c%d %s", i, c.ID, c.Image, i+1, w)
				}
				if i < len(tc.kinds) && c.Kind != tc.kinds[i] {
					t.Errorf("candidate %d kind %s, want %s", i, c.Kind, tc.kinds[i])
				}
			}
			if len(d.Candidates) > DefaultMaxCandidates {
				t.Errorf("%d candidates, at most %d", len(d.Candidates), DefaultMaxCandidates)
			}
		})
	}
}

func TestDiagnoseHubLikeSettlesWithPodCredentials(t *testing.T) {
	hub := registries.New(t, registries.WithBearerAuth(registries.HubLike(map[string]string{"ci": "s3cret"}, "acme/*")))
	hub.Push(t, "acme/payments:1", registries.MultiArch...)
	p := newProber(t, WithMirrors(Mirrors{"docker.io": hub.Host}))
	image := "docker.io/acme/paymnets:1"
	target := Target{
		Image: image, Reason: "ErrImagePull",
		Message:           `rpc error: code = Unknown desc = failed to pull and unpack image "docker.io/acme/paymnets:1": failed to resolve reference "docker.io/acme/paymnets:1": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed`,
		KnownRepositories: []string{"docker.io/acme/payments"},
	}

	t.Run("pod credentials", func(t *testing.T) {
		d := NewDiagnoser(p).Diagnose(context.Background(), target, keychain{"ci", "s3cret"})
		logDiagnosis(t, d)
		if d.Cause != RepoNotFound || d.Confidence != ConfidenceHigh {
			t.Fatalf("cause %s (%s), want repo_not_found (high)", d.Cause, d.Confidence)
		}
		if len(d.Candidates) == 0 || d.Candidates[0].Image != "docker.io/acme/payments:1" {
			t.Fatalf("want docker.io/acme/payments:1 first (private, verified with the pod's credentials), got %+v", d.Candidates)
		}
	})
	t.Run("anonymous stays ambiguous", func(t *testing.T) {
		d := NewDiagnoser(p).Diagnose(context.Background(), target, nil)
		logDiagnosis(t, d)
		if d.Cause != NotFoundOrUnauthorized || len(d.Candidates) != 0 {
			t.Fatalf("cause %s with %d candidates, want not_found_or_unauthorized and none", d.Cause, len(d.Candidates))
		}
	})
}

func TestDiagnoseNodeSideAndOutage(t *testing.T) {
	reg := registries.New(t)
	registries.SeedRunbook(t, reg)
	hole := registries.BlackHole(t)
	image := "public.ecr.aws/" + registries.RetailUI + ":1.2.1"
	target := Target{Image: image, Reason: "ErrImagePull", Message: containerdTimeout(image, "public.ecr.aws")}

	t.Run("bot reaches the registry: node side", func(t *testing.T) {
		p := newProber(t, WithMirrors(Mirrors{registries.PublicECR: reg.Host}))
		d := NewDiagnoser(p).Diagnose(context.Background(), target, nil)
		logDiagnosis(t, d)
		if d.Cause != NetworkTimeout || !d.NodeSide || d.Confidence != ConfidenceHigh {
			t.Fatalf("cause %s nodeSide=%t (%s), want network_timeout, node side, high", d.Cause, d.NodeSide, d.Confidence)
		}
		for _, w := range []string{"NAT gateway", "security groups", "proxy"} {
			if !strings.Contains(d.Remedy, w) {
				t.Errorf("remedy lacks %q: %s", w, d.Remedy)
			}
		}
		if !strings.Contains(d.Summary, "pullfix reaches it") || len(d.Candidates) != 0 {
			t.Errorf("summary %q, %d candidates", d.Summary, len(d.Candidates))
		}
	})
	t.Run("neither reaches it: outage", func(t *testing.T) {
		const timeout = 400 * time.Millisecond
		p := newProber(t, WithTimeout(timeout), WithMirrors(Mirrors{registries.PublicECR: hole.Host}))
		start := time.Now()
		d := NewDiagnoser(p).Diagnose(context.Background(), target, nil)
		elapsed := time.Since(start)
		logDiagnosis(t, d)
		t.Logf("diagnosis against a black hole took %s (timeout %s)", elapsed, timeout)
		if d.Cause != NetworkTimeout || d.NodeSide || !strings.Contains(d.Summary, "Neither the nodes nor pullfix") {
			t.Fatalf("cause %s nodeSide=%t summary %q, want an outage", d.Cause, d.NodeSide, d.Summary)
		}
		if elapsed > 3*timeout {
			t.Errorf("took %s, more than 3× the %s timeout", elapsed, timeout)
		}
	})
}

func TestDiagnoseCandidatePlatforms(t *testing.T) {
	_, _, p := runbook(t)
	ecr := "public.ecr.aws/"
	t.Run("closest repository lacks the node's platform", func(t *testing.T) {
		image := ecr + "aws-containers/retail-store-sample-asset:1.2.1" // typo of -assets, amd64-only
		d := NewDiagnoser(p).Diagnose(context.Background(), Target{
			Image: image, Platform: arm64, Reason: "ErrImagePull", Message: containerdNotFound(image),
			Hints: []Hint{
				{Image: ecr + registries.RetailAssetsAMD64 + ":1.2.1", Kind: CandidateInCluster, Note: "amd64 node pool"},
				{Image: ecr + registries.RetailUI + ":1.2.1", Kind: CandidateInCluster, Note: "ui"},
			},
		}, nil)
		logDiagnosis(t, d)
		if d.Cause != RepoNotFound {
			t.Fatalf("cause %s", d.Cause)
		}
		for _, c := range d.Candidates {
			if strings.Contains(c.Image, "assets") {
				t.Errorf("offered %s, which has no linux/arm64", c.Image)
			}
		}
		if len(d.Candidates) != 1 || d.Candidates[0].Image != ecr+registries.RetailUI+":1.2.1" {
			t.Errorf("want only the multi-arch hint, got %+v", d.Candidates)
		}
		rejected := 0
		for _, s := range d.Probes {
			if strings.Contains(s.Request, "retail-store-sample-assets/blobs/") {
				rejected++
			}
		}
		if rejected == 0 {
			t.Error("the amd64-only image's config was never read: the platform was not checked")
		}
	})
	t.Run("platform mismatch from the index, whatever the kubelet said", func(t *testing.T) {
		image := ecr + registries.RetailUtilsAMD64Index + ":1.2.1"
		for _, msg := range []string{
			`rpc error: code = NotFound desc = failed to pull and unpack image "` + image + `": no match for platform in manifest: not found`,
			containerdNotFound(image),
		} {
			d := NewDiagnoser(p).Diagnose(context.Background(), Target{
				Image: image, Platform: arm64, Reason: "ErrImagePull", Message: msg,
				Hints: []Hint{{Image: ecr + registries.RetailUI + ":1.2.1", Kind: CandidateInCluster}},
			}, nil)
			logDiagnosis(t, d)
			if d.Cause != PlatformMismatch || !strings.Contains(d.Summary, "linux/arm64") {
				t.Fatalf("cause %s summary %q, want platform_mismatch naming linux/arm64", d.Cause, d.Summary)
			}
			if len(d.Candidates) != 1 || d.Candidates[0].Image != ecr+registries.RetailUI+":1.2.1" {
				t.Errorf("candidates %+v", d.Candidates)
			}
		}
	})
}

func TestDiagnoseECRAccessDenied(t *testing.T) {
	const host = "123456789012.dkr.ecr.us-west-2.amazonaws.com"
	ecr := registries.New(t, registries.WithBasicAuth(registries.BasicAuth{Users: map[string]registries.BasicUser{
		"AWS": {Password: "token"},
	}}))
	ecr.Push(t, "team/api:1")
	p := newProber(t, WithMirrors(Mirrors{host: ecr.Host}))
	image := host + "/team/api:1"
	target := Target{Image: image, Reason: "ErrImagePull", Message: `rpc error: code = Unknown desc = failed to pull and unpack image "` + image +
		`": failed to resolve reference "` + image + `": pull access denied, repository does not exist or may require authorization: server message: denied: User: arn:aws:sts::123456789012:assumed-role/eks-node/i-0abc is not authorized to perform: ecr:BatchGetImage on resource: arn:aws:ecr:us-west-2:123456789012:repository/team/api because no identity-based policy allows the ecr:BatchGetImage action`}

	for _, tc := range []struct {
		name string
		kc   *keychain
		says string
	}{
		{name: "bot has no ECR credentials", kc: nil, says: "could not confirm"},
		{name: "pod credentials work", kc: &keychain{"AWS", "token"}, says: "node's credentials"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var d Diagnosis
			if tc.kc == nil {
				d = NewDiagnoser(p).Diagnose(context.Background(), target, nil)
			} else {
				d = NewDiagnoser(p).Diagnose(context.Background(), target, *tc.kc)
			}
			logDiagnosis(t, d)
			if d.Cause != AccessDenied || !strings.Contains(d.Summary, tc.says) {
				t.Fatalf("cause %s summary %q, want access_denied saying %q", d.Cause, d.Summary, tc.says)
			}
			if !strings.Contains(d.Remedy, "AmazonEC2ContainerRegistryReadOnly") {
				t.Errorf("remedy %q", d.Remedy)
			}
		})
	}
}

func TestDiagnoseInvalidReferenceStaysOffline(t *testing.T) {
	var sent int
	p := newProber(t, WithRequestObserver(func(RequestInfo) { sent++ }))
	d := NewDiagnoser(p).Diagnose(context.Background(), Target{
		Image: "public.ecr.aws/aws-containers/Retail-UI:1.2.1", Reason: "InvalidImageName",
		Message: `Failed to apply default image tag "public.ecr.aws/aws-containers/Retail-UI:1.2.1": couldn't parse image name "public.ecr.aws/aws-containers/Retail-UI:1.2.1": invalid reference format: repository name (aws-containers/Retail-UI) must be lowercase`,
	}, nil)
	logDiagnosis(t, d)
	if d.Cause != InvalidReference || d.Confidence != ConfidenceHigh || sent != 0 || len(d.Probes) != 0 {
		t.Fatalf("cause %s (%s), %d requests, want invalid_reference (high) with none", d.Cause, d.Confidence, sent)
	}
	if off := DiagnoseOffline(d.Target); off.Cause != InvalidReference {
		t.Fatalf("offline: %s", off.Cause)
	}
}

func TestDiagnoseRequestsPerImage(t *testing.T) {
	reg, _, p := runbook(t)
	diag := NewDiagnoser(p)
	ok := "public.ecr.aws/" + registries.RetailUI + ":1.2.1"
	bad := "public.ecr.aws/" + registries.RetailingUI + ":1.2.1"
	for i := range 20 { // twenty pods of each of two workloads
		diag.Diagnose(context.Background(), Target{Image: ok, Reason: "ErrImagePull", Message: containerdTimeout(ok, "public.ecr.aws"), Name: fmt.Sprint("a", i)}, nil)
		diag.Diagnose(context.Background(), Target{Image: bad, Reason: "ErrImagePull", Message: containerdNotFound(bad), Name: fmt.Sprint("b", i)}, nil)
	}
	t.Logf("40 diagnoses of 2 images: %d requests sent, %d served: %v", p.Requests(), reg.Count(), reg.Requests())
	if perImage := float64(reg.Count()) / 2; perImage > 4 {
		t.Errorf("%.1f registry requests per unique image, want ≤ 4", perImage)
	}
}

func hasEvidence(d Diagnosis, src EvidenceSource, substr string) bool {
	for _, e := range d.Evidence {
		if e.Source == src && strings.Contains(e.Text, substr) {
			return true
		}
	}
	return false
}

// BenchmarkDiagnoseRunbook is the seed case end to end (probe, catalog,
// candidate verification) with every cache off: the full cost of one
// repo_not_found diagnosis.
func BenchmarkDiagnoseRunbook(b *testing.B) {
	reg := registries.New(b)
	registries.SeedRunbook(b, reg)
	p := newProber(b, WithCacheTTL(0), WithMirrors(Mirrors{registries.PublicECR: reg.Host}))
	d := NewDiagnoser(p)
	image := "public.ecr.aws/" + registries.RetailingUI + ":1.2.1"
	target := Target{Image: image, Reason: "ErrImagePull", Message: containerdNotFound(image)}
	reg.ResetLog()
	b.ReportAllocs()
	for b.Loop() {
		if diag := d.Diagnose(context.Background(), target, nil); len(diag.Candidates) == 0 {
			b.Fatal("no candidate")
		}
	}
	b.ReportMetric(float64(reg.Count())/float64(b.N), "served/op")
	b.ReportMetric(float64(p.Requests())/float64(b.N), "sent/op")
}

// TestDiagnoseLookupOnlyWhenCandidatesAreWanted checks that Target.Lookup,
// which costs the watcher cluster reads, runs once when the cause calls for
// candidates (its hints become verified candidates), never for a cause
// fixed elsewhere, and is not kept in the Diagnosis.
func TestDiagnoseLookupOnlyWhenCandidatesAreWanted(t *testing.T) {
	_, _, p := runbook(t)
	ecr := "public.ecr.aws/"
	good := ecr + registries.RetailUI + ":1.2.1"
	for _, tc := range []struct {
		name      string
		image     string
		message   string
		wantCalls int
		wantCand  string
	}{
		{name: "repository typo", image: ecr + "aws-containers/retail-store-sample-uii:1.2.1", wantCalls: 1, wantCand: good},
		{name: "image exists: the node's problem", image: good, message: `rpc error: code = Unknown desc = failed to pull and unpack image "` + good + `": failed to resolve reference "` + good + `": failed to do request: Head "https://public.ecr.aws/v2/` + registries.RetailUI + `/manifests/1.2.1": dial tcp 10.0.0.1:443: i/o timeout`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			msg := tc.message
			if msg == "" {
				msg = containerdNotFound(tc.image)
			}
			d := NewDiagnoser(p).Diagnose(context.Background(), Target{
				Image: tc.image, Reason: "ErrImagePull", Message: msg,
				Lookup: func(context.Context) ([]Hint, []string) {
					calls++
					return []Hint{{Image: good, Kind: CandidateInCluster, Note: "running in pod ui-1"}}, nil
				},
			}, nil)
			logDiagnosis(t, d)
			if calls != tc.wantCalls {
				t.Errorf("Lookup called %d times for cause %s, want %d", calls, d.Cause, tc.wantCalls)
			}
			if d.Target.Lookup != nil {
				t.Error("the Diagnosis keeps the Lookup function")
			}
			if tc.wantCand != "" {
				if len(d.Candidates) == 0 || d.Candidates[0].Image != tc.wantCand {
					t.Errorf("candidates %+v, want %s first", d.Candidates, tc.wantCand)
				}
				if len(d.Target.Hints) == 0 {
					t.Error("the looked-up hints are not recorded in the Diagnosis's target")
				}
			}
		})
	}
}
