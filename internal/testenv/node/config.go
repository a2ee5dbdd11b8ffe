package node

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Registry routes one registry host named in image references to a
// loopback registry, through containerd's hosts.toml.
type Registry struct {
	// Host as image references name it: "public.ecr.aws",
	// "123456789012.dkr.ecr.us-west-2.amazonaws.com", "127.0.0.1:5000".
	Host string
	// Server is the URL containerd really talks to:
	// "http://127.0.0.1:PORT" (plain HTTP) or "https://name:PORT".
	Server string
	// CAFile is a PEM CA bundle to trust for an HTTPS Server ("" = the
	// system roots).
	CAFile string
}

// containerdConfig is containerd 1.6's config (version 2): state under
// dir (runc's too), the CRI plugin with runc through the v2 shim, cgroupfs,
// overlayfs, a loopback-only CNI configuration and hosts.toml per registry.
// restrict_oom_score_adj keeps containers' oom_score_adj at or above
// containerd's own: this machine's root lacks CAP_SYS_RESOURCE, so runc
// cannot lower it to the kubelet's -998 for the sandbox.
func containerdConfig(dir, sandboxImage string) string {
	p := func(elem ...string) string { return filepath.Join(append([]string{dir}, elem...)...) }
	return fmt.Sprintf(`version = 2
root = %q
state = %q
oom_score = 0
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  max_container_log_line_size = 16384
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = %q
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = %q
`, p("containerd", "root"), p("containerd", "state"), p("containerd", "containerd.sock"), p("containerd", "containerd.sock.ttrpc"),
		sandboxImage, p("runc"), p("cni", "bin"), p("cni", "net.d"), p("certs.d"))
}

// cniLoopback is the only CNI network: loopback. containerd's CRI plugin
// reports its network ready once it has loaded a configuration besides its
// built-in loopback, and the kubelet's node is Ready only then; pods use
// hostNetwork, so no plugin is ever executed.
const cniLoopback = `{
  "cniVersion": "0.4.0",
  "name": "pullfix-loopback",
  "plugins": [{"type": "loopback"}]
}
`

// hostsTOML routes reg.Host to reg.Server only: no fall-back to the host
// itself, so a 404 stays containerd's "not found" and nothing leaves the
// machine.
//
// containerd 1.6 refuses a hosts.toml without a [host] table ("invalid
// `host` tree"), and appends the server after the [host] entries; an empty
// [host] table keeps the server the only host.
func hostsTOML(reg Registry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "server = %q\n", reg.Server)
	if reg.CAFile != "" {
		fmt.Fprintf(&b, "ca = %q\n", reg.CAFile)
	}
	b.WriteString("\n[host]\n")
	return b.String()
}

// kubeletConfig is the KubeletConfiguration for a node on this kind of
// machine: cgroup v1 allowed (failCgroupV1: false) with the cgroupfs driver
// under a cgroup root of its own, no swap check, no disk-pressure eviction
// or image GC (a full-ish CI disk must not evict the test's pods), no
// static pods, and every endpoint on 127.0.0.1. Pulls run in parallel (as
// on EKS nodes), so a pull stuck on a dropped route does not hold up the
// others' back-off.
func kubeletConfig(dir, cgroupRoot, caFile string, port, healthzPort int) string {
	p := func(elem ...string) string { return filepath.Join(append([]string{dir}, elem...)...) }
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %s
cgroupsPerQOS: true
containerRuntimeEndpoint: unix://%s
address: 127.0.0.1
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: false
  x509:
    clientCAFile: %s
authorization:
  mode: AlwaysAllow
failSwapOn: false
resolvConf: %s
staticPodPath: ""
podLogsDir: %s
volumePluginDir: %s
evictionHard:
  memory.available: "0%%"
  nodefs.available: "0%%"
  nodefs.inodesFree: "0%%"
  imagefs.available: "0%%"
  imagefs.inodesFree: "0%%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
localStorageCapacityIsolation: false
protectKernelDefaults: false
makeIPTablesUtilChains: false
serializeImagePulls: false
registerNode: true
rotateCertificates: false
serverTLSBootstrap: false
`, cgroupRoot, p("containerd", "containerd.sock"), port, healthzPort, caFile, p("resolv.conf"), p("pod-logs"), p("volume-plugins"))
}

// writeFiles writes name → content under dir, creating directories.
func writeFiles(dir string, files map[string]string) error {
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}
