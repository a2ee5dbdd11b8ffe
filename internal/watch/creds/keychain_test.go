package creds

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/testenv/registries"
)

// onlyResolve hides every method but Resolve: a keychain that hands out one
// credential, as go-containerregistry's own do.
type onlyResolve struct{ kc authn.Keychain }

func (o onlyResolve) Resolve(r authn.Resource) (authn.Authenticator, error) { return o.kc.Resolve(r) }

// TestPullSecretsTriedInTurn: two pull secrets match a private image — a
// stale team-specific one (most specific, so first) and a working
// registry-wide one. The kubelet would pull with the second; so must the
// probe. With the first credential only, the probe is refused.
func TestPullSecretsTriedInTurn(t *testing.T) {
	cases := []struct {
		name string
		opt  registries.Option
	}{
		{"bearer token service", registries.WithBearerAuth(registries.BearerAuth{
			Users: map[string]string{"ci": "s3cret"}, Private: []string{"team/*"}, RequireLogin: true})},
		{"basic auth", registries.WithBasicAuth(registries.BasicAuth{Users: map[string]registries.BasicUser{
			"ci": {Password: "s3cret"}}})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			reg := registries.New(t, tc.opt)
			reg.Push(t, "team/app:1")
			secret := func(name, key, user, pass string) *corev1.Secret {
				return &corev1.Secret{
					ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
					Type:       corev1.SecretTypeDockerConfigJson,
					Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(fmt.Sprintf(
						`{"auths":{%q:{"username":%q,"password":%q}}}`, key, user, pass))},
				}
			}
			kc, errs := KeychainFromSecrets([]*corev1.Secret{
				secret("org", reg.Host, "ci", "s3cret"),
				secret("team-stale", reg.Host+"/team", "ci", "rotated-away"),
			})
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			image := reg.Ref("team/app:1")
			if got := len(kc.Alternatives(mustRepo(t, image))); got != 2 {
				t.Fatalf("%d alternatives, want both secrets", got)
			}
			p, err := diagnose.NewProber(diagnose.WithTimeout(3 * time.Second))
			if err != nil {
				t.Fatal(err)
			}
			platform := diagnose.Platform{OS: "linux", Architecture: "amd64"}
			if res := p.Probe(t.Context(), image, onlyResolve{kc}, platform); res.OK {
				t.Fatalf("probe with the most specific (stale) credential only succeeded; the test proves nothing")
			}
			res := p.Probe(t.Context(), image, kc, platform)
			if !res.OK {
				t.Fatalf("probe with both pull secrets: cause %s (%s), want OK as the kubelet would pull", res.Cause, res.Detail)
			}
			for _, s := range res.Steps {
				if strings.Contains(s.Request+s.Result, "s3cret") || strings.Contains(s.Request+s.Result, "rotated-away") {
					t.Errorf("step %+v shows a password", s)
				}
			}
		})
	}
}

func mustRepo(t *testing.T, image string) authn.Resource {
	t.Helper()
	ref, err := name.ParseReference(image)
	if err != nil {
		t.Fatal(err)
	}
	return ref.Context()
}
