package diagnose

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/pullfix/pullfix/internal/testenv/registries"
)

// multi is a MultiKeychain over fixed credentials, most specific first, as
// the watcher's pull-secret keychain offers them; Resolve returns the first.
type multi []keychain

func (m multi) Resolve(r authn.Resource) (authn.Authenticator, error) { return m[0].Resolve(r) }

func (m multi) Alternatives(authn.Resource) []authn.Keychain {
	out := make([]authn.Keychain, len(m))
	for i, k := range m {
		out[i] = k
	}
	return out
}

// TestProbeTriesEveryMatchingCredential: when two credentials match and
// the first is refused, the probe succeeds with the second, as the kubelet
// would pull; a plain keychain holding only the first fails; when all are
// refused the first refusal is reported, saying how many were tried.
func TestProbeTriesEveryMatchingCredential(t *testing.T) {
	login := registries.New(t, registries.WithBearerAuth(registries.BearerAuth{
		Users: map[string]string{"ci": "s3cret", "old": "pw"}, Private: []string{"team/*"}, RequireLogin: true,
	}))
	login.Push(t, "team/app:1")
	ecr := registries.New(t, registries.WithBasicAuth(registries.BasicAuth{Users: map[string]registries.BasicUser{
		"AWS":     {Password: "token", Repos: []string{"team/allowed"}},
		"expired": {Password: "token", Expired: true},
	}}))
	ecr.Push(t, "team/allowed:1")

	cases := []struct {
		name   string
		image  string
		kc     authn.Keychain
		want   Cause // "" = OK
		detail string
		tries  int // minimum requests expected (every attempt is evidence)
		// maxSteps, when set, bounds the requests: no second credential.
		maxSteps int
	}{
		{name: "bearer: wrong then right", image: login.Ref("team/app:1"), kc: multi{{"ci", "wrong"}, {"ci", "s3cret"}}, tries: 3},
		{name: "bearer: first only", image: login.Ref("team/app:1"), kc: keychain{"ci", "wrong"}, want: Unauthorized},
		{name: "bearer: all refused", image: login.Ref("team/app:1"), kc: multi{{"ci", "wrong"}, {"old", "wrong"}},
			want: Unauthorized, detail: "all 2 matching credentials were refused"},
		{name: "basic: unknown user then right", image: ecr.Ref("team/allowed:1"), kc: multi{{"nobody", "x"}, {"AWS", "token"}}, tries: 2},
		{name: "basic: expired then right", image: ecr.Ref("team/allowed:1"), kc: multi{{"expired", "token"}, {"AWS", "token"}}, tries: 2},
		{name: "basic: expired only", image: ecr.Ref("team/allowed:1"), kc: keychain{"expired", "token"}, want: CredentialsExpired},
		{name: "basic: right first, duplicates skipped", image: ecr.Ref("team/allowed:1"), kc: multi{{"AWS", "token"}, {"AWS", "token"}}, tries: 1},
		{name: "basic: all refused, the most specific refusal reported", image: ecr.Ref("team/missing:1"), kc: multi{{"AWS", "token"}, {"nobody", "x"}},
			want: AccessDenied, detail: "ecr:BatchGetImage"},
		{name: "not an auth failure: no other credential tried", image: ecr.Ref("team/allowed:2"), kc: multi{{"AWS", "token"}, {"nobody", "x"}},
			want: TagNotFound, maxSteps: 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newProber(t, WithTimeout(3*time.Second))
			res := p.Probe(t.Context(), tc.image, tc.kc, amd64)
			for _, s := range res.Steps {
				t.Logf("  %s -> %s", s.Request, s.Result)
			}
			if res.OK != (tc.want == "") || res.Cause != tc.want {
				t.Fatalf("ok=%t cause=%q detail=%q, want cause %q", res.OK, res.Cause, res.Detail, tc.want)
			}
			if !strings.Contains(res.Detail, tc.detail) {
				t.Errorf("detail %q lacks %q", res.Detail, tc.detail)
			}
			if len(res.Steps) < tc.tries {
				t.Errorf("%d requests recorded, want at least %d (every attempt)", len(res.Steps), tc.tries)
			}
			if tc.maxSteps > 0 && len(res.Steps) > tc.maxSteps {
				// ping, token, manifest, and the tags list that settles
				// repository vs tag (and feeds the nearest-tag search).
				t.Errorf("%d requests, want at most %d: a missing tag is no reason to try other credentials", len(res.Steps), tc.maxSteps)
			}
			if res.Image != tc.image {
				t.Errorf("image %q, want as asked %q", res.Image, tc.image)
			}
		})
	}
}

// TestListingTriesEveryMatchingCredential: tag listings (nearest-tag
// candidates) use the second credential when the first is refused.
func TestListingTriesEveryMatchingCredential(t *testing.T) {
	login := registries.New(t, registries.WithBearerAuth(registries.BearerAuth{
		Users: map[string]string{"ci": "s3cret"}, Private: []string{"team/*"}, RequireLogin: true,
	}))
	login.Push(t, "team/app:1")
	login.Push(t, "team/app:2")
	repo := strings.TrimSuffix(login.Ref("team/app:1"), ":1")
	p := newProber(t, WithTimeout(3*time.Second))
	if _, err := p.Tags(context.Background(), repo, keychain{"ci", "wrong"}); err == nil {
		t.Fatal("tags listed with a wrong password only")
	}
	tags, err := p.Tags(context.Background(), repo, multi{{"ci", "wrong"}, {"ci", "s3cret"}})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(tags)
	if !slices.Equal(tags, []string{"1", "2"}) {
		t.Errorf("tags %v, want [1 2]", tags)
	}
}
