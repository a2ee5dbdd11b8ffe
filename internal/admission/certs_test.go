package admission_test

import (
	"context"
	"crypto/x509"
	"log/slog"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/admission"
)

// TestSelfSignedReplicasShareOneCA starts three replicas' certificate
// set-up at once against the real API server: one CA Secret is created,
// every replica's serving certificate verifies against the caBundle the
// webhook configuration ends up with, and a reset caBundle is restored.
func TestSelfSignedReplicasShareOneCA(t *testing.T) {
	newEnv(t, envConfig{registryHost: "127.0.0.1:1", namespaces: []string{"certs"}}) // the namespace and a webhook configuration
	admin, err := kubernetes.NewForConfig(cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	const secret, config = "pullfix-admission-ca-replicas", "pullfix-testselfsignedreplicassharoneca"
	createWebhookConfig(t, admin, config, 5)
	hosts := admission.ServiceHosts("pullfix", botNS)

	var wg sync.WaitGroup
	leaves := make([]*x509.Certificate, 3)
	errs := make([]error, 3)
	for i := range leaves {
		wg.Go(func() {
			_, cert, err := admission.SelfSigned(ctx, admin, botNS, secret, config, hosts)
			if err != nil {
				errs[i] = err
				return
			}
			leaves[i], errs[i] = x509.ParseCertificate(cert.Certificate[0])
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	vwc, err := admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, config, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	verifyAll := func(bundle []byte) {
		t.Helper()
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(bundle) {
			t.Fatalf("caBundle is not PEM: %q", bundle)
		}
		for i, leaf := range leaves {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "pullfix." + botNS + ".svc"}); err != nil {
				t.Errorf("replica %d's certificate is not trusted by the caBundle: %v", i, err)
			}
		}
	}
	verifyAll(vwc.Webhooks[0].ClientConfig.CABundle)

	// A `helm upgrade` that drops the caBundle: the next check restores it.
	vwc.Webhooks[0].ClientConfig.CABundle = nil
	if _, err := admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Update(ctx, vwc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	ca, err := admission.EnsureCA(ctx, admin, botNS, secret)
	if err != nil {
		t.Fatal(err)
	}
	changed, err := admission.PatchCABundle(ctx, admin, config, ca.CertPEM)
	if err != nil || !changed {
		t.Fatalf("PatchCABundle after a reset: changed=%v err=%v", changed, err)
	}
	if changed, err := admission.PatchCABundle(ctx, admin, config, ca.CertPEM); err != nil || changed {
		t.Fatalf("PatchCABundle when current: changed=%v err=%v, want no write", changed, err)
	}
	got, err := admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, config, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	verifyAll(got.Webhooks[0].ClientConfig.CABundle)

	// A configuration created after the bot started (Helm creates it
	// after the Deployment) gets the caBundle from the periodic check.
	late := "pullfix-late-configuration"
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go admission.KeepCABundle(kctx, admin, late, ca.CertPEM, time.Hour, 50*time.Millisecond, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	createWebhookConfig(t, admin, late, 5)
	waitFor(t, "the late configuration's caBundle", func() bool {
		v, err := admin.AdmissionregistrationV1().ValidatingWebhookConfigurations().Get(ctx, late, metav1.GetOptions{})
		return err == nil && string(v.Webhooks[0].ClientConfig.CABundle) == string(ca.CertPEM)
	})
}
