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
// simulator) does it.
//
// Child processes run in their own process groups and receive SIGKILL if the
// test binary dies (Linux), so a panicking test leaves nothing behind.
package controlplane
