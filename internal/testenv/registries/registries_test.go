package registries

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestPushPlatformsAndLog(t *testing.T) {
	r := New(t)
	rb := SeedRunbook(t, r)
	r.ResetLog()

	ref, _ := name.ParseReference(r.Ref(RetailUI + ":1.2.1"))
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	var got []string
	for _, m := range im.Manifests {
		got = append(got, m.Platform.String())
		img, err := idx.Image(m.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, _ := img.ConfigFile()
		if cf.Platform().String() != m.Platform.String() {
			t.Errorf("config says %s, index entry %s", cf.Platform(), m.Platform)
		}
	}
	if strings.Join(got, ",") != "linux/amd64,linux/arm64" {
		t.Errorf("platforms %v", got)
	}
	if d, _ := idx.Digest(); d != rb[RetailUI+":1.2.1"] {
		t.Errorf("digest %s, seeded %s", d, rb[RetailUI+":1.2.1"])
	}
	if r.CountPath("/manifests/") == 0 || r.Requests()[0].Path != "/v2/" {
		t.Errorf("request log: %v", r.Requests())
	}
	if _, err := remote.Head(mustRef(t, r.Ref(RetailingUI+":1.2.1"))); err == nil {
		t.Error("the misspelt repository exists")
	}
}

func TestNetworkResolvesOnlyRegisteredNames(t *testing.T) {
	n := NewNetwork(t)
	n.Add("registry.test")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := n.Resolver.LookupHost(ctx, "registry.test")
	if err != nil || len(addrs) != 1 || addrs[0] != "127.0.0.1" {
		t.Fatalf("registry.test → %v, %v", addrs, err)
	}
	_, err = n.Resolver.LookupHost(ctx, "nothing.invalid")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || !dnsErr.IsNotFound {
		t.Fatalf("nothing.invalid: %v, want NXDOMAIN", err)
	}
}

func TestTLSUntrustedThenTrusted(t *testing.T) {
	n := NewNetwork(t)
	ca := NewCA(t)
	r := New(t, WithTLS(ca), WithHostname(n, "secure.test"))
	if !strings.HasPrefix(r.URL, "https://secure.test:") {
		t.Fatalf("URL %s", r.URL)
	}
	for _, tc := range []struct {
		tr   *http.Transport
		want bool
	}{{n.Transport(nil), false}, {n.Transport(ca.Pool), true}} {
		resp, err := (&http.Client{Transport: tc.tr, Timeout: 5 * time.Second}).Get(r.URL + "/v2/")
		if (err == nil) != tc.want {
			t.Fatalf("trusted=%t: %v", tc.want, err)
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
}

func TestBlackHoleNeverAnswers(t *testing.T) {
	h := BlackHole(t)
	c := &http.Client{Timeout: 200 * time.Millisecond}
	start := time.Now()
	_, err := c.Get("http://" + h.Host + "/v2/")
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || h.Accepted() != 1 {
		t.Fatalf("err %v after %s, accepted %d", err, time.Since(start), h.Accepted())
	}
	if _, err := c.Get("http://" + ClosedPort(t) + "/v2/"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("closed port: %v", err)
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(s)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func TestServerErrorAnswersFiveHundreds(t *testing.T) {
	all := New(t, WithServerError(ServerError{Status: http.StatusBadGateway}))
	some := New(t, WithServerError(ServerError{Status: http.StatusServiceUnavailable, Repos: []string{"team/*"}}))
	some.Push(t, "other/app:1")
	get := func(url string) int {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := get(all.URL + "/v2/"); got != http.StatusBadGateway {
		t.Errorf("ping of a failing registry: %d, want 502", got)
	}
	if got := get(some.URL + "/v2/"); got != http.StatusOK {
		t.Errorf("ping with repository-scoped failure: %d, want 200", got)
	}
	if got := get(some.URL + "/v2/team/app/manifests/1"); got != http.StatusServiceUnavailable {
		t.Errorf("failing repository: %d, want 503", got)
	}
	if got := get(some.URL + "/v2/other/app/manifests/1"); got != http.StatusOK {
		t.Errorf("healthy repository: %d, want 200", got)
	}
}

// TestDroppedRoute: a connect to a dropped route times out (it is not
// refused and does not connect), as on a route that drops SYNs.
func TestDroppedRoute(t *testing.T) {
	d := DroppedRoute(t)
	start := time.Now()
	_, err := net.DialTimeout("tcp", d.Host, time.Second)
	var ne net.Error
	if err == nil || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("dial %s: %v, want a timeout", d.Host, err)
	}
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Errorf("the dial failed after %s, before its timeout", el)
	}
}

// TestPushRunnable: the runnable image's linux/amd64 child has the binary
// as its only file and its entrypoint; the index also names linux/arm64.
func TestPushRunnable(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "sleeper")
	if err := os.WriteFile(bin, []byte("#!not-really-a-binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := New(t)
	r.PushRunnable(t, "app:1", bin)
	ref, err := name.ParseReference(r.AdminHost()+"/app:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref)
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 || im.Manifests[0].Platform.Architecture != "amd64" || im.Manifests[1].Platform.Architecture != "arm64" {
		t.Fatalf("index %+v, want amd64 and arm64", im.Manifests)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || !slices.Equal(cf.Config.Entrypoint, []string{"/sleeper"}) {
		t.Errorf("config %s/%s entrypoint %q", cf.OS, cf.Architecture, cf.Config.Entrypoint)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	h, err := tr.Next()
	if err != nil || h.Name != "sleeper" || h.Mode&0o111 == 0 {
		t.Fatalf("first file %+v, %v; want an executable sleeper", h, err)
	}
	data, _ := io.ReadAll(tr)
	if string(data) != "#!not-really-a-binary" {
		t.Errorf("layer file %q", data)
	}
}
