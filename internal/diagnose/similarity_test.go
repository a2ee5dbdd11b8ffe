package diagnose

import "testing"

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"nginx", "ngnix", 1}, {"1.2.1", "1.2.l", 1},
		{"retailing-store-sample-ui", "retail-store-sample-ui", 3},
		{"kitten", "sitting", 3}, {"ca", "abc", 3},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := editDistance(tc.b, tc.a); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d (symmetry)", tc.b, tc.a, got, tc.want)
		}
	}
}

func TestPlausibleRepo(t *testing.T) {
	for _, tc := range []struct {
		want, have string
		ok         bool
	}{
		{"aws-containers/retailing-store-sample-ui", "aws-containers/retail-store-sample-ui", true},
		{"aws-containers/retailing-store-sample-ui", "aws-containers/retail-store-sample-cart", false},
		{"aws-containers/retail-store-sample-asset", "aws-containers/retail-store-sample-assets", true},
		{"aws-containers/retail-store-sample-asset", "aws-containers/retail-store-sample-cart", false},
		{"library/ngnix", "library/nginx", true},
		{"library/redis", "library/nginx", false},
		{"aws-container/retail-store-sample-ui", "aws-containers/retail-store-sample-ui", true},
		{"acme/retail-store-sample-ui", "aws-containers/retail-store-sample-ui", false},
		{"team/payments-api", "team/payments", false}, // a word dropped from a short name is too far
		{"team/app", "team/sub/app", false},
	} {
		d, ok := plausibleRepo(tc.want, tc.have)
		if ok != tc.ok {
			t.Errorf("plausibleRepo(%q, %q) = %t (distance %d), want %t", tc.want, tc.have, ok, d, tc.ok)
		}
	}
}

func TestTagNearness(t *testing.T) {
	for _, tc := range []struct {
		want       string
		nearer     string
		further    string
		furtherBad bool // further is not plausible at all
	}{
		{want: "1.2.2", nearer: "1.2.1", further: "1.2.3"},
		{want: "1.2.2", nearer: "1.2.3", further: "1.1.0"},
		{want: "1.2.2", nearer: "1.1.0", further: "2.2.2", furtherBad: true},
		{want: "1.2.l", nearer: "1.2.1", further: "latest", furtherBad: true},
		{want: "v1.2.1", nearer: "1.2.1", further: "1.2.0"},
		{want: "1.2.1", nearer: "1.2.0", further: "sha256-abc.sig", furtherBad: true},
	} {
		n, okN := tagNearness(tc.want, tc.nearer)
		f, okF := tagNearness(tc.want, tc.further)
		if !okN {
			t.Errorf("%s → %s not plausible", tc.want, tc.nearer)
			continue
		}
		if tc.furtherBad {
			if okF {
				t.Errorf("%s → %s plausible (score %d), want not", tc.want, tc.further, f)
			}
			continue
		}
		if !okF || n >= f {
			t.Errorf("%s: %s (%d) should rank before %s (%d, ok=%t)", tc.want, tc.nearer, n, tc.further, f, okF)
		}
	}
}

func TestPlatformMatches(t *testing.T) {
	for _, tc := range []struct {
		have, want Platform
		ok         bool
	}{
		{Platform{"linux", "arm64", "v8"}, Platform{"linux", "arm64", ""}, true},
		{Platform{"linux", "arm64", ""}, Platform{"linux", "arm64", "v8"}, true},
		{Platform{"linux", "arm", "v6"}, Platform{"linux", "arm", "v7"}, false},
		{Platform{"linux", "amd64", ""}, Platform{"linux", "arm64", ""}, false},
		{Platform{"windows", "amd64", ""}, Platform{"linux", "amd64", ""}, false},
	} {
		if got := platformMatches(tc.have, tc.want); got != tc.ok {
			t.Errorf("platformMatches(%s, %s) = %t, want %t", tc.have, tc.want, got, tc.ok)
		}
	}
}
