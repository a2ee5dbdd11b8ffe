package admission

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
)

// Serve listens on addr and serves h at Path over TLS with the certificate
// getCert returns, until ctx ends. It returns the address it listens on
// (addr may name port 0) once the listener is open.
func Serve(ctx context.Context, addr string, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), h http.Handler, log *slog.Logger) (net.Addr, error) {
	return serve(ctx, new(sync.WaitGroup), addr, getCert, h, log)
}

// serve is Serve with its goroutines (the server, its shutdown) in wg, so
// an owner can wait until the server has shut down.
func serve(ctx context.Context, wg *sync.WaitGroup, addr string, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), h http.Handler, log *slog.Logger) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(Path, h)
	srv := &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: getCert},
		ReadHeaderTimeout: 5 * time.Second,
		// A review is answered within its budget; the API server gives up
		// at the webhook's timeout (at most 30 s) anyway.
		ReadTimeout:  30 * time.Second,
		WriteTimeout: 30 * time.Second,
		ErrorLog:     slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	wg.Go(func() {
		if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admission webhook server stopped", "err", err)
		}
	})
	wg.Go(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	return ln.Addr(), nil
}

// SelfSigned prepares the bot's own serving certificate: the CA from the
// Secret namespace/caSecret (created by the first replica), a serving
// certificate for hosts signed by it, and the CA as the caBundle of the
// ValidatingWebhookConfiguration webhookConfig. Each replica runs it at
// start; all end up serving certificates of the one CA the caBundle holds.
func SelfSigned(ctx context.Context, cs kubernetes.Interface, namespace, caSecret, webhookConfig string, hosts []string) (*CA, *tls.Certificate, error) {
	ca, err := EnsureCA(ctx, cs, namespace, caSecret)
	if err != nil {
		return nil, nil, err
	}
	cert, err := ca.Issue(hosts)
	if err != nil {
		return nil, nil, fmt.Errorf("issue admission serving certificate: %w", err)
	}
	if _, err := PatchCABundle(ctx, cs, webhookConfig, ca.CertPEM); err != nil {
		return nil, nil, err
	}
	return ca, &cert, nil
}
