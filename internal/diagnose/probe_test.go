package diagnose

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/pullfix/pullfix/internal/testenv/registries"
)

var (
	amd64 = Platform{OS: "linux", Architecture: "amd64"}
	arm64 = Platform{OS: "linux", Architecture: "arm64"}
)

// keychain is a fixed-credential authn.Keychain, as the Kubernetes
// keychain would resolve from a pod's imagePullSecrets.
type keychain struct{ user, pass string }

func (k keychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	return &authn.Basic{Username: k.user, Password: k.pass}, nil
}

// slowKeychain never resolves, like an ECR helper waiting on IMDS.
type slowKeychain struct{}

func (slowKeychain) Resolve(authn.Resource) (authn.Authenticator, error) {
	time.Sleep(time.Minute)
	return authn.Anonymous, nil
}

func newProber(t testing.TB, opts ...Option) *Prober {
	t.Helper()
	p, err := NewProber(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProbeRegistryAnswers(t *testing.T) {
	plain := registries.New(t)
	rb := registries.SeedRunbook(t, plain)
	denied := registries.New(t, registries.WithDenied("team/secret"))
	denied.Push(t, "team/secret:1")
	limited := registries.New(t, registries.WithRateLimit(registries.RateLimit{After: 0, RetryAfter: "30"}))
	limited.Push(t, "library/nginx:1.27")
	login := registries.New(t, registries.WithBearerAuth(registries.BearerAuth{
		Users: map[string]string{"ci": "s3cret"}, Private: []string{"team/*"}, RequireLogin: true,
	}))
	login.Push(t, "team/app:1")
	hub := registries.New(t, registries.WithBearerAuth(registries.HubLike(map[string]string{"ci": "s3cret"}, "acme/*")))
	hub.Push(t, "acme/private:1")
	hub.Push(t, "library/nginx:1.27")
	ecr := registries.New(t, registries.WithBasicAuth(registries.BasicAuth{Users: map[string]registries.BasicUser{
		"AWS":     {Password: "token", Repos: []string{"team/allowed"}},
		"expired": {Password: "token", Expired: true},
	}}))
	ecr.Push(t, "team/allowed:1")
	ecr.Push(t, "team/other:1")

	failing := map[int]*registries.Registry{}
	for _, st := range []int{500, 502, 503, 504} {
		failing[st] = registries.New(t, registries.WithServerError(registries.ServerError{Status: st}))
	}
	failingRepo := registries.New(t, registries.WithServerError(registries.ServerError{Status: 503, Repos: []string{"team/*"}}))
	failingRepo.Push(t, "team/app:1")

	ui := registries.RetailUI + ":1.2.1"
	good := keychain{"ci", "s3cret"}
	cases := []struct {
		name     string
		image    string
		kc       authn.Keychain
		platform Platform
		want     Cause // "" = OK
		code     string
		detail   string // substring of Detail
	}{
		{name: "multi-arch image on amd64", image: plain.Ref(ui), platform: amd64},
		{name: "multi-arch image on arm64", image: plain.Ref(ui), platform: arm64},
		{name: "repository missing", image: plain.Ref(registries.RetailingUI + ":1.2.1"), want: RepoNotFound, code: "NAME_UNKNOWN"},
		{name: "tag missing", image: plain.Ref(registries.RetailUI + ":1.2.2"), want: TagNotFound, code: "MANIFEST_UNKNOWN"},
		{name: "digest missing", image: plain.Ref(registries.RetailUI + "@sha256:" + strings.Repeat("ab", 32)), want: DigestNotFound, code: "MANIFEST_UNKNOWN"},
		{name: "digest present", image: plain.Ref(registries.RetailUI + "@" + rb[ui].String())},
		{name: "index lacks arm64", image: plain.Ref(registries.RetailUtilsAMD64Index + ":1.2.1"), platform: arm64, want: PlatformMismatch, detail: "offers linux/amd64, not the node's linux/arm64"},
		{name: "single amd64 image on arm64 is not checked by Probe", image: plain.Ref(registries.RetailAssetsAMD64 + ":1.2.1"), platform: arm64},
		{name: "403 denied to an anonymous pull: missing or private", image: denied.Ref("team/secret:1"), want: NotFoundOrUnauthorized, code: "DENIED", detail: "anonymous pull refused"},
		{name: "403 denied to presented credentials", image: denied.Ref("team/secret:1"), kc: good, want: AccessDenied, code: "DENIED"},
		{name: "429 with Retry-After", image: limited.Ref("library/nginx:1.27"), want: RateLimited, code: "TOOMANYREQUESTS", detail: "Retry-After: 30"},
		{name: "token service refuses anonymous: private or missing", image: login.Ref("team/app:1"), want: NotFoundOrUnauthorized, detail: "refused an anonymous pull"},
		{name: "token service refuses a wrong password", image: login.Ref("team/app:1"), kc: keychain{"ci", "wrong"}, want: Unauthorized, detail: "token service rejected"},
		{name: "bearer with correct credentials", image: login.Ref("team/app:1"), kc: good},
		{name: "hub-like anonymous missing repo", image: hub.Ref("acme/nope:1"), want: NotFoundOrUnauthorized, code: "UNAUTHORIZED"},
		{name: "hub-like anonymous private repo", image: hub.Ref("acme/private:1"), want: NotFoundOrUnauthorized, code: "UNAUTHORIZED"},
		{name: "hub-like pod credentials, missing repo", image: hub.Ref("acme/nope:1"), kc: good, want: RepoNotFound, detail: "accepted the pod's credentials"},
		{name: "hub-like pod credentials, private repo", image: hub.Ref("acme/private:1"), kc: good},
		{name: "hub-like anonymous public repo", image: hub.Ref("library/nginx:1.27")},
		{name: "ecr-like no credentials", image: ecr.Ref("team/allowed:1"), want: Unauthorized},
		{name: "ecr-like allowed", image: ecr.Ref("team/allowed:1"), kc: keychain{"AWS", "token"}},
		{name: "ecr-like IAM deny", image: ecr.Ref("team/other:1"), kc: keychain{"AWS", "token"}, want: AccessDenied, code: "DENIED", detail: "ecr:BatchGetImage"},
		{name: "500 on every request", image: failing[500].Ref("team/app:1"), want: RegistryUnavailable, detail: "500 Internal Server Error"},
		{name: "502 from the proxy in front", image: failing[502].Ref("team/app:1"), want: RegistryUnavailable, detail: "502 Bad Gateway"},
		{name: "503 UNAVAILABLE", image: failing[503].Ref("team/app:1"), want: RegistryUnavailable},
		{name: "504 from the proxy in front", image: failing[504].Ref("team/app:1"), want: RegistryUnavailable, detail: "504 Gateway Timeout"},
		{name: "503 on the manifest, ping fine", image: failingRepo.Ref("team/app:1"), want: RegistryUnavailable, code: "UNAVAILABLE", detail: "server error"},
		{name: "ecr-like expired token", image: ecr.Ref("team/allowed:1"), kc: keychain{"expired", "token"}, want: CredentialsExpired},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newProber(t, WithTimeout(3*time.Second))
			res := p.Probe(context.Background(), tc.image, tc.kc, tc.platform)
			t.Logf("%s: ok=%t cause=%q detail=%q", tc.image, res.OK, res.Cause, res.Detail)
			for _, s := range res.Steps {
				t.Logf("  %s -> %s", s.Request, s.Result)
			}
			if res.Cause != tc.want || res.OK != (tc.want == "") {
				t.Fatalf("cause = %q (ok=%t), want %q", res.Cause, res.OK, tc.want)
			}
			if tc.want == "" {
				if res.Err != nil || !strings.HasPrefix(res.Digest, "sha256:") {
					t.Fatalf("ok probe: err=%v digest=%q", res.Err, res.Digest)
				}
				return
			}
			var pe *ProbeError
			if !errors.As(res.Err, &pe) || pe.Cause != tc.want {
				t.Fatalf("Err = %#v, want a *ProbeError with cause %s", res.Err, tc.want)
			}
			if tc.code != "" && pe.Code != tc.code {
				t.Errorf("code = %q, want %q", pe.Code, tc.code)
			}
			if !strings.Contains(res.Detail, tc.detail) {
				t.Errorf("detail %q lacks %q", res.Detail, tc.detail)
			}
			if tc.want == RegistryUnavailable && res.Reached() {
				t.Errorf("Reached() = true for a 5xx: the registry did not answer about the image")
			}
		})
	}

	t.Run("multi-arch platforms are listed", func(t *testing.T) {
		res := newProber(t).Probe(context.Background(), plain.Ref(ui), nil, arm64)
		if got := platformList(res.Platforms); got != "linux/amd64, linux/arm64" || res.Digest != rb[ui].String() {
			t.Fatalf("platforms %q digest %s, want linux/amd64, linux/arm64 and %s", got, res.Digest, rb[ui])
		}
	})
	t.Run("retry-after is surfaced", func(t *testing.T) {
		res := newProber(t).Probe(context.Background(), limited.Ref("library/nginx:1.27"), nil, amd64)
		var te *transport.Error
		if res.Err == nil || res.Err.RetryAfter != "30" || !errors.As(res.Err, &te) || te.StatusCode != 429 {
			t.Fatalf("want RetryAfter 30 and a wrapped 429 transport.Error, got %#v", res.Err)
		}
	})
}

func TestProbeNetworkFailures(t *testing.T) {
	network := registries.NewNetwork(t)
	ca := registries.NewCA(t)
	secure := registries.New(t, registries.WithTLS(ca), registries.WithHostname(network, "secure.test"))
	secure.Push(t, "team/app:1")
	plainHTTP := registries.New(t, registries.WithHostname(network, "plain.test"))
	plainHTTP.Push(t, "team/app:1")
	hole := registries.BlackHole(t)
	closed := registries.ClosedPort(t)

	// Long enough that a TLS handshake on loopback finishes when both cores
	// are loaded (the suite must pass under make stress), short enough to
	// keep the black hole's case quick.
	const timeout = 2 * time.Second
	cases := []struct {
		name  string
		image string
		opts  []Option
		want  Cause
	}{
		{name: "untrusted CA", image: secure.Ref("team/app:1"), opts: []Option{WithTransport(network.Transport(nil))}, want: TLSError},
		{name: "trusted CA", image: secure.Ref("team/app:1"), opts: []Option{WithTransport(network.Transport(ca.Pool))}},
		{name: "HTTPS client, plain-HTTP server", image: plainHTTP.Ref("team/app:1"), opts: []Option{WithTransport(network.Transport(nil))}, want: HTTPVsHTTPS},
		{name: "plain-HTTP server declared insecure", image: plainHTTP.Ref("team/app:1"), opts: []Option{WithTransport(network.Transport(nil)), WithInsecureRegistries(plainHTTP.Host)}},
		{name: "black hole", image: hole.Host + "/team/app:1", want: NetworkTimeout},
		{name: "connection refused", image: closed + "/team/app:1", want: ConnectionRefused},
		{name: "host does not resolve", image: "registry.something.invalid/team/app:1", opts: []Option{WithTransport(network.Transport(nil))}, want: DNSFailure},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newProber(t, append([]Option{WithTimeout(timeout)}, tc.opts...)...)
			start := time.Now()
			res := p.Probe(context.Background(), tc.image, nil, amd64)
			elapsed := time.Since(start)
			t.Logf("%s: cause=%q in %s: %s", tc.image, res.Cause, elapsed, res.Detail)
			if res.Cause != tc.want || res.OK != (tc.want == "") {
				t.Fatalf("cause = %q (ok=%t), want %q", res.Cause, res.OK, tc.want)
			}
			if tc.want != "" && res.Reached() {
				t.Errorf("Reached() = true for %s", tc.want)
			}
			if elapsed > 3*timeout {
				t.Errorf("probe took %s, more than 3× its %s timeout", elapsed, timeout)
			}
		})
	}

	t.Run("DNS stays on loopback", func(t *testing.T) {
		if !slices.ContainsFunc(network.Queries(), func(q string) bool { return strings.HasPrefix(q, "registry.something.invalid") }) {
			t.Fatalf("the local DNS server never saw the .invalid query: %v", network.Queries())
		}
	})
	t.Run("black hole accepted the connection", func(t *testing.T) {
		if hole.Accepted() == 0 {
			t.Fatal("the black hole accepted nothing: the timeout came from somewhere else")
		}
	})
	t.Run("keychain resolution is bounded", func(t *testing.T) {
		p := newProber(t, WithTimeout(timeout))
		start := time.Now()
		res := p.Probe(context.Background(), secure.Ref("team/app:1"), slowKeychain{}, amd64)
		// slowKeychain blocks for a minute: any bound well under that proves
		// the resolution is cut off; a generous one survives a loaded machine.
		if elapsed := time.Since(start); elapsed > 5*timeout || res.OK || !strings.Contains(res.Detail, "credentials") {
			t.Fatalf("slow keychain: ok=%t detail=%q after %s", res.OK, res.Detail, elapsed)
		}
	})
}

func TestProbeMirrorAndCache(t *testing.T) {
	reg := registries.New(t)
	registries.SeedRunbook(t, reg)
	var mu sync.Mutex
	var seen []RequestInfo
	p := newProber(t,
		WithMirrors(Mirrors{"public.ecr.aws": reg.Host}),
		WithRequestObserver(func(ri RequestInfo) { mu.Lock(); seen = append(seen, ri); mu.Unlock() }))
	image := "public.ecr.aws/" + registries.RetailUI + ":1.2.1"

	first := p.Probe(context.Background(), image, nil, arm64)
	if !first.OK || first.Image != image || !strings.HasPrefix(first.Fetched, reg.Host+"/") {
		t.Fatalf("mirrored probe: ok=%t image=%q fetched=%q (%s)", first.OK, first.Image, first.Fetched, first.Detail)
	}
	served := reg.Count()
	sent := p.Requests()
	t.Logf("first probe: %d requests sent (%d reached the registry): %v", sent, served, reg.Requests())
	if served == 0 || int(sent) != len(seen) {
		t.Fatalf("registry served %d, observer saw %d, Requests()=%d", served, len(seen), sent)
	}
	for _, ri := range seen {
		if ri.Host != reg.Host {
			t.Errorf("request to %s, want only the mirror %s", ri.Host, reg.Host)
		}
	}
	if manifests := reg.CountPath("/manifests/"); manifests != 1 {
		t.Errorf("success cost %d manifest requests, want 1", manifests)
	}

	second := p.Probe(context.Background(), image, nil, arm64)
	if !second.Cached || !second.OK || reg.Count() != served || p.Requests() != sent {
		t.Fatalf("second probe: cached=%t, registry requests %d→%d, sent %d→%d", second.Cached, served, reg.Count(), sent, p.Requests())
	}

	// Another image on the same registry reuses the cached ping: one request.
	before := reg.Count()
	third := p.Probe(context.Background(), "public.ecr.aws/"+registries.RetailCart+":1.2.1", nil, arm64)
	if !third.OK || reg.Count()-before != 1 {
		t.Fatalf("second image: ok=%t, %d registry requests (want 1): %v", third.OK, reg.Count()-before, reg.Requests()[before:])
	}

	// Other credentials are another cache entry.
	other := p.Probe(context.Background(), image, keychain{"u", "p"}, arm64)
	if other.Cached {
		t.Fatal("a probe with other credentials was answered from the cache")
	}
}

func TestProbeSingleFlightAndConcurrencyBound(t *testing.T) {
	reg := registries.New(t, registries.WithDelay(50*time.Millisecond))
	for i := range 8 {
		reg.Push(t, fmt.Sprintf("svc/app%d:1", i))
	}
	p := newProber(t, WithConcurrency(2))
	// Warm the ping so the bound is measured on manifest requests.
	p.Probe(context.Background(), reg.Ref("svc/app0:1"), nil, amd64)
	reg.ResetLog()

	var wg sync.WaitGroup
	for i := range 8 {
		for range 5 { // five pods of each workload fail at once
			wg.Go(func() {
				if res := p.Probe(context.Background(), reg.Ref(fmt.Sprintf("svc/app%d:1", i)), nil, amd64); !res.OK {
					t.Errorf("app%d: %s %s", i, res.Cause, res.Detail)
				}
			})
		}
	}
	wg.Wait()
	t.Logf("40 probes of 8 images: %d registry requests, peak %d in flight", reg.Count(), reg.InFlightMax())
	if got := reg.CountPath("/manifests/"); got != 7 {
		t.Errorf("manifest requests = %d, want 7 (app1..app7 once each; app0 cached)", got)
	}
	if peak := reg.InFlightMax(); peak > 2 {
		t.Errorf("peak in-flight requests = %d, want ≤ 2", peak)
	}
}

// An outage must not become a storm: with every probe hanging until its
// timeout, probes of many images wait for their registry's slots instead
// of opening connections all at once.
func TestProbeOutageIsBounded(t *testing.T) {
	hole := registries.BlackHole(t)
	type span struct{ start, end time.Time }
	var mu sync.Mutex
	var spans []span
	p := newProber(t, WithConcurrency(2), WithTimeout(200*time.Millisecond),
		WithRequestObserver(func(ri RequestInfo) {
			end := time.Now()
			mu.Lock()
			spans = append(spans, span{end.Add(-ri.Duration), end})
			mu.Unlock()
		}))
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			if res := p.Probe(context.Background(), fmt.Sprintf("%s/svc/app%d:1", hole.Host, i), nil, amd64); res.Cause != NetworkTimeout {
				t.Errorf("app%d: %s %s", i, res.Cause, res.Detail)
			}
		})
	}
	wg.Wait()
	// Requests in flight at once, from the probe's own clock.
	peak := 0
	for _, a := range spans {
		n := 0
		for _, b := range spans {
			if !b.start.After(a.start) && b.end.After(a.start) {
				n++
			}
		}
		peak = max(peak, n)
	}
	t.Logf("6 probes into a black hole: %d requests, %d connections, at most %d requests in flight", len(spans), hole.Accepted(), peak)
	// Each loopback probe may race HTTPS and HTTP (go-containerregistry's
	// rule for hosts it may reach over HTTP): two slots, two requests each.
	if peak > 2*2 {
		t.Errorf("%d requests in flight at once, want ≤ 4 (2 probes × 2 schemes)", peak)
	}
	if len(spans) > 6*2 || hole.Accepted() > 6*2 {
		t.Errorf("%d requests / %d connections for 6 probes: something retried", len(spans), hole.Accepted())
	}
}

func TestProbeCheckChildFindsDanglingIndex(t *testing.T) {
	reg := registries.New(t)
	registries.SeedRunbook(t, reg)
	reg.DeleteManifest(t, registries.RetailCart, reg.ChildDigest(t, registries.RetailCart+":1.2.1", "linux/arm64"))
	p := newProber(t)
	image := reg.Ref(registries.RetailCart + ":1.2.1")
	if res := p.probe(context.Background(), image, nil, amd64, probeMode{checkChild: true}); !res.OK {
		t.Fatalf("amd64 child exists: %s %s", res.Cause, res.Detail)
	}
	res := p.probe(context.Background(), image, nil, arm64, probeMode{checkChild: true})
	if res.Cause != DigestNotFound {
		t.Fatalf("arm64 child deleted: cause %q (%s), want digest_not_found", res.Cause, res.Detail)
	}
}

func TestVerifyReadsSingleImageConfig(t *testing.T) {
	reg := registries.New(t)
	registries.SeedRunbook(t, reg)
	p := newProber(t)
	image := reg.Ref(registries.RetailAssetsAMD64 + ":1.2.1")
	if res := p.Verify(context.Background(), image, nil, amd64); !res.OK || platformList(res.Platforms) != "linux/amd64" {
		t.Fatalf("amd64 node: ok=%t platforms=%v (%s)", res.OK, res.Platforms, res.Detail)
	}
	if res := p.Verify(context.Background(), image, nil, arm64); res.Cause != PlatformMismatch {
		t.Fatalf("arm64 node: cause %q, want platform_mismatch", res.Cause)
	}
}

func TestParseMirrors(t *testing.T) {
	m, err := ParseMirrors(" docker.io=mirror:5000 , public.ecr.aws=127.0.0.1:5001,")
	if err != nil {
		t.Fatal(err)
	}
	if to, ok := m.Lookup("index.docker.io"); !ok || to != "mirror:5000" {
		t.Errorf("docker.io mirror = %q %t", to, ok)
	}
	if to, ok := m.Lookup("public.ecr.aws"); !ok || to != "127.0.0.1:5001" {
		t.Errorf("public.ecr.aws mirror = %q %t", to, ok)
	}
	if got := m.String(); got != "index.docker.io=mirror:5000,public.ecr.aws=127.0.0.1:5001" {
		t.Errorf("String() = %q", got)
	}
	for _, bad := range []string{"docker.io", "=x", "docker.io=", "docker.io=https://mirror", "docker.io=a:1,index.docker.io=b:2"} {
		if _, err := ParseMirrors(bad); err == nil {
			t.Errorf("ParseMirrors(%q) accepted", bad)
		}
	}
	if m, err := ParseMirrors(""); err != nil || len(m) != 0 {
		t.Errorf("empty: %v %v", m, err)
	}
}

func TestClassifyErrorShapes(t *testing.T) {
	dns := &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}
	wrapped := fmt.Errorf("Get \"https://x.invalid/v2/\": %w", &net.OpError{Op: "dial", Err: dns})
	if pe := classifyError(wrapped, errorContext{}); pe.Cause != DNSFailure {
		t.Errorf("wrapped DNS error: %s", pe.Cause)
	}
	if pe := classifyError(context.DeadlineExceeded, errorContext{}); pe.Cause != NetworkTimeout {
		t.Errorf("deadline: %s", pe.Cause)
	}
	if pe := classifyError(errors.New("boom"), errorContext{}); pe.Cause != Unknown {
		t.Errorf("plain error: %s", pe.Cause)
	}
}

// BenchmarkProbe measures one probe of a multi-arch image on a loopback
// registry: "cold" with every cache off (ping included, and on loopback
// go-containerregistry's HTTPS attempt first), "miss" with the result not
// cached but the registry's ping known (new credentials each time), and
// "hit" answered from the result cache.
func BenchmarkProbe(b *testing.B) {
	reg := registries.New(b)
	registries.SeedRunbook(b, reg)
	image := reg.Ref(registries.RetailUI + ":1.2.1")
	run := func(b *testing.B, p *Prober, kc func(i int) authn.Keychain) {
		p.Probe(context.Background(), image, kc(-1), arm64)
		before := p.Requests()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if res := p.Probe(context.Background(), image, kc(i), arm64); !res.OK {
				b.Fatal(res.Detail)
			}
			i++
		}
		b.ReportMetric(float64(p.Requests()-before)/float64(i), "requests/op")
	}
	anonymous := func(int) authn.Keychain { return nil }
	b.Run("cold", func(b *testing.B) { run(b, newProber(b, WithCacheTTL(0)), anonymous) })
	b.Run("miss", func(b *testing.B) {
		run(b, newProber(b), func(i int) authn.Keychain { return keychain{"bench", fmt.Sprint(i)} })
	})
	b.Run("hit", func(b *testing.B) { run(b, newProber(b), anonymous) })
}
