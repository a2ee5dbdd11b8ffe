package controlplane

import (
	"context"
	"crypto/tls"
	"fmt"
	"github.com/pullfix/pullfix/internal/testenv/proc"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
)

// startControllerManager runs kube-controller-manager as the admin, without
// leader election, with every controller that works without node
// networking. Controllers share the admin credentials unless
// WithControllerServiceAccountCredentials(true) (see there for why).
func (cp *ControlPlane) startControllerManager(ctx context.Context) error {
	return cp.startWithFreshPorts(ctx, 1, func(ports []int) (*proc.Process, func(context.Context) error) {
		args := []string{
			"--kubeconfig=" + cp.kubecfg,
			"--authentication-kubeconfig=" + cp.kubecfg,
			"--authorization-kubeconfig=" + cp.kubecfg,
			"--leader-elect=false",
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(ports[0]),
			"--cert-dir=" + cp.path("controller-manager-certs"),
			"--service-account-private-key-file=" + cp.pki.saKey,
			"--root-ca-file=" + cp.pki.caCert,
			"--cluster-signing-cert-file=" + cp.pki.caCert,
			"--cluster-signing-key-file=" + cp.pki.caKey,
			"--use-service-account-credentials=" + strconv.FormatBool(cp.cfg.controllerSACreds),
			"--controllers=" + strings.Join(cp.cfg.controllers, ","),
			"--profiling=false",
		}
		p := &proc.Process{
			Name:    "kube-controller-manager",
			Path:    filepath.Join(cp.cfg.binDir, "kube-controller-manager"),
			Args:    append(args, cp.cfg.controllerArgs...),
			LogPath: cp.path("kube-controller-manager.log"),
			Tee:     cp.cfg.logOutput,
		}
		cp.controllerManager = p
		// Serving /healthz proves the port was ours; full readiness is the
		// default service account appearing, checked by waitBootstrapped.
		return p, func(ctx context.Context) error {
			return cp.waitControllerManagerHealthy(ctx, "https://127.0.0.1:"+strconv.Itoa(ports[0])+"/healthz")
		}
	})
}

// waitControllerManagerHealthy polls the controller manager's /healthz
// (always allowed without credentials). Its serving certificate is
// self-signed in memory, so verification is skipped: it is loopback only.
func (cp *ControlPlane) waitControllerManagerHealthy(ctx context.Context, url string) error {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // loopback, throwaway cert
	defer tr.CloseIdleConnections()
	client := &http.Client{Timeout: pollRequestTimeout, Transport: tr}
	return poll(ctx, []*proc.Process{cp.controllerManager}, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("controller manager /healthz: %s", resp.Status)
		}
		return nil
	})
}
