package admission

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pullfix/pullfix/internal/diagnose"
)

func TestFindingWords(t *testing.T) {
	amd := diagnose.Platform{OS: "linux", Architecture: "amd64"}
	const img = "registry.example/team/app:1.4"
	tests := []struct {
		res      diagnose.ProbeResult
		words    string
		deniable bool
		ok       bool
	}{
		{diagnose.ProbeResult{Cause: diagnose.RepoNotFound}, "repository not found at registry.example", true, true},
		{diagnose.ProbeResult{Cause: diagnose.TagNotFound}, "tag 1.4 not found at registry.example", true, true},
		{diagnose.ProbeResult{Cause: diagnose.DigestNotFound}, "manifest 1.4 not found at registry.example", true, true},
		{diagnose.ProbeResult{Cause: diagnose.ImageNotFound}, "not found at registry.example", true, true},
		{diagnose.ProbeResult{Cause: diagnose.PlatformMismatch, Platforms: []diagnose.Platform{{OS: "linux", Architecture: "arm64"}}},
			"registry.example offers linux/arm64, not linux/amd64, which nodes run", true, true},
		{diagnose.ProbeResult{Cause: diagnose.NotFoundOrUnauthorized},
			"registry.example refused the pull credentials the pods would use, without saying whether the image exists", false, true},
		// What the registry did not show about the image, or what the
		// nodes may see otherwise: no warning.
		{diagnose.ProbeResult{Cause: diagnose.Unauthorized}, "", false, false},
		{diagnose.ProbeResult{Cause: diagnose.AccessDenied}, "", false, false},
		{diagnose.ProbeResult{Cause: diagnose.NetworkTimeout}, "", false, false},
		{diagnose.ProbeResult{Cause: diagnose.ConnectionRefused}, "", false, false},
		{diagnose.ProbeResult{Cause: diagnose.DNSFailure}, "", false, false},
		{diagnose.ProbeResult{Cause: diagnose.RegistryUnavailable}, "", false, false},
		{diagnose.ProbeResult{Cause: diagnose.RateLimited}, "", false, false},
		{diagnose.ProbeResult{Cause: diagnose.TLSError}, "", false, false},
		{diagnose.ProbeResult{Cause: diagnose.Unknown}, "", false, false},
	}
	for _, tc := range tests {
		t.Run(string(tc.res.Cause), func(t *testing.T) {
			words, deniable, ok := findingWords(tc.res, img, displayHost(img), amd)
			if words != tc.words || deniable != tc.deniable || ok != tc.ok {
				t.Errorf("findingWords = %q, %v, %v; want %q, %v, %v", words, deniable, ok, tc.words, tc.deniable, tc.ok)
			}
		})
	}
	if h := displayHost("nginx:1.27"); h != "docker.io" {
		t.Errorf("displayHost(nginx) = %q, want docker.io", h)
	}
}

func TestInvalidReferenceNeedsNoNetwork(t *testing.T) {
	c := NewChecker(CheckerConfig{}) // no client, no prober: any network use would panic
	w := &Workload{Kind: "Deployment", Namespace: "ns", Name: "x"}
	out := c.Check(context.Background(), w, []ImageUse{{Container: "a", Image: "Nginx:1"}}, nil)
	if !out.Complete || len(out.Findings) != 1 || !out.Findings[0].Deniable ||
		!strings.HasPrefix(out.Findings[0].Text, `image "Nginx:1": not a valid image reference (`) {
		t.Fatalf("outcome = %+v", out)
	}
}

func TestServeHTTPRefusesWhatIsNotAReview(t *testing.T) {
	m := NewMetrics(nil)
	h := NewHandler(HandlerConfig{Checker: NewChecker(CheckerConfig{}), Metrics: m})
	for _, tc := range []struct {
		method, body string
		want         int
	}{
		{http.MethodGet, "", http.StatusMethodNotAllowed},
		{http.MethodPost, "not json", http.StatusBadRequest},
		{http.MethodPost, `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}`, http.StatusBadRequest},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tc.method, Path, strings.NewReader(tc.body)))
		if rec.Code != tc.want {
			t.Errorf("%s %q: %d, want %d", tc.method, tc.body, rec.Code, tc.want)
		}
	}
	if m.Count(ResultError) != 2 {
		t.Errorf("errors counted: %v, want 2", m.Count(ResultError))
	}
	// A review of a kind it does not check: allowed at once.
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, Path, strings.NewReader(
		`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"u1","operation":"CREATE","kind":{"group":"","version":"v1","kind":"ConfigMap"},"object":{}}}`)))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"uid":"u1","allowed":true`) {
		t.Errorf("ConfigMap review: %d %s", rec.Code, rec.Body)
	}
}

// TestFileCertificateReloads: cert-manager renews the mounted Secret in
// place; the next handshake serves the new certificate.
func TestFileCertificateReloads(t *testing.T) {
	ca, _, _, err := newCA()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(host string, mtime time.Time) {
		t.Helper()
		cert, err := ca.Issue([]string{host})
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		var chain bytes.Buffer
		for _, der := range cert.Certificate {
			pem.Encode(&chain, &pem.Block{Type: "CERTIFICATE", Bytes: der})
		}
		for name, data := range map[string][]byte{"tls.crt": chain.Bytes(), "tls.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})} {
			p := filepath.Join(dir, name)
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}
	}
	served := func(fc *FileCertificate) string {
		t.Helper()
		c, err := fc.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf.DNSNames[0]
	}
	now := time.Now()
	write("old.example", now.Add(-time.Hour))
	fc, err := NewFileCertificate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := served(fc); got != "old.example" {
		t.Fatalf("serves %s", got)
	}
	write("new.example", now)
	if got := served(fc); got != "new.example" {
		t.Fatalf("after renewal serves %s, want new.example", got)
	}
	if _, err := NewFileCertificate(t.TempDir()); err == nil {
		t.Error("an empty certificate directory started")
	}
}
