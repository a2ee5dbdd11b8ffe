package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/testenv/controlplane"
	"github.com/pullfix/pullfix/internal/testenv/registries"
)

var cp *controlplane.ControlPlane

func TestMain(m *testing.M) { os.Exit(controlplane.Run(m, &cp)) }

func adminClient(t *testing.T) kubernetes.Interface {
	t.Helper()
	cs, err := kubernetes.NewForConfig(cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func poll(t *testing.T, timeout time.Duration, what string, cond wait.ConditionWithContextFunc) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, timeout, true, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// hostPod is a pod bound to node (no scheduler runs) on the host network
// (no CNI plugin is installed), as the real-node tests run them.
func hostPod(ns, name, node, image string, secrets ...string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.PodSpec{
			NodeName:                      node,
			HostNetwork:                   true,
			TerminationGracePeriodSeconds: new(int64(1)),
			Containers:                    []corev1.Container{{Name: "app", Image: image}},
		},
	}
	for _, s := range secrets {
		p.Spec.ImagePullSecrets = append(p.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
	}
	return p
}

func newNamespace(t *testing.T, cs kubernetes.Interface, prefix string) string {
	t.Helper()
	ns, err := cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })
	poll(t, 30*time.Second, "the default ServiceAccount", func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(ns.Name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	return ns.Name
}

// TestNodeRunsAPod: the real node registers Ready with the node-lifecycle
// controller running, keeps its Lease, pulls a runnable image from a
// loopback registry through CRI and runs it to Running and Ready; deleting
// the pod stops its containers. Stop then leaves no process, cgroup,
// directory or Node behind.
func TestNodeRunsAPod(t *testing.T) {
	reg := registries.New(t)
	nt := StartForTest(t, cp, "node-test", map[string]Route{"registry.test": {Registry: reg}})
	reg.PushRunnable(t, "app:1", nt.Sleeper)
	cs := adminClient(t)
	ns := newNamespace(t, cs, "node")

	node, err := cs.CoreV1().Nodes().Get(t.Context(), nt.Name(), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	info := node.Status.NodeInfo
	t.Logf("node %s: kubelet %s, runtime %s, %s/%s, addresses %v", node.Name, info.KubeletVersion, info.ContainerRuntimeVersion, info.OperatingSystem, info.Architecture, node.Status.Addresses)
	if info.KubeletVersion != controlplane.KubernetesVersion || !strings.HasPrefix(info.ContainerRuntimeVersion, "containerd://1.6") {
		t.Errorf("kubelet %q runtime %q, want %s on containerd 1.6", info.KubeletVersion, info.ContainerRuntimeVersion, controlplane.KubernetesVersion)
	}
	for _, taint := range node.Spec.Taints {
		t.Errorf("the Ready node is tainted: %v", taint)
	}

	began := time.Now()
	if _, err := cs.CoreV1().Pods(ns).Create(t.Context(), hostPod(ns, "app", nt.Name(), "registry.test/app:1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var pod *corev1.Pod
	poll(t, 90*time.Second, "the pod Running and Ready", func(ctx context.Context) (bool, error) {
		pod, err = cs.CoreV1().Pods(ns).Get(ctx, "app", metav1.GetOptions{})
		if err != nil || len(pod.Status.ContainerStatuses) != 1 {
			return false, nil
		}
		c := pod.Status.ContainerStatuses[0]
		return pod.Status.Phase == corev1.PodRunning && c.Ready && c.State.Running != nil, nil
	})
	c := pod.Status.ContainerStatuses[0]
	t.Logf("pod Running and Ready %s after create; image %s, imageID %s", time.Since(began).Round(time.Millisecond), c.Image, c.ImageID)
	if c.Image != "registry.test/app:1" || !strings.HasPrefix(c.ImageID, "registry.test/app@sha256:") {
		t.Errorf("container image %q, imageID %q, want registry.test/app:1 by digest", c.Image, c.ImageID)
	}
	evs, err := cs.CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", string(pod.UID)).String()})
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, e := range evs.Items {
		reasons = append(reasons, e.Reason+": "+e.Message)
	}
	t.Logf("events:\n  %s", strings.Join(reasons, "\n  "))
	if pids := cgroupPIDs(nt.CgroupRoot()); len(pids) == 0 {
		t.Errorf("no process in the node's cgroups while a pod runs")
	}

	// The Lease is renewed: the node-lifecycle controller must not see a
	// dead node while tests run.
	var first time.Time
	poll(t, 30*time.Second, "the node's Lease", func(ctx context.Context) (bool, error) {
		l, err := cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, nt.Name(), metav1.GetOptions{})
		if err != nil || l.Spec.RenewTime == nil {
			return false, nil
		}
		first = l.Spec.RenewTime.Time
		return true, nil
	})
	poll(t, 30*time.Second, "the node's Lease to be renewed", func(ctx context.Context) (bool, error) {
		l, err := cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, nt.Name(), metav1.GetOptions{})
		return err == nil && l.Spec.RenewTime.After(first), nil
	})

	if err := cs.CoreV1().Pods(ns).Delete(t.Context(), "app", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, 60*time.Second, "the pod to be gone", func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().Pods(ns).Get(ctx, "app", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})

	// Stop, and check that nothing is left.
	dir, root, sock := nt.Dir(), nt.CgroupRoot(), filepath.Join(nt.Dir(), "containerd", "containerd.sock")
	pids := []int{nt.ContainerdPID(), nt.KubeletPID()}
	if err := nt.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d still exists after Stop (%v)", pid, err)
		}
	}
	if ps := shimPIDs(sock); len(ps) > 0 {
		t.Errorf("shims still running after Stop: %v", ps)
	}
	if ps := cgroupPIDs(root); len(ps) > 0 {
		t.Errorf("processes still in the node's cgroups after Stop: %v", ps)
	}
	hs, _ := hierarchies()
	for _, h := range hs {
		if _, err := os.Stat(filepath.Join(h, root)); err == nil {
			t.Errorf("cgroup %s still exists after Stop", filepath.Join(h, root))
		}
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("%s still exists after Stop", dir)
	}
	if _, err := cs.CoreV1().Nodes().Get(t.Context(), nt.Name(), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Node %s still exists after Stop: %v", nt.Name(), err)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), dir) {
		t.Errorf("mounts under %s are visible outside the node's mount namespace", dir)
	}
}

// TestCheckRefusesMissingKubelet: a missing binary is a clear error
// naming what to install, not a hang.
func TestCheckRefusesMissingKubelet(t *testing.T) {
	_, err := Check(filepath.Join(t.TempDir(), "kubelet"))
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "hack/build-k8s.sh") {
		t.Fatalf("Check with no kubelet: %v, want ErrMissing naming hack/build-k8s.sh", err)
	}
	t.Setenv("PATH", t.TempDir())
	_, err = Check("/bin/true")
	if !errors.Is(err, ErrMissing) || !strings.Contains(err.Error(), "make node-deps") || !strings.Contains(err.Error(), "containerd") {
		t.Fatalf("Check with an empty PATH: %v, want ErrMissing naming make node-deps and containerd", err)
	}
}
