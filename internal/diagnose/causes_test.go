package diagnose

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/pullfix/pullfix/internal/testenv/registries"
)

// ctrdMsg is containerd's Failed message around an error, as the kubelet
// writes it.
func ctrdMsg(image, err string) string {
	return fmt.Sprintf(`Failed to pull image %q: rpc error: code = Unknown desc = failed to pull and unpack image %q: failed to resolve reference %q: %s`, image, image, image, err)
}

// TestEveryCauseAtTheRegistry diagnoses one failure of each cause against
// loopback registries (go-containerregistry's pkg/registry behind the
// auth, fault and network wrappers of internal/testenv/registries): the
// kubelet's words give the offline cause, the probe confirms it (certainty
// registry) or, for the causes no registry can speak to (the reference
// text, the node's pull policy and disk), the diagnosis stays with the
// words and sends no request.
func TestEveryCauseAtTheRegistry(t *testing.T) {
	plain := registries.New(t)
	registries.SeedRunbook(t, plain)
	hub := registries.New(t, registries.WithBearerAuth(registries.HubLike(nil, "acme/*")))
	hub.Push(t, "acme/private:1")
	ecr := registries.New(t, registries.WithBasicAuth(registries.BasicAuth{Users: map[string]registries.BasicUser{
		"AWS":     {Password: "token", Repos: []string{"team/allowed"}},
		"expired": {Password: "token", Expired: true},
	}}))
	ecr.Push(t, "team/allowed:1")
	ecr.Push(t, "team/other:1")
	limited := registries.New(t, registries.WithRateLimit(registries.RateLimit{RetryAfter: "30"}))
	limited.Push(t, "library/nginx:1.27")
	failing := registries.New(t, registries.WithServerError(registries.ServerError{Status: http.StatusServiceUnavailable}))
	network := registries.NewNetwork(t)
	ca := registries.NewCA(t)
	secure := registries.New(t, registries.WithTLS(ca), registries.WithHostname(network, "secure.test"))
	secure.Push(t, "team/app:1")
	plainHTTP := registries.New(t, registries.WithHostname(network, "plain.test"))
	plainHTTP.Push(t, "team/app:1")
	hole := registries.BlackHole(t)
	closed := registries.ClosedPort(t)

	ui := "public.ecr.aws/" + registries.RetailUI
	const missingDigest = "sha256:abababababababababababababababababababababababababababababababab"
	cases := []struct {
		cause   Cause
		image   string
		reason  string
		msg     string // the kubelet's message; "" = ctrdMsg(image, err)
		err     string
		kc      authn.Keychain
		opts    []Option
		arm64   bool
		words   Cause // the offline cause, when it differs
		noProbe bool  // the registry cannot speak to it: no request
	}{
		{cause: RepoNotFound, image: "public.ecr.aws/" + registries.RetailingUI + ":1.2.1", err: "public.ecr.aws/" + registries.RetailingUI + ":1.2.1: not found", words: ImageNotFound},
		{cause: TagNotFound, image: ui + ":1.2.9", err: ui + ":1.2.9: not found", words: ImageNotFound},
		{cause: DigestNotFound, image: ui + "@" + missingDigest, err: ui + "@" + missingDigest + ": not found"},
		{cause: ImageNotFound, image: closed + "/team/app:1", err: closed + "/team/app:1: not found"},
		{cause: NotFoundOrUnauthorized, image: hub.Ref("acme/nope:1"), err: "pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed"},
		{cause: Unauthorized, image: ecr.Ref("team/allowed:1"), err: "unexpected status from HEAD request to http://" + ecr.Host + "/v2/team/allowed/manifests/1: 401 Unauthorized"},
		{cause: AccessDenied, image: ecr.Ref("team/other:1"), kc: keychain{"AWS", "token"}, err: "failed to authorize: failed to fetch oauth token: unexpected status: 403 Forbidden"},
		{cause: CredentialsExpired, image: ecr.Ref("team/allowed:1"), kc: keychain{"expired", "token"}, err: "unexpected status: 403 Forbidden: denied: Your authorization token has expired. Reauthenticate and try again."},
		{cause: RateLimited, image: limited.Ref("library/nginx:1.27"), err: "unexpected status from HEAD request to http://" + limited.Host + "/v2/library/nginx/manifests/1.27: 429 Too Many Requests"},
		{cause: RegistryUnavailable, image: failing.Ref("team/app:1"), err: "unexpected status from HEAD request to http://" + failing.Host + "/v2/team/app/manifests/1: 503 Service Unavailable"},
		{cause: DNSFailure, image: "registry.nowhere.invalid/team/app:1", opts: []Option{WithTransport(network.Transport(nil))},
			err: `failed to do request: Head "https://registry.nowhere.invalid/v2/team/app/manifests/1": dial tcp: lookup registry.nowhere.invalid on 10.96.0.10:53: no such host`},
		{cause: NetworkTimeout, image: hole.Host + "/team/app:1", opts: []Option{WithTimeout(400 * time.Millisecond)},
			err: `failed to do request: Head "https://` + hole.Host + `/v2/team/app/manifests/1": dial tcp ` + hole.Host + `: i/o timeout`},
		{cause: ConnectionRefused, image: closed + "/team/app:2", err: `failed to do request: Head "https://` + closed + `/v2/team/app/manifests/2": dial tcp ` + closed + `: connect: connection refused`},
		{cause: TLSError, image: secure.Ref("team/app:1"), opts: []Option{WithTransport(network.Transport(nil))},
			err: `failed to do request: Head "https://` + secure.Host + `/v2/team/app/manifests/1": tls: failed to verify certificate: x509: certificate signed by unknown authority`},
		{cause: HTTPVsHTTPS, image: plainHTTP.Ref("team/app:1"), opts: []Option{WithTransport(network.Transport(nil))},
			err: `failed to do request: Head "https://` + plainHTTP.Host + `/v2/team/app/manifests/1": http: server gave HTTP response to HTTPS client`},
		{cause: PlatformMismatch, image: "public.ecr.aws/" + registries.RetailUtilsAMD64Index + ":1.2.1", arm64: true, err: "no match for platform in manifest: not found"},
		{cause: InvalidReference, image: "public.ecr.aws/aws-containers/UI:1.2.1", reason: "InvalidImageName",
			msg: `Failed to apply default image tag "public.ecr.aws/aws-containers/UI:1.2.1": couldn't parse image name "public.ecr.aws/aws-containers/UI:1.2.1": invalid reference format: repository name must be lowercase`, noProbe: true},
		{cause: NeverPull, image: ui + ":1.2.1", reason: "ErrImageNeverPull", msg: `Container image "` + ui + `:1.2.1" is not present with pull policy of Never`, noProbe: true},
		{cause: UnpackFailed, image: ui + ":1.2.1", err: "failed to extract layer sha256:1111111111111111111111111111111111111111111111111111111111111111: write /var/lib/containerd/x: no space left on device: unknown", noProbe: true},
		{cause: Unknown, image: ui + ":1.2.1", err: "something nobody has seen before happened"},
	}
	covered := map[Cause]bool{}
	for _, tc := range cases {
		covered[tc.cause] = true
		t.Run(string(tc.cause), func(t *testing.T) {
			msg := tc.msg
			if msg == "" {
				msg = ctrdMsg(tc.image, tc.err)
			}
			reason := tc.reason
			if reason == "" {
				reason = "ErrImagePull"
			}
			words := tc.words
			if words == "" {
				words = tc.cause
			}
			if c := Classify(reason, msg); c.Cause != words || c.Certainty != CertaintyWords {
				t.Fatalf("offline: %s (%s), want %s from the words", c.Cause, c.Certainty, words)
			}
			platform := amd64
			if tc.arm64 {
				platform = arm64
			}
			opts := append([]Option{WithMirrors(Mirrors{registries.PublicECR: plain.Host}), WithTimeout(3 * time.Second)}, tc.opts...)
			p := newProber(t, opts...)
			d := NewDiagnoser(p).Diagnose(context.Background(), Target{Image: tc.image, Reason: reason, Message: msg, Platform: platform}, tc.kc)
			logDiagnosis(t, d)
			if d.Cause != tc.cause {
				t.Fatalf("cause %s (%s, certainty %s), want %s", d.Cause, d.Confidence, d.Certainty, tc.cause)
			}
			switch {
			case tc.noProbe:
				if p.Requests() != 0 || d.Certainty != CertaintyWords {
					t.Errorf("%d requests, certainty %s: the registry cannot speak to %s", p.Requests(), d.Certainty, tc.cause)
				}
			case tc.cause == ImageNotFound || tc.cause == Unknown:
				// The probe could not settle it (nothing listens), or the
				// registry serves the image: the words stand.
				if d.Certainty != CertaintyWords || p.Requests() == 0 {
					t.Errorf("certainty %s after %d requests, want words after asking", d.Certainty, p.Requests())
				}
			default:
				if d.Certainty != CertaintyRegistry {
					t.Errorf("certainty %s, want registry: the probe answered %s", d.Certainty, tc.cause)
				}
				if !hasEvidence(d, FromProbe, "registry probe") {
					t.Errorf("no probe evidence: %+v", d.Evidence)
				}
			}
			if d.Summary == "" || d.Remedy == "" {
				t.Errorf("summary %q remedy %q", d.Summary, d.Remedy)
			}
		})
	}
	for _, c := range Causes() {
		if !covered[c] {
			t.Errorf("cause %s has no case here", c)
		}
	}
	for _, internal := range []Cause{manifestMissing, genericNotFound, forbidden} {
		if slices.Contains(Causes(), internal) {
			t.Errorf("internal verdict %s leaks into Causes()", internal)
		}
	}
}
