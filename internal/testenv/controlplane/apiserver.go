package controlplane

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"github.com/pullfix/pullfix/internal/testenv/proc"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const (
	// serviceClusterIPRange is the virtual range for Services; nothing
	// routes it, but kube-apiserver needs one.
	serviceClusterIPRange = "10.0.0.0/24"
	// kubernetesServiceIP is the first address of that range, which the
	// `kubernetes` Service gets; it is in the serving certificate.
	kubernetesServiceIP = "10.0.0.1"
	// serviceAccountIssuer is the issuer of service-account tokens, as in a
	// kubeadm cluster.
	serviceAccountIssuer = "https://kubernetes.default.svc.cluster.local"
)

// startAPIServer runs kube-apiserver on a free loopback port with token
// authentication, RBAC and service-account token signing, and waits for
// /readyz.
func (cp *ControlPlane) startAPIServer(ctx context.Context) error {
	return cp.startWithFreshPorts(ctx, 1, func(ports []int) (*proc.Process, func(context.Context) error) {
		port := strconv.Itoa(ports[0])
		cp.host = "https://127.0.0.1:" + port
		args := []string{
			"--etcd-servers=" + cp.etcdURL,
			"--bind-address=127.0.0.1",
			"--advertise-address=127.0.0.1",
			"--secure-port=" + port,
			// With a loopback advertise address the default lease
			// reconciler would publish 127.0.0.1 as the `kubernetes`
			// endpoint and fight over it; nothing in-cluster needs it.
			"--endpoint-reconciler-type=none",
			"--cert-dir=" + cp.path("apiserver-certs"),
			"--tls-cert-file=" + cp.pki.servingCert,
			"--tls-private-key-file=" + cp.pki.servingKey,
			"--client-ca-file=" + cp.pki.caCert,
			"--token-auth-file=" + cp.pki.tokenFile,
			"--authorization-mode=Node,RBAC",
			"--service-account-key-file=" + cp.pki.saPub,
			"--service-account-signing-key-file=" + cp.pki.saKey,
			"--service-account-issuer=" + serviceAccountIssuer,
			"--service-cluster-ip-range=" + serviceClusterIPRange,
			"--allow-privileged=true",
			"--profiling=false",
			// On SIGTERM, end open watches at once (clients re-establish
			// them, as after a real restart) instead of waiting up to the
			// 60s request timeout for them to finish; makes Stop and
			// RestartAPIServer take about a second.
			"--shutdown-watch-termination-grace-period=2s",
		}
		p := &proc.Process{
			Name:    "kube-apiserver",
			Path:    filepath.Join(cp.cfg.binDir, "kube-apiserver"),
			Args:    append(args, cp.cfg.apiServerArgs...),
			LogPath: cp.path("kube-apiserver.log"),
			Tee:     cp.cfg.logOutput,
		}
		cp.apiserver = p
		if err := writeKubeconfig(cp.path("admin.kubeconfig"), cp.host, cp.pki.caPEM, cp.pki.adminToken); err != nil {
			return nil, func(context.Context) error { return err }
		}
		cp.kubecfg = cp.path("admin.kubeconfig")
		return p, cp.waitAPIServerReady
	})
}

// waitAPIServerReady polls /readyz as the admin until it answers 200, which
// kube-apiserver does once its post-start hooks (RBAC bootstrap roles,
// priority-and-fairness configuration, …) have finished.
func (cp *ControlPlane) waitAPIServerReady(ctx context.Context) error {
	client, err := cp.httpClient()
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	began, lastFailed := time.Now(), ""
	return poll(ctx, []*proc.Process{cp.apiserver}, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, cp.host+"/readyz", nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+cp.pki.adminToken)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			failed := failedChecks(string(body))
			if failed != lastFailed {
				// Which post-start hooks hold up readiness, for tuning start-up.
				cp.log.Debug("kube-apiserver not ready", "after", time.Since(began).Round(time.Millisecond), "failing", failed)
				lastFailed = failed
			}
			return fmt.Errorf("/readyz: %s: %s", resp.Status, failed)
		}
		return nil
	})
}

// failedChecks keeps the "[-]" lines of a /readyz answer.
func failedChecks(body string) string {
	var failed []string
	for l := range strings.SplitSeq(body, "\n") {
		if strings.HasPrefix(l, "[-]") {
			failed = append(failed, l)
		}
	}
	if len(failed) == 0 {
		return strings.TrimSpace(body)
	}
	return strings.Join(failed, "; ")
}

// httpClient trusts only the test CA.
func (cp *ControlPlane) httpClient() (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(cp.pki.caPEM) {
		return nil, fmt.Errorf("parse test CA")
	}
	return &http.Client{
		Timeout:   pollRequestTimeout,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}, nil
}
