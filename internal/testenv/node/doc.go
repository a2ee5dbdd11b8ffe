// Package node runs a real Kubernetes node for tests: Debian's containerd
// (with runc) and a kubelet built from the same pinned k8s.io/kubernetes
// module as the test control plane (hack/build-k8s.sh), registering with
// that control plane, pulling through CRI from loopback registries and
// running pods.
//
// The kubelet simulator (internal/testenv/kubeletsim) writes the messages
// and back-off we believe a kubelet writes; this package is the kubelet
// itself, so a test run on it checks that belief (see the simulator
// honesty test in cmd/bot).
//
// Everything stays on this machine:
//
//   - containerd runs in a private mount namespace whose /etc/resolv.conf
//     is a file naming a loopback DNS server (Config.DNSServer), so a name
//     it resolves never leaves the machine; the kubelet runs in the same
//     mount namespace (nsenter -m), because it mounts pod volumes that
//     runc must see. Everything mounted there disappears with the
//     namespace.
//   - each registry host a pod may name ("public.ecr.aws", an ECR host) has
//     a containerd hosts.toml whose server is a loopback registry
//     (Config.Registries); there are no fall-back hosts, so no request
//     goes to the real registry.
//   - the pod sandbox image is a tiny static program pushed to a loopback
//     registry (Config.SandboxImage); pods use hostNetwork (the CNI
//     configuration is loopback only, so the runtime reports its network
//     ready and the node turns Ready, and no interface or route is made).
//   - the kubelet listens on 127.0.0.1 only, its state, containerd's state,
//     pod logs and the CNI files are under one temporary directory, and its
//     cgroups under one cgroup root of its own (/pullfix-node-<id>).
//
// Stop ends it all, by pid: the kubelet, every process in the node's
// cgroups (the containers), the containerd shims that serve this node's
// containerd, containerd; then it removes the cgroups, the temporary
// directory and the Node object. The kubelet and containerd get SIGKILL if
// the test binary dies; what they started (shims, containers) is found and
// ended by the next Start from the owner file of the dead run's directory,
// as internal/testenv/controlplane reaps its directories. On SIGINT and
// SIGTERM (Ctrl-C) the process stops every node it started before it exits.
//
// The kubelet, once, sets the kernel tunables it wants (vm.overcommit_memory,
// kernel.panic, kernel.panic_on_oops, …); Start puts the machine's values
// back as soon as the node is Ready, and Stop once more.
//
// Requirements, checked before anything starts ([ErrMissing] names what is
// absent): root, Linux, containerd, containerd-shim-runc-v2, runc, unshare,
// nsenter, mount (make node-deps installs the Debian packages) and the
// kubelet binary (hack/build-k8s.sh). Start-up takes about 5–10 s.
package node
