package creds

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/testenv/registries"
)

const ecrRegistry = "123456789012.dkr.ecr.us-west-2.amazonaws.com"

// fakeECR answers the ECR JSON protocol's GetAuthorizationToken with
// "AWS:<password>" and counts the calls; any other target is a 400.
func fakeECR(t *testing.T, password string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") != "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken" {
			http.Error(w, `{"__type":"UnknownOperationException"}`, http.StatusBadRequest)
			return
		}
		// Signed with the bot's key, for the image's region.
		if a := r.Header.Get("Authorization"); !strings.Contains(a, "AKIDTEST/") || !strings.Contains(a, "/us-west-2/ecr/") {
			http.Error(w, `{"__type":"UnrecognizedClientException"}`, http.StatusForbidden)
			return
		}
		calls.Add(1)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_ = json.NewEncoder(w).Encode(map[string]any{"authorizationData": []map[string]any{{
			"authorizationToken": base64.StdEncoding.EncodeToString([]byte("AWS:" + password)),
			"expiresAt":          float64(time.Now().Add(12 * time.Hour).Unix()),
			"proxyEndpoint":      "https://" + ecrRegistry,
		}}})
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

// awsEnv gives the process static AWS credentials (or none) and no
// shared configuration, so the test sees only what it sets.
func awsEnv(t *testing.T, endpoint string, withCreds bool) {
	dir := t.TempDir()
	for k, v := range map[string]string{
		"AWS_CONFIG_FILE": filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_REGION": "eu-central-1", "AWS_ENDPOINT_URL_ECR": endpoint,
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
		"AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
	} {
		t.Setenv(k, v)
	}
	if withCreds {
		t.Setenv("AWS_ACCESS_KEY_ID", "AKIDTEST")
		t.Setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
	}
}

func pullSecret(name, key, user, pass string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(fmt.Sprintf(
			`{"auths":{%q:{"username":%q,"password":%q}}}`, key, user, pass))},
	}
}

// TestECRCredentialProvider: with AWS credentials in the environment, a
// private ECR image is probed with the token GetAuthorizationToken gives
// the bot's identity — alone, and after a stale pull secret for the same
// registry, as the kubelet tries its credential provider after the pod's
// secrets. The token is fetched once and reused.
func TestECRCredentialProvider(t *testing.T) {
	srv, calls := fakeECR(t, "secret")
	awsEnv(t, srv.URL, true)
	reg := registries.New(t, registries.WithBasicAuth(registries.BasicAuth{Users: map[string]registries.BasicUser{
		"AWS": {Password: "secret"}}}))
	reg.Push(t, "team/app:1")
	image := ecrRegistry + "/team/app:1"
	p, err := diagnose.NewProber(diagnose.WithMirrors(diagnose.Mirrors{ecrRegistry: reg.Host}), diagnose.WithTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	ecr := ECRKeychainFromEnv(os.Getenv)
	if ecr == nil {
		t.Fatal("AWS credentials in the environment, but no ECR provider")
	}
	stale, _ := KeychainFromSecrets([]*corev1.Secret{pullSecret("stale", ecrRegistry, "AWS", "expired-token")})
	none, _ := KeychainFromSecrets(nil)
	amd := diagnose.Platform{OS: "linux", Architecture: "amd64"}
	cases := []struct {
		name string
		kc   authn.Keychain
		ok   bool
	}{
		{"pull secrets only, stale", stale, false},
		{"no pull secrets, ECR provider", ForPod(none, ecr), true},
		{"stale pull secret, then ECR provider", ForPod(stale, ecr), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := p.Probe(t.Context(), image, tc.kc, amd)
			if res.OK != tc.ok {
				t.Fatalf("ok=%t cause=%s detail=%q, want ok=%t", res.OK, res.Cause, res.Detail, tc.ok)
			}
		})
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("GetAuthorizationToken called %d times, want once (token cached)", n)
	}
	// Other registries are not the provider's business.
	auth, err := ecr.Resolve(name.MustParseReference("quay.io/x/y:1").Context())
	if err != nil || auth != authn.Anonymous {
		t.Errorf("quay.io resolved to %v, %v; want anonymous", auth, err)
	}
}

// TestECRProviderAbsentWithoutAWSCredentials: no AWS identity in the
// environment means no provider — no error, no AWS call, no delay.
func TestECRProviderAbsentWithoutAWSCredentials(t *testing.T) {
	srv, calls := fakeECR(t, "secret")
	awsEnv(t, srv.URL, false)
	ecr := ECRKeychainFromEnv(os.Getenv)
	if ecr != nil {
		t.Fatal("ECR provider built without AWS credentials")
	}
	kc := ForPod(&PullSecretKeychain{}, ecr)
	auth, err := kc.Resolve(name.MustParseReference(ecrRegistry + "/team/app:1").Context())
	if err != nil || auth != authn.Anonymous {
		t.Errorf("resolved to %v, %v; want anonymous", auth, err)
	}
	if calls.Load() != 0 {
		t.Error("AWS called without credentials")
	}
}

// TestECRResolutionIsBounded: an ECR endpoint that never answers costs at
// most the keychain's timeout, and the error says what failed.
func TestECRResolutionIsBounded(t *testing.T) {
	stop := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(func() { close(stop); hang.Close() })
	awsEnv(t, hang.URL, true)
	kc := NewECRKeychain(WithECRTimeout(300 * time.Millisecond))
	start := time.Now()
	_, err := kc.Resolve(name.MustParseReference(ecrRegistry + "/team/app:1").Context())
	// The endpoint never answers: any bound proves the resolution does not
	// hang with it; a generous one keeps a loaded machine from failing it.
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("resolution took %s with a 300ms timeout", d)
	}
	if err == nil || !strings.Contains(err.Error(), "GetAuthorizationToken") {
		t.Errorf("err = %v, want a GetAuthorizationToken failure", err)
	}
}

func TestIsECR(t *testing.T) {
	cases := []struct {
		host, region string
		ok           bool
	}{
		{ecrRegistry, "us-west-2", true},
		{"123456789012.dkr.ecr-fips.us-east-1.amazonaws.com", "us-east-1", true},
		{"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "cn-north-1", true},
		{"public.ecr.aws", "", false},
		{"12345.dkr.ecr.us-west-2.amazonaws.com", "", false},
		{"123456789012.dkr.ecr.us-west-2.amazonaws.com.evil.example", "", false},
	}
	for _, c := range cases {
		region, ok := IsECR(c.host)
		if ok != c.ok || region != c.region {
			t.Errorf("IsECR(%q) = %q, %t; want %q, %t", c.host, region, ok, c.region, c.ok)
		}
	}
}
