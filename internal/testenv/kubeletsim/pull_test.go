package kubeletsim

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/pullfix/pullfix/internal/testenv/registries"
)

// These tests need no control plane: they drive the simulator's pull against
// loopback registries and compare the texts byte for byte.

const ecr = "123456789012.dkr.ecr.us-west-2.amazonaws.com"

func pullText(t *testing.T, s *Simulator, image string, auth authn.Authenticator) (pulled, string) {
	t.Helper()
	r, err := parseImage(image)
	if err != nil {
		t.Fatalf("parse %q: %v", image, err)
	}
	if auth == nil {
		auth = authn.Anonymous
	}
	p, err := s.pullOnce(context.Background(), s.nodes[0], r, auth)
	if err != nil {
		return p, err.Error()
	}
	return p, ""
}

func TestPullTexts(t *testing.T) {
	plain := registries.New(t)
	registries.SeedRunbook(t, plain)
	hub := registries.New(t, registries.WithBearerAuth(registries.HubLike(map[string]string{"alice": "pw"}, "acme/*")))
	hub.Push(t, "acme/private-app:1.0", "linux/amd64")
	basic := registries.New(t, registries.WithBasicAuth(registries.BasicAuth{Users: map[string]registries.BasicUser{"AWS": {Password: "token", Repos: []string{"team/allowed"}}}}))
	basic.Push(t, "team/app:2.0", "linux/amd64")
	denied := registries.New(t, registries.WithDenied("blocked/*"))
	denied.Push(t, "blocked/app:1", "linux/amd64")
	limited := registries.New(t, registries.WithRateLimit(registries.RateLimit{After: 0, RetryAfter: "30"}))
	ca := registries.NewCA(t)
	tlsReg := registries.New(t, registries.WithTLS(ca))
	tlsReg.Push(t, "secure/app:1", "linux/amd64")
	hole := registries.BlackHole(t)

	s := New(nil, WithPullTimeout(700*time.Millisecond), WithMirrors(map[string]string{
		"public.ecr.aws":    plain.Host,
		"docker.io":         hub.Host,
		ecr:                 basic.Host,
		"quay.io":           denied.Host,
		"ghcr.io":           limited.Host,
		"registry.k8s.io":   tlsReg.Host,
		"gcr.io":            hole.Host,
		"mcr.microsoft.com": registries.ClosedPort(t),
	}))
	s.SetRoute("nowhere.example.com", RouteNXDomain)

	ui := "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1"
	cases := []struct {
		name, image string
		auth        authn.Authenticator
		want        string
	}{
		{"ok", ui, nil, ""},
		{"not found (runbook)", "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1", nil,
			`rpc error: code = NotFound desc = failed to pull and unpack image "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1": failed to resolve reference "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1": public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1: not found`},
		{"platform (index without the node's)", "public.ecr.aws/" + registries.RetailUtilsAMD64Index + ":1.2.1", nil, ""},
		{"docker hub insufficient_scope", "acme/private-app:1.0", nil,
			`failed to pull and unpack image "docker.io/acme/private-app:1.0": failed to resolve reference "docker.io/acme/private-app:1.0": pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed`},
		{"docker hub with credentials", "acme/private-app:1.0", authn.FromConfig(authn.AuthConfig{Username: "alice", Password: "pw"}), ""},
		{"ecr 401", ecr + "/team/app:2.0", nil,
			`failed to pull and unpack image "` + ecr + `/team/app:2.0": failed to resolve reference "` + ecr + `/team/app:2.0": unexpected status from HEAD request to https://` + ecr + `/v2/team/app/manifests/2.0: 401 Unauthorized`},
		{"ecr 403", ecr + "/team/app:2.0", authn.FromConfig(authn.AuthConfig{Username: "AWS", Password: "token"}),
			`failed to pull and unpack image "` + ecr + `/team/app:2.0": failed to resolve reference "` + ecr + `/team/app:2.0": unexpected status from HEAD request to https://` + ecr + `/v2/team/app/manifests/2.0: 403 Forbidden`},
		{"403 denied", "quay.io/blocked/app:1", nil,
			`failed to pull and unpack image "quay.io/blocked/app:1": failed to resolve reference "quay.io/blocked/app:1": unexpected status from HEAD request to https://quay.io/v2/blocked/app/manifests/1: 403 Forbidden`},
		{"429", "ghcr.io/org/app:1", nil,
			`failed to pull and unpack image "ghcr.io/org/app:1": failed to resolve reference "ghcr.io/org/app:1": unexpected status from HEAD request to https://ghcr.io/v2/org/app/manifests/1: 429 Too Many Requests`},
		{"tls unknown authority", "registry.k8s.io/secure/app:1", nil,
			`failed to pull and unpack image "registry.k8s.io/secure/app:1": failed to resolve reference "registry.k8s.io/secure/app:1": failed to do request: Head "https://registry.k8s.io/v2/secure/app/manifests/1": tls: failed to verify certificate: x509: certificate signed by unknown authority`},
		{"black hole", "gcr.io/proj/app:1", nil,
			`rpc error: code = DeadlineExceeded desc = failed to pull and unpack image "gcr.io/proj/app:1": failed to resolve reference "gcr.io/proj/app:1": failed to do request: Head "https://gcr.io/v2/proj/app/manifests/1": dial tcp ` + dialAddr("gcr.io") + `: i/o timeout`},
		{"refused", "mcr.microsoft.com/app:1", nil,
			`failed to pull and unpack image "mcr.microsoft.com/app:1": failed to resolve reference "mcr.microsoft.com/app:1": failed to do request: Head "https://mcr.microsoft.com/v2/app/manifests/1": dial tcp ` + dialAddr("mcr.microsoft.com") + `: connect: connection refused`},
		{"dns", "nowhere.example.com/app:1", nil,
			`failed to pull and unpack image "nowhere.example.com/app:1": failed to resolve reference "nowhere.example.com/app:1": failed to do request: Head "https://nowhere.example.com/v2/app/manifests/1": dial tcp: lookup nowhere.example.com on 10.0.0.2:53: no such host`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, got := pullText(t, s, c.image, c.auth)
			if got != c.want {
				t.Fatalf("got  %q\nwant %q", got, c.want)
			}
			if c.want == "" && !strings.Contains(p.imageID, "@sha256:") {
				t.Fatalf("imageID %q", p.imageID)
			}
		})
	}

	t.Run("platform mismatch on arm64", func(t *testing.T) {
		arm := New(nil, WithPlatform("linux", "arm64", ""), WithMirrors(map[string]string{"public.ecr.aws": plain.Host}))
		for _, repo := range []string{registries.RetailUtilsAMD64Index, registries.RetailAssetsAMD64} {
			img := "public.ecr.aws/" + repo + ":1.2.1"
			_, got := pullText(t, arm, img, nil)
			want := `rpc error: code = NotFound desc = failed to pull and unpack image "` + img + `": no match for platform in manifest: not found`
			if got != want {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		}
		if _, got := pullText(t, arm, ui, nil); got != "" {
			t.Errorf("multi-arch image on arm64: %s", got)
		}
	})

	t.Run("tls with the CA trusted", func(t *testing.T) {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig.RootCAs = ca.Pool
		trusted := New(nil, WithTransport(tr), WithMirrors(map[string]string{"registry.k8s.io": tlsReg.Host}))
		if _, got := pullText(t, trusted, "registry.k8s.io/secure/app:1", nil); got != "" {
			t.Fatal(got)
		}
	})
}

func TestParseImage(t *testing.T) {
	for _, c := range []struct{ in, full, withTag string }{
		{"nginx", "docker.io/library/nginx:latest", "nginx:latest"},
		{"nginx:1.27", "docker.io/library/nginx:1.27", "nginx:1.27"},
		{"public.ecr.aws/a/b:1.2.1", "public.ecr.aws/a/b:1.2.1", "public.ecr.aws/a/b:1.2.1"},
		{"quay.io/x/y:v1@sha256:5b81db7a32cb7e2d00bb3cf332277ec2b3be239d9e94a8d979915f4e6648c787",
			"quay.io/x/y@sha256:5b81db7a32cb7e2d00bb3cf332277ec2b3be239d9e94a8d979915f4e6648c787",
			"quay.io/x/y:v1@sha256:5b81db7a32cb7e2d00bb3cf332277ec2b3be239d9e94a8d979915f4e6648c787"},
	} {
		r, err := parseImage(c.in)
		if err != nil || r.full != c.full || r.withTag != c.withTag {
			t.Errorf("parseImage(%q) = %+v, %v", c.in, r, err)
		}
	}
	_, err := parseImage("taigaio/taiga-back: {{ .Chart.AppVersion }}")
	want := `couldn't parse image name "taigaio/taiga-back: {{ .Chart.AppVersion }}": invalid reference format`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestKeyMatches(t *testing.T) {
	r, _ := parseImage("acme/app:1")
	e, _ := parseImage(ecr + "/team/app:2")
	for _, c := range []struct {
		key string
		r   imageRef
		ok  bool
	}{
		{"https://index.docker.io/v1/", r, true},
		{"docker.io", r, true},
		{"docker.io/acme", r, true},
		{"docker.io/other", r, false},
		{"*.dkr.ecr.us-west-2.amazonaws.com", e, true},
		{"*.amazonaws.com", e, false},
		{ecr + ":5000", e, false},
	} {
		if got := keyMatches(c.key, c.r); got != c.ok {
			t.Errorf("keyMatches(%q, %s) = %v", c.key, c.r.full, got)
		}
	}
}

// TestPullTextsContainerd16: with WithContainerdVersion(Containerd16) a
// refused resolve is worded as Debian 12's containerd 1.6.20 words it on
// the real test node (internal/testenv/node's honesty test); a missing
// image reads the same in both versions.
func TestPullTextsContainerd16(t *testing.T) {
	plain := registries.New(t)
	registries.SeedRunbook(t, plain)
	basic := registries.New(t, registries.WithBasicAuth(registries.BasicAuth{Users: map[string]registries.BasicUser{"AWS": {Password: "token"}}}))
	basic.Push(t, "team/app:2.0", "linux/amd64")
	s := New(nil, WithContainerdVersion(Containerd16), WithMirrors(map[string]string{"public.ecr.aws": plain.Host, ecr: basic.Host}))
	for _, c := range []struct{ image, want string }{
		{ecr + "/team/app:2.0",
			`failed to pull and unpack image "` + ecr + `/team/app:2.0": failed to resolve reference "` + ecr + `/team/app:2.0": pulling from host ` + ecr + ` failed with status code [manifests 2.0]: 401 Unauthorized`},
		{"public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1",
			`rpc error: code = NotFound desc = failed to pull and unpack image "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1": failed to resolve reference "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1": public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1: not found`},
	} {
		if _, got := pullText(t, s, c.image, nil); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.image, got, c.want)
		}
	}
}
