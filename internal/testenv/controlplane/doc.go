// Package controlplane starts a real Kubernetes control plane — etcd,
// kube-apiserver and kube-controller-manager — on loopback, for tests,
// benchmarks and the demo.
//
// The binaries are built once from the pinned module in hack/k8s by
// hack/build-k8s.sh and cached by version (see [Version] and [BinDir]).
// A control plane starts in a few seconds, so each test package shares one:
//
//	var cp *controlplane.ControlPlane
//
//	func TestMain(m *testing.M) { os.Exit(controlplane.Run(m, &cp)) }
//
//	func TestSomething(t *testing.T) {
//		controlplane.Require(t, cp)
//		client := kubernetes.NewForConfigOrDie(cp.AdminConfig())
//		…
//	}
//
// There is no kubelet and no scheduler: pods are created by the real
// controllers but never bound or run unless a test (or the kubelet
// simulator) does it. The node-lifecycle controller does run, so a fake
// Node must have its Lease and Ready condition renewed like a real kubelet
// does, or it turns NotReady (and is tainted) after the grace period.
//
// Start-up takes about 4–6 s on a busy two-core machine (etcd ≈0.3–0.8 s,
// kube-apiserver ≈3–4 s of which ≈1 s is the RBAC bootstrap, the
// controller manager ≈1–2 s until the default service account exists).
// RestartAPIServer takes about as long as the API server's share, because
// on SIGTERM it ends open watches at once instead of draining them.
//
// Child processes run in their own process groups and receive SIGKILL if the
// test binary dies (Linux), so a panicking test leaves nothing behind.
package controlplane
