package admission

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// Validity of what the bot generates. The CA outlives any deployment; each
// replica issues itself a fresh serving certificate at every start, so the
// serving certificate's year is never reached by a running pod in practice.
const (
	caValidity      = 10 * 365 * 24 * time.Hour
	servingValidity = 365 * 24 * time.Hour
)

// CA is the webhook's certificate authority: its certificate is the
// caBundle the API server trusts, its key signs each replica's serving
// certificate.
type CA struct {
	CertPEM []byte
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
}

// EnsureCA returns the CA kept in the Secret namespace/name, creating
// both when the Secret does not exist. Every replica calls it at start:
// the first create wins, a replica that loses the race (AlreadyExists)
// reads the winner's, so all replicas sign with one CA and the one
// caBundle trusts every replica. The Secret (type kubernetes.io/tls) is the
// bot's own; nothing else reads it.
func EnsureCA(ctx context.Context, cs kubernetes.Interface, namespace, name string) (*CA, error) {
	secrets := cs.CoreV1().Secrets(namespace)
	s, err := secrets.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		ca, certPEM, keyPEM, gerr := newCA()
		if gerr != nil {
			return nil, gerr
		}
		s = &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "pullfix", "app.kubernetes.io/component": "admission-ca"}},
			Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{corev1.TLSCertKey: certPEM, corev1.TLSPrivateKeyKey: keyPEM},
		}
		if _, err = secrets.Create(ctx, s, metav1.CreateOptions{}); err == nil {
			return ca, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create admission CA secret %s/%s: %w", namespace, name, err)
		}
		s, err = secrets.Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("read admission CA secret %s/%s: %w", namespace, name, err)
	}
	return parseCA(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
}

func newCA() (*CA, []byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "pullfix admission CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	ca, err := parseCA(certPEM, keyPEM)
	return ca, certPEM, keyPEM, err
}

func parseCA(certPEM, keyPEM []byte) (*CA, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("admission CA secret: %w", err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("admission CA secret: %w", err)
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || !cert.IsCA {
		return nil, errors.New("admission CA secret: not an ECDSA CA")
	}
	return &CA{CertPEM: certPEM, cert: cert, key: key}, nil
}

// Issue signs a serving certificate for hosts (DNS names and IP addresses).
func (ca *CA) Issue(hosts []string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "pullfix admission"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(servingValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.cert.Raw}, PrivateKey: key}, nil
}

// ServiceHosts are the names the API server dials a Service webhook by.
func ServiceHosts(service, namespace string) []string {
	return []string{
		service,
		service + "." + namespace,
		service + "." + namespace + ".svc",
		service + "." + namespace + ".svc.cluster.local",
	}
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

// PatchCABundle makes every webhook of the ValidatingWebhookConfiguration
// name trust caPEM, with one JSON patch whose `test` ops make it a
// compare-and-swap on the webhooks it read. It changes nothing (and sends
// no write) when they trust it already: replicas starting together, or the
// periodic re-check, cost one read.
func PatchCABundle(ctx context.Context, cs kubernetes.Interface, name string, caPEM []byte) (changed bool, err error) {
	api := cs.AdmissionregistrationV1().ValidatingWebhookConfigurations()
	vwc, err := api.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, fmt.Errorf("read ValidatingWebhookConfiguration %s: %w", name, err)
	}
	type op struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value any    `json:"value"`
	}
	var ops []op
	for i, wh := range vwc.Webhooks {
		if bytes.Equal(wh.ClientConfig.CABundle, caPEM) {
			continue
		}
		p := fmt.Sprintf("/webhooks/%d", i)
		ops = append(ops, op{Op: "test", Path: p + "/name", Value: wh.Name},
			op{Op: "add", Path: p + "/clientConfig/caBundle", Value: caPEM})
	}
	if len(ops) == 0 {
		return false, nil
	}
	body, err := json.Marshal(ops)
	if err != nil {
		return false, err
	}
	if _, err := api.Patch(ctx, name, types.JSONPatchType, body, metav1.PatchOptions{FieldManager: "pullfix"}); err != nil {
		return false, fmt.Errorf("patch caBundle of ValidatingWebhookConfiguration %s: %w", name, err)
	}
	return true, nil
}

// KeepCABundle makes sure, until ctx ends, that the webhook
// configuration name trusts caPEM: first after retry, then every interval.
// A `helm upgrade` or a person that resets the caBundle is repaired
// without a restart (meanwhile the API server cannot call the webhook, and
// failurePolicy Ignore lets every apply through); after a failure — the
// configuration may not exist yet: Helm creates it after the Deployment —
// it tries again after retry.
func KeepCABundle(ctx context.Context, cs kubernetes.Interface, name string, caPEM []byte, interval, retry time.Duration, log *slog.Logger) {
	next := retry
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(next):
		}
		changed, err := PatchCABundle(ctx, cs, name, caPEM)
		switch {
		case err != nil:
			log.WarnContext(ctx, "admission: cannot set the webhook's caBundle", "config", name, "err", err)
			next = retry
			continue
		case changed:
			log.InfoContext(ctx, "admission: set the webhook's caBundle", "config", name)
		}
		next = interval
	}
}

// FileCertificate serves the certificate in dir (tls.crt, tls.key), as
// cert-manager writes it into a mounted Secret, and reloads it when the
// files change (cert-manager renews it in place).
type FileCertificate struct {
	dir string

	mu      sync.Mutex
	modTime time.Time
	cert    *tls.Certificate
}

// NewFileCertificate loads dir's certificate once, so a missing or broken
// one is a start-up error.
func NewFileCertificate(dir string) (*FileCertificate, error) {
	f := &FileCertificate{dir: dir}
	if _, err := f.GetCertificate(nil); err != nil {
		return nil, err
	}
	return f, nil
}

// GetCertificate is a tls.Config.GetCertificate.
func (f *FileCertificate) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	crt, key := filepath.Join(f.dir, corev1.TLSCertKey), filepath.Join(f.dir, corev1.TLSPrivateKeyKey)
	st, err := os.Stat(crt)
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil && f.cert != nil && st.ModTime().Equal(f.modTime) {
		return f.cert, nil
	}
	pair, lerr := tls.LoadX509KeyPair(crt, key)
	if lerr != nil {
		if f.cert != nil {
			return f.cert, nil // mid-rotation: keep serving the last good one
		}
		return nil, fmt.Errorf("admission certificate in %s: %w", f.dir, lerr)
	}
	f.cert = &pair
	if st != nil {
		f.modTime = st.ModTime()
	}
	return f.cert, nil
}
