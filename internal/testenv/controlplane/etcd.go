package controlplane

import (
	"context"
	"fmt"
	"github.com/pullfix/pullfix/internal/testenv/proc"
	"net/http"
	"path/filepath"
	"strconv"
)

// startEtcd runs a single-member etcd on two free loopback ports, with a
// data directory under the temp dir and fsync off: the data is thrown away
// anyway, and fsync dominates write latency on shared CI disks.
func (cp *ControlPlane) startEtcd(ctx context.Context) error {
	return cp.startWithFreshPorts(ctx, 2, func(ports []int) (*proc.Process, func(context.Context) error) {
		client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
		peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
		args := []string{
			"--name=pullfix",
			"--data-dir=" + cp.path("etcd"),
			"--listen-client-urls=" + client,
			"--advertise-client-urls=" + client,
			"--listen-peer-urls=" + peer,
			"--initial-advertise-peer-urls=" + peer,
			"--initial-cluster=pullfix=" + peer,
			"--initial-cluster-state=new",
			"--unsafe-no-fsync=true",
			"--log-level=warn",
		}
		p := &proc.Process{
			Name:    "etcd",
			Path:    filepath.Join(cp.cfg.binDir, "etcd"),
			Args:    append(args, cp.cfg.etcdArgs...),
			LogPath: cp.path("etcd.log"),
			Tee:     cp.cfg.logOutput,
		}
		cp.etcd = p
		cp.etcdURL = client
		return p, func(ctx context.Context) error { return cp.waitEtcdHealthy(ctx, client) }
	})
}

// waitEtcdHealthy polls etcd's /health until it reports healthy.
func (cp *ControlPlane) waitEtcdHealthy(ctx context.Context, url string) error {
	client := &http.Client{Timeout: pollRequestTimeout}
	return poll(ctx, []*proc.Process{cp.etcd}, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/health", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("etcd /health: %s", resp.Status)
		}
		return nil
	})
}
