package controlplane

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/pullfix/pullfix/internal/testenv/proc"
	"k8s.io/client-go/rest"
)

// ControlPlane is a running etcd, kube-apiserver and (optionally)
// kube-controller-manager on loopback. Its methods are safe for concurrent
// use. Stop it when done; [Run] does that for a whole test package.
type ControlPlane struct {
	cfg     *config
	log     *slog.Logger
	dir     string // temporary directory: data, certificates, kubeconfig, logs
	pki     *pki
	host    string // https://127.0.0.1:<port>
	etcdURL string // http://127.0.0.1:<port>
	kubecfg string

	etcd, apiserver, controllerManager *proc.Process

	mu      sync.Mutex // serialises Stop and RestartAPIServer
	stopped bool
}

// Start launches a control plane and returns once kube-apiserver is ready
// (/readyz) and the default namespace exists and — when the controller
// manager runs — the default service account in it does too. If the
// binaries are missing it returns an error wrapping [ErrBinariesMissing]
// without starting anything. On any other failure it prints the tails of
// the process logs to stderr, stops what it started and removes its
// temporary directory. ctx (and WithStartTimeout) bound start-up only, not
// the processes' life.
func Start(ctx context.Context, opts ...Option) (*ControlPlane, error) {
	began := time.Now()
	cfg := newConfig(opts)
	if cfg.binDir == "" {
		dir, err := BinDir()
		if err != nil {
			return nil, err
		}
		cfg.binDir = dir
	} else if err := checkBinDir(cfg.binDir); err != nil {
		return nil, err
	}
	reapStale(cfg.tempRoot, cfg.logger)
	dir, err := os.MkdirTemp(cfg.tempRoot, tempPattern)
	if err != nil {
		return nil, fmt.Errorf("create temp dir: %w", err)
	}
	cp := &ControlPlane{cfg: cfg, log: cfg.logger, dir: dir}
	if err := proc.WriteOwner(dir); err != nil {
		cp.log.Warn("record temp dir owner; it will not be reaped if this process dies", "err", err)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.startTimeout)
	defer cancel()
	if err := cp.start(ctx); err != nil {
		cp.WriteLogTails(os.Stderr, 50)
		return nil, errors.Join(fmt.Errorf("start control plane: %w", err), cp.Stop())
	}
	cp.log.Info("control plane ready", "host", cp.host, "took", time.Since(began).Round(time.Millisecond), "dir", dir)
	return cp, nil
}

func (cp *ControlPlane) start(ctx context.Context) error {
	p, err := writePKI(cp.dir)
	if err != nil {
		return err
	}
	cp.pki = p
	if err := cp.startEtcd(ctx); err != nil {
		return err
	}
	if err := cp.startAPIServer(ctx); err != nil {
		return err
	}
	if cp.cfg.controllerManager {
		if err := cp.startControllerManager(ctx); err != nil {
			return err
		}
	}
	return cp.waitBootstrapped(ctx)
}

// AdminConfig returns a new client configuration for a user in
// system:masters (a bearer token, TLS verified against the test CA).
// Each call returns a fresh copy, so callers may modify it.
func (cp *ControlPlane) AdminConfig() *rest.Config {
	return &rest.Config{
		Host:            cp.host,
		BearerToken:     cp.pki.adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: append([]byte(nil), cp.pki.caPEM...)},
		// Tests create objects in bursts; client-side throttling at the
		// default 5 QPS would only slow them down.
		QPS:   200,
		Burst: 400,
	}
}

// Kubeconfig returns the path of a kubeconfig file for the admin user, for
// tools (kubectl, the bot's --kubeconfig) and the controller manager.
func (cp *ControlPlane) Kubeconfig() string { return cp.kubecfg }

// Host is the API server URL, https://127.0.0.1:<port>.
func (cp *ControlPlane) Host() string { return cp.host }

// CACert returns the PEM-encoded CA that signed the API server's serving
// certificate (also the root CA given to pods).
func (cp *ControlPlane) CACert() []byte { return append([]byte(nil), cp.pki.caPEM...) }

// Dir is the temporary directory holding etcd's data, certificates,
// kubeconfig and process logs; removed by Stop unless WithKeepTempDir.
func (cp *ControlPlane) Dir() string { return cp.dir }

// processes in start order, skipping ones never configured.
func (cp *ControlPlane) processes() []*proc.Process {
	var ps []*proc.Process
	for _, p := range []*proc.Process{cp.etcd, cp.apiserver, cp.controllerManager} {
		if p != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// PIDs returns the process IDs of the running (or last run) children, for
// tests that check nothing leaks.
func (cp *ControlPlane) PIDs() []int {
	var pids []int
	for _, p := range cp.processes() {
		if pid := p.Pid(); pid != 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Stop terminates the controller manager, API server and etcd — SIGTERM to
// each process group, SIGKILL after the grace period (WithStopGrace) — and
// removes the temporary directory. It is idempotent.
func (cp *ControlPlane) Stop() error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.stopped {
		return nil
	}
	cp.stopped = true
	began := time.Now()
	var errs []error
	// Clients of etcd first, so they do not spend the grace period retrying.
	for _, p := range []*proc.Process{cp.controllerManager, cp.apiserver, cp.etcd} {
		if p != nil {
			errs = append(errs, p.Stop(cp.cfg.stopGrace))
		}
	}
	if !cp.cfg.keepTempDir {
		if err := os.RemoveAll(cp.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", cp.dir, err))
		}
	}
	cp.log.Info("control plane stopped", "took", time.Since(began).Round(time.Millisecond))
	return errors.Join(errs...)
}

// RestartAPIServer stops kube-apiserver and starts it again with the same
// port and flags, returning once it is ready again. Clients built from
// AdminConfig keep working; informers see their watches break and must
// re-list or resume.
func (cp *ControlPlane) RestartAPIServer(ctx context.Context) error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.stopped {
		return errors.New("restart API server: control plane stopped")
	}
	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, cp.cfg.startTimeout)
	defer cancel()
	if err := cp.apiserver.Stop(cp.cfg.stopGrace); err != nil {
		return fmt.Errorf("restart API server: %w", err)
	}
	// The port was just released; a listener in TIME_WAIT does not stop
	// kube-apiserver (SO_REUSEADDR), but another process could grab it, in
	// which case the error says so.
	cp.log.Debug("API server stopped for restart", "took", time.Since(began).Round(time.Millisecond))
	if err := cp.apiserver.Start(); err != nil {
		return fmt.Errorf("restart API server: %w", err)
	}
	if err := cp.waitAPIServerReady(ctx); err != nil {
		writeTail(os.Stderr, cp.apiserver, 50)
		return fmt.Errorf("restart API server: %w", err)
	}
	cp.log.Info("API server restarted", "took", time.Since(began).Round(time.Millisecond))
	return nil
}

// path joins elem under the temporary directory.
func (cp *ControlPlane) path(elem ...string) string {
	return filepath.Join(append([]string{cp.dir}, elem...)...)
}
