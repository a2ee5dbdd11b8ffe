package controlplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/pullfix/pullfix/internal/testenv/proc"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

const (
	pollInterval       = 50 * time.Millisecond
	pollRequestTimeout = 2 * time.Second
	// startAttempts is how often a child is started with fresh ports when
	// it exits because another process took one of them first.
	startAttempts = 3
)

// poll calls check until it succeeds, ctx ends, or one of the watched
// processes exits (which means waiting longer is pointless).
func poll(ctx context.Context, watch []*proc.Process, check func(context.Context) error) error {
	t := time.NewTicker(pollInterval)
	defer t.Stop()
	var last error
	for {
		rctx, cancel := context.WithTimeout(ctx, pollRequestTimeout)
		last = check(rctx)
		cancel()
		if last == nil {
			return nil
		}
		for _, p := range watch {
			select {
			case <-p.Exited():
				return p.ExitErr()
			default:
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last check: %v)", ctx.Err(), last)
		case <-t.C:
		}
	}
}

// startWithFreshPorts asks launch for a process configured with n fresh
// free ports, starts it and waits until its readiness check passes. If the
// process dies because a port was taken in between (the inherent race of
// picking free ports), it tries again with new ones.
func (cp *ControlPlane) startWithFreshPorts(ctx context.Context, n int,
	launch func(ports []int) (*proc.Process, func(context.Context) error)) error {
	var err error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		var ports []int
		if ports, err = freePorts(n); err != nil {
			return err
		}
		p, ready := launch(ports)
		if p == nil {
			return ready(ctx)
		}
		os.Remove(p.LogPath) // a retry's log should not hold the failed attempt
		began := time.Now()
		if err = p.Start(); err != nil {
			return err
		}
		if err = ready(ctx); err == nil {
			cp.log.Debug("started", "process", p.Name, "pid", p.Pid(), "ports", ports, "took", time.Since(began).Round(time.Millisecond))
			return nil
		}
		_ = p.Stop(cp.cfg.stopGrace)
		if !portTaken(p) {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		cp.log.Info("port taken, retrying with fresh ports", "process", p.Name, "ports", ports, "attempt", attempt)
	}
	return fmt.Errorf("after %d attempts: %w", startAttempts, err)
}

// portTaken reports whether p's log says it could not bind.
func portTaken(p *proc.Process) bool {
	data, err := os.ReadFile(p.LogPath)
	return err == nil && strings.Contains(string(data), "address already in use")
}

// waitBootstrapped waits for the objects every test assumes: the default
// namespace (created by kube-apiserver) and, with the controller manager,
// the default service account in it (without which the ServiceAccount
// admission plugin rejects pods).
func (cp *ControlPlane) waitBootstrapped(ctx context.Context) error {
	client, err := kubernetes.NewForConfig(cp.AdminConfig())
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	watch := cp.processes()
	err = poll(ctx, watch, func(ctx context.Context) error {
		_, err := client.CoreV1().Namespaces().Get(ctx, metav1.NamespaceDefault, metav1.GetOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("wait for namespace default: %w", err)
	}
	if !cp.cfg.controllerManager {
		return nil
	}
	err = poll(ctx, watch, func(ctx context.Context) error {
		_, err := client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return errors.New("service account default/default not created yet")
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("wait for service account default/default: %w", err)
	}
	return nil
}
