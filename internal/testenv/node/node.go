package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pullfix/pullfix/internal/testenv/proc"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Config says how to start a node. Name, Kubeconfig, CAFile, Client,
// SandboxImage and DNSServer are required.
type Config struct {
	// Name of the Node (the kubelet's --hostname-override).
	Name string
	// Kubeconfig holds the kubelet's credentials for the API server
	// (controlplane.NodeKubeconfig).
	Kubeconfig string
	// CAFile is the control plane's CA, which signs client certificates
	// the kubelet's own server accepts.
	CAFile string
	// Client is an admin client: Start waits for the Node to be Ready
	// with it, Stop deletes the Node.
	Client kubernetes.Interface
	// SandboxImage is the pod sandbox ("pause") image, in a loopback
	// registry listed in Registries (RunnableImage).
	SandboxImage string
	// DNSServer is the IP address (port 53) of the loopback DNS server
	// containerd and host-network pods resolve with
	// (registries.NewNetworkAt).
	DNSServer string
	// Registries route the registry hosts pods name to loopback registries.
	Registries []Registry
	// KubeletPath is the kubelet binary. Default: "kubelet" in the
	// control plane's binary directory (hack/build-k8s.sh).
	KubeletPath string
	// TempRoot is where the node's temporary directory is made. Default
	// os.TempDir().
	TempRoot string
	// Logger reports progress. Default: discard.
	Logger *slog.Logger
	// LogOutput also receives containerd's and the kubelet's output, live.
	LogOutput io.Writer
	// StartTimeout bounds Start. Default 2 minutes.
	StartTimeout time.Duration
}

// Node is a running containerd and kubelet.
type Node struct {
	cfg        Config
	log        *slog.Logger
	dir        string
	cgroupRoot string
	sysctls    map[string]string

	containerd, kubelet *proc.Process

	mu      sync.Mutex
	stopped bool
}

// Name of the Node.
func (n *Node) Name() string { return n.cfg.Name }

// Dir is the node's temporary directory (state, logs).
func (n *Node) Dir() string { return n.dir }

// ContainerdPID and KubeletPID are the children's process ids.
func (n *Node) ContainerdPID() int { return n.containerd.Pid() }
func (n *Node) KubeletPID() int    { return n.kubelet.Pid() }

// CgroupRoot is the node's cgroup root, e.g. "/pullfix-node-ab12cd".
func (n *Node) CgroupRoot() string { return n.cgroupRoot }

const tempPattern = "pullfix-node-*"

// Start checks the requirements, starts containerd and the kubelet, and
// returns once the Node is Ready. On failure it prints the logs' tails to
// stderr and cleans up everything it started.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	began := time.Now()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 2 * time.Minute
	}
	if cfg.TempRoot == "" {
		cfg.TempRoot = os.TempDir()
	}
	for k, v := range map[string]string{"Name": cfg.Name, "Kubeconfig": cfg.Kubeconfig, "CAFile": cfg.CAFile, "SandboxImage": cfg.SandboxImage, "DNSServer": cfg.DNSServer} {
		if v == "" {
			return nil, fmt.Errorf("node: Config.%s is required", k)
		}
	}
	if cfg.Client == nil {
		return nil, errors.New("node: Config.Client is required")
	}
	kubelet, err := Check(cfg.KubeletPath)
	if err != nil {
		return nil, err
	}
	cfg.KubeletPath = kubelet
	reapStale(cfg.TempRoot, cfg.Logger)

	dir, err := os.MkdirTemp(cfg.TempRoot, tempPattern)
	if err != nil {
		return nil, fmt.Errorf("node: create temp dir: %w", err)
	}
	// The kubelet and containerd want traversable state directories.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger, dir: dir, cgroupRoot: "/" + filepath.Base(dir)}
	if err := writeOwner(dir, n.cgroupRoot); err != nil {
		n.log.Warn("record the node's owner; it will not be reaped if this process dies", "err", err)
	}
	track(n)
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	if err := n.start(ctx); err != nil {
		n.WriteLogTails(os.Stderr, 40)
		return nil, errors.Join(fmt.Errorf("start node %s: %w", cfg.Name, err), n.Stop())
	}
	n.log.Info("node ready", "name", cfg.Name, "took", time.Since(began).Round(time.Millisecond), "dir", dir)
	return n, nil
}

func (n *Node) path(elem ...string) string {
	return filepath.Join(append([]string{n.dir}, elem...)...)
}

func (n *Node) start(ctx context.Context) error {
	files := map[string]string{
		"containerd/config.toml":         containerdConfig(n.dir, n.cfg.SandboxImage),
		"cni/net.d/10-loopback.conflist": cniLoopback,
		"resolv.conf":                    "nameserver " + n.cfg.DNSServer + "\noptions timeout:1 attempts:1\n",
		"pod-logs/.keep":                 "",
		"volume-plugins/.keep":           "",
		"cni/bin/.keep":                  "",
		"kubelet/.keep":                  "",
		"containerd/root/.keep":          "",
		"containerd/state/.keep":         "",
	}
	for _, r := range n.cfg.Registries {
		files[filepath.Join("certs.d", hostDir(r.Host), "hosts.toml")] = hostsTOML(r)
	}
	if err := writeFiles(n.dir, files); err != nil {
		return err
	}
	if err := makeCgroupRoot(n.cgroupRoot); err != nil {
		return err
	}
	saved, err := machineSysctls(n.cfg.TempRoot)
	if err != nil {
		return err
	}
	n.sysctls = saved
	if err := writeSysctls(n.path("sysctls"), saved); err != nil {
		n.log.Warn("record sysctls", "err", err)
	}

	// containerd, in a private mount namespace whose /etc/resolv.conf names
	// the loopback DNS server. unshare execs sh, which execs containerd:
	// one pid throughout.
	n.containerd = &proc.Process{
		Name: "containerd", Path: "unshare", LogPath: n.path("containerd.log"), Tee: n.cfg.LogOutput, Env: childEnv(),
		Args: []string{"--mount", "--propagation", "private", "sh", "-c",
			`mount --bind "$0" /etc/resolv.conf && exec containerd --config "$1"`,
			n.path("resolv.conf"), n.path("containerd", "config.toml")},
	}
	if err := n.containerd.Start(); err != nil {
		return err
	}
	sock := n.path("containerd", "containerd.sock")
	if err := n.poll(ctx, n.containerd, "containerd's socket", func(context.Context) error {
		c, err := net.DialTimeout("unix", sock, time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}); err != nil {
		return err
	}

	ports, err := freePorts(2)
	if err != nil {
		return err
	}
	if err := writeFiles(n.dir, map[string]string{
		"kubelet/config.yaml": kubeletConfig(n.dir, n.cgroupRoot, n.cfg.CAFile, ports[0], ports[1]),
	}); err != nil {
		return err
	}
	// The kubelet joins containerd's mount namespace: the volumes it mounts
	// (service-account tokens, …) must be where runc looks.
	n.kubelet = &proc.Process{
		Name: "kubelet", Path: "nsenter", LogPath: n.path("kubelet.log"), Tee: n.cfg.LogOutput, Env: childEnv(),
		Args: []string{"--mount", "--target", strconv.Itoa(n.containerd.Pid()), "--", n.cfg.KubeletPath,
			"--config=" + n.path("kubelet", "config.yaml"),
			"--kubeconfig=" + n.cfg.Kubeconfig,
			"--root-dir=" + n.path("kubelet"),
			"--cert-dir=" + n.path("kubelet", "pki"),
			"--hostname-override=" + n.cfg.Name,
			"--v=2",
		},
	}
	if err := n.kubelet.Start(); err != nil {
		return err
	}
	healthz := "http://127.0.0.1:" + strconv.Itoa(ports[1]) + "/healthz"
	client := &http.Client{Timeout: 2 * time.Second}
	if err := n.poll(ctx, n.kubelet, "the kubelet's /healthz", func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, healthz, nil)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz: %s", resp.Status)
		}
		return nil
	}); err != nil {
		return err
	}
	if err := n.poll(ctx, n.kubelet, "Node "+n.cfg.Name+" Ready", func(ctx context.Context) error {
		node, err := n.cfg.Client.CoreV1().Nodes().Get(ctx, n.cfg.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				if c.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("Ready=%s: %s", c.Status, c.Message)
			}
		}
		return errors.New("no Ready condition")
	}); err != nil {
		return err
	}
	// The kubelet set its kernel tunables once, at start; put the
	// machine's own back.
	if err := restoreSysctls(n.sysctls); err != nil {
		n.log.Warn("restore sysctls", "err", err)
	}
	return nil
}

// poll calls f until it succeeds, ctx ends, or p exits.
func (n *Node) poll(ctx context.Context, p *proc.Process, what string, f func(context.Context) error) error {
	var last error
	for {
		if last = f(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w (last: %v)", what, ctx.Err(), last)
		case <-p.Exited():
			return fmt.Errorf("waiting for %s: %w", what, p.ExitErr())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop ends the kubelet, the containers, the shims and containerd, removes
// the cgroups, the Node object and the temporary directory, and puts the
// kernel tunables back. It is idempotent.
func (n *Node) Stop() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopped {
		return nil
	}
	n.stopped = true
	defer untrack(n)
	began := time.Now()
	var errs []error
	if n.kubelet != nil {
		errs = append(errs, n.kubelet.Stop(5*time.Second))
	}
	errs = append(errs, cleanup(n.dir, n.cgroupRoot, func() error {
		if n.containerd != nil {
			return n.containerd.Stop(5 * time.Second)
		}
		return nil
	}))
	if n.sysctls != nil {
		errs = append(errs, restoreSysctls(n.sysctls))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.cfg.Client.CoreV1().Nodes().Delete(ctx, n.cfg.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete Node %s: %w", n.cfg.Name, err))
	}
	n.log.Info("node stopped", "name", n.cfg.Name, "took", time.Since(began).Round(time.Millisecond))
	return errors.Join(errs...)
}

// WriteLogTails writes the last lines of containerd's and the kubelet's
// logs to w.
func (n *Node) WriteLogTails(w io.Writer, lines int) {
	for _, name := range []string{"containerd", "kubelet"} {
		data, err := os.ReadFile(n.path(name + ".log"))
		if err != nil {
			continue
		}
		ls := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(ls) > lines {
			ls = ls[len(ls)-lines:]
		}
		fmt.Fprintf(w, "--- last %d lines of %s (%s)\n%s\n", len(ls), name, n.path(name+".log"), strings.Join(ls, "\n"))
	}
}

// Log returns the whole log of "containerd" or "kubelet".
func (n *Node) Log(name string) string {
	data, _ := os.ReadFile(n.path(name + ".log"))
	return string(data)
}

// hostDir is the certs.d directory name of a registry host; containerd
// spells a port as "host:port" on Linux.
func hostDir(host string) string { return host }

func freePorts(k int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range k {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// RandomName is a node name that is unique enough for one machine.
func RandomName(prefix string) string {
	return prefix + "-" + strings.ToLower(rand.Text()[:6])
}

// childEnv is the children's environment: the sbin directories on PATH
// (containerd runs runc, mount and iptables from there), a home and temp
// dir, and nothing else — no proxy variables in particular.
func childEnv() []string {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	for _, k := range []string{"HOME", "TMPDIR", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}
