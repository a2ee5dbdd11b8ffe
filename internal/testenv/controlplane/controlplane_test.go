package controlplane_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/testenv/controlplane"
)

// cp is the package's shared control plane, started by TestMain.
var cp *controlplane.ControlPlane

// helperEnv marks a re-executed test binary that plays a crashing test.
const helperEnv = "PULLFIX_CONTROLPLANE_CRASH_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		crashWithRunningControlPlane()
	}
	os.Exit(controlplane.Run(m, &cp))
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func adminClient(t *testing.T) *kubernetes.Clientset {
	t.Helper()
	c, err := kubernetes.NewForConfig(cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func createNamespace(t *testing.T, ctx context.Context, c kubernetes.Interface, prefix string) string {
	t.Helper()
	ns, err := c.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	return ns.Name
}

// eventually polls f every 100ms until it returns nil or ctx ends.
func eventually(t *testing.T, ctx context.Context, what string, f func() error) {
	t.Helper()
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: %v", what, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TestDeploymentRolledOutByControllerManager proves the real controllers
// run: a Deployment gets a ReplicaSet, which gets a Pod (that never runs:
// there is no kubelet).
func TestDeploymentRolledOutByControllerManager(t *testing.T) {
	controlplane.Require(t, cp)
	t.Parallel()
	ctx := ctxFor(t, 60*time.Second)
	c := adminClient(t)
	ns := createNamespace(t, ctx, c, "deploy")
	labels := map[string]string{"app": "ui"}
	dep, err := c.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "ui"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "ui", Image: "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1",
				}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create deployment: %v", err)
	}

	var rs *appsv1.ReplicaSet
	eventually(t, ctx, "ReplicaSet owned by the Deployment", func() error {
		list, err := c.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for i := range list.Items {
			if owner := metav1.GetControllerOf(&list.Items[i]); owner != nil && owner.UID == dep.UID {
				rs = &list.Items[i]
				return nil
			}
		}
		return fmt.Errorf("none among %d ReplicaSets", len(list.Items))
	})
	eventually(t, ctx, "Pod owned by the ReplicaSet", func() error {
		list, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for i := range list.Items {
			p := &list.Items[i]
			if owner := metav1.GetControllerOf(p); owner != nil && owner.UID == rs.UID {
				if p.Spec.Containers[0].Image != dep.Spec.Template.Spec.Containers[0].Image {
					return fmt.Errorf("pod %s has image %s", p.Name, p.Spec.Containers[0].Image)
				}
				return nil
			}
		}
		return fmt.Errorf("none among %d Pods", len(list.Items))
	})
}

// TestServiceAccountRBAC proves ServiceAccountConfig yields a real token
// whose permissions are exactly what RBAC grants.
func TestServiceAccountRBAC(t *testing.T) {
	controlplane.Require(t, cp)
	t.Parallel()
	ctx := ctxFor(t, 60*time.Second)
	admin := adminClient(t)
	nsA := createNamespace(t, ctx, admin, "rbac-a")
	nsB := createNamespace(t, ctx, admin, "rbac-b")

	if _, err := admin.CoreV1().ServiceAccounts(nsA).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "reader"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service account: %v", err)
	}
	if _, err := admin.RbacV1().Roles(nsA).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "get-pods"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create role: %v", err)
	}
	if _, err := admin.RbacV1().RoleBindings(nsA).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "reader-get-pods"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "get-pods"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: nsA, Name: "reader"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create role binding: %v", err)
	}
	// A pod to read; it names the service account, which exists, so the
	// ServiceAccount admission plugin lets it in.
	if _, err := admin.CoreV1().Pods(nsA).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "target"},
		Spec: corev1.PodSpec{
			ServiceAccountName: "reader",
			Containers:         []corev1.Container{{Name: "c", Image: "example.invalid/app:1"}},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod: %v", err)
	}

	cfg, err := cp.ServiceAccountConfig(ctx, nsA, "reader")
	if err != nil {
		t.Fatalf("ServiceAccountConfig: %v", err)
	}
	if cfg.BearerToken == "" || strings.Count(cfg.BearerToken, ".") != 2 {
		t.Fatalf("token is not a JWT: %q", cfg.BearerToken)
	}
	sa, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The API server's RBAC cache sees the new binding within moments.
	eventually(t, ctx, "service account gets pod in its namespace", func() error {
		_, err := sa.CoreV1().Pods(nsA).Get(ctx, "target", metav1.GetOptions{})
		return err
	})

	if _, err := sa.CoreV1().Pods(nsB).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list pods in other namespace: got %v, want Forbidden", err)
	}
	if _, err := sa.CoreV1().Pods(nsA).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("list pods (only get granted): got %v, want Forbidden", err)
	}
	_, err = sa.AppsV1().Deployments(nsA).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "nope"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"a": "b"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "x"}}},
			},
		},
	}, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("create deployment: got %v, want Forbidden", err)
	}
}

// TestJSONPatchTestOpIsAtomic proves the compare-and-swap the bot relies
// on: a JSON Patch whose `test` op fails is rejected as a whole with 422.
func TestJSONPatchTestOpIsAtomic(t *testing.T) {
	controlplane.Require(t, cp)
	t.Parallel()
	ctx := ctxFor(t, 30*time.Second)
	c := adminClient(t)
	ns := createNamespace(t, ctx, c, "patch")
	if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "cm"},
		Data:       map[string]string{"image": "old:1"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create: %v", err)
	}

	stale := []byte(`[{"op":"test","path":"/data/image","value":"someone-else:2"},` +
		`{"op":"replace","path":"/data/image","value":"new:3"}]`)
	_, err := c.CoreV1().ConfigMaps(ns).Patch(ctx, "cm", types.JSONPatchType, stale, metav1.PatchOptions{})
	var status apierrors.APIStatus
	if !apierrors.IsInvalid(err) || !errors.As(err, &status) || status.Status().Code != 422 {
		t.Fatalf("patch with failing test op: got %v, want 422 Invalid", err)
	}
	got, err := c.CoreV1().ConfigMaps(ns).Get(ctx, "cm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Data["image"] != "old:1" {
		t.Fatalf("rejected patch changed the object: image=%q", got.Data["image"])
	}

	fresh := []byte(`[{"op":"test","path":"/data/image","value":"old:1"},` +
		`{"op":"replace","path":"/data/image","value":"new:3"}]`)
	got, err = c.CoreV1().ConfigMaps(ns).Patch(ctx, "cm", types.JSONPatchType, fresh, metav1.PatchOptions{})
	if err != nil {
		t.Fatalf("patch with passing test op: %v", err)
	}
	if got.Data["image"] != "new:3" {
		t.Fatalf("image=%q, want new:3", got.Data["image"])
	}
}

// TestRestartAPIServer proves a client built before a restart keeps working
// after it, and that state (in etcd) survives. Not parallel: it takes the
// shared API server away for a moment.
func TestRestartAPIServer(t *testing.T) {
	controlplane.Require(t, cp)
	ctx := ctxFor(t, 90*time.Second)
	c := adminClient(t)
	ns := createNamespace(t, ctx, c, "restart")
	if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "before"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	w, err := c.CoreV1().ConfigMaps(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	host := cp.Host()

	began := time.Now()
	if err := cp.RestartAPIServer(ctx); err != nil {
		t.Fatalf("RestartAPIServer: %v", err)
	}
	t.Logf("API server restarted in %s", time.Since(began).Round(time.Millisecond))
	if cp.Host() != host {
		t.Fatalf("host changed from %s to %s", host, cp.Host())
	}

	// The watch opened before the restart must end: that is what informers
	// notice and recover from.
	select {
	case _, ok := <-w.ResultChan():
		for ok {
			_, ok = <-w.ResultChan()
		}
	case <-ctx.Done():
		t.Fatal("watch survived the API server restart")
	}

	// The same client works again, at once.
	if _, err := c.CoreV1().ConfigMaps(ns).Get(ctx, "before", metav1.GetOptions{}); err != nil {
		t.Fatalf("get after restart: %v", err)
	}
	if _, err := c.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "after"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create after restart: %v", err)
	}
}

// TestStopLeavesNoProcesses starts a private control plane, stops it and
// checks that no child (or anything in their process groups) survives and
// the temporary directory is gone.
func TestStopLeavesNoProcesses(t *testing.T) {
	controlplane.Require(t, cp)
	ctx := ctxFor(t, 120*time.Second)
	began := time.Now()
	own, err := controlplane.Start(ctx)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("private control plane started in %s", time.Since(began).Round(time.Millisecond))
	pids := own.PIDs()
	if len(pids) != 3 {
		own.Stop()
		t.Fatalf("PIDs = %v, want 3", pids)
	}
	for _, pid := range pids {
		if !alive(pid) {
			t.Errorf("pid %d not running before Stop", pid)
		}
	}
	dir := own.Dir()
	began = time.Now()
	if err := own.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("stopped in %s", time.Since(began).Round(time.Millisecond))
	assertGone(t, pids, 0)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temp dir %s still exists (stat: %v)", dir, err)
	}
	if err := own.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestCrashLeavesNoProcesses runs a test binary that starts a control
// plane and panics without stopping it; Pdeathsig must take the children
// down with it.
func TestCrashLeavesNoProcesses(t *testing.T) {
	controlplane.Require(t, cp)
	ctx := ctxFor(t, 120*time.Second)
	root := t.TempDir() // the crashed child cannot remove its directory
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+root)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("helper did not crash:\n%s", out)
	}
	var pids []int
	for line := range strings.SplitSeq(string(out), "\n") {
		if rest, ok := strings.CutPrefix(line, "PIDS "); ok {
			for f := range strings.FieldsSeq(rest) {
				pid, err := strconv.Atoi(f)
				if err != nil {
					t.Fatal(err)
				}
				pids = append(pids, pid)
			}
		}
	}
	if len(pids) == 0 {
		t.Fatalf("helper printed no PIDs:\n%s", out)
	}
	// SIGKILL from the parent-death signal is asynchronous; allow a moment.
	assertGone(t, pids, 5*time.Second)

	// The next Start under the same root removes the dead owner's directory.
	stale, _ := filepath.Glob(filepath.Join(root, "pullfix-controlplane-*"))
	if len(stale) != 1 {
		t.Fatalf("crashed child left %v, want one directory", stale)
	}
	if _, err := controlplane.Start(ctx, controlplane.WithTempRoot(root), controlplane.WithAPIServerArgs("--no-such-flag")); err == nil {
		t.Fatal("Start with a bad flag succeeded")
	}
	if _, err := os.Stat(stale[0]); !os.IsNotExist(err) {
		t.Errorf("stale directory %s not removed (stat: %v)", stale[0], err)
	}
}

// crashWithRunningControlPlane is the child process of
// TestCrashLeavesNoProcesses: it starts a control plane, prints its PIDs and
// panics without stopping it, as a crashing test would.
func crashWithRunningControlPlane() {
	own, err := controlplane.Start(context.Background(), controlplane.WithControllerManager(false),
		controlplane.WithTempRoot(os.Getenv(helperEnv)))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	fmt.Printf("PIDS %s\n", strings.Trim(fmt.Sprint(own.PIDs()), "[]"))
	panic("simulated test crash with a running control plane")
}

func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie is dead, merely unreaped.
	s := string(data)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z"
}

// assertGone checks, within wait, that none of pids runs and no process is
// in their process groups.
func assertGone(t *testing.T, pids []int, wait time.Duration) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		left := survivors(pids)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes still alive: %v", left)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// survivors lists live processes that are one of pids or in their groups.
func survivors(pids []int) []string {
	groups := map[int]bool{}
	for _, p := range pids {
		groups[p] = true
	}
	entries, _ := os.ReadDir("/proc")
	var left []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(data)
		i := strings.LastIndexByte(s, ')')
		// fields after the command: state ppid pgrp …
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" {
			continue
		}
		pgrp, _ := strconv.Atoi(f[2])
		if groups[pid] || groups[pgrp] {
			left = append(left, fmt.Sprintf("%d(%s)", pid, s[strings.IndexByte(s, '(')+1:i]))
		}
	}
	return left
}

// TestStartFailureCleansUp makes kube-apiserver refuse to start and checks
// that Start says which process failed and leaves nothing behind.
func TestStartFailureCleansUp(t *testing.T) {
	controlplane.Require(t, cp)
	ctx := ctxFor(t, 60*time.Second)
	root := t.TempDir()
	_, err := controlplane.Start(ctx, controlplane.WithTempRoot(root),
		controlplane.WithAPIServerArgs("--no-such-flag-for-pullfix"))
	if err == nil || !strings.Contains(err.Error(), "kube-apiserver exited") {
		t.Fatalf("Start with a bad flag: got %v, want kube-apiserver exited", err)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 0 {
		t.Errorf("temp root not cleaned up: %v", entries)
	}
	if left := processesRunning("etcd", root); len(left) != 0 {
		t.Errorf("etcd still running: %v", left)
	}
}

// TestKubeconfig checks the admin kubeconfig file names the API server
// and is private to the user.
func TestKubeconfig(t *testing.T) {
	controlplane.Require(t, cp)
	fi, err := os.Stat(cp.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig mode %v, want 0600", fi.Mode().Perm())
	}
	data, err := os.ReadFile(cp.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"server: " + cp.Host(), "token: " + cp.AdminConfig().BearerToken, "current-context: "} {
		if !strings.Contains(string(data), want) {
			t.Errorf("kubeconfig lacks %q", want)
		}
	}
	a, b := cp.AdminConfig(), cp.AdminConfig()
	a.BearerToken, a.CAData = "changed", nil
	if b.BearerToken == "changed" || len(b.CAData) == 0 || len(cp.AdminConfig().CAData) == 0 {
		t.Error("AdminConfig returns shared state")
	}
}

// processesRunning lists live processes whose command line contains all
// of words.
func processesRunning(words ...string) []string {
	entries, _ := os.ReadDir("/proc")
	var found []string
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		s := strings.ReplaceAll(string(cmdline), "\x00", " ")
		match := true
		for _, w := range words {
			match = match && strings.Contains(s, w)
		}
		if match {
			found = append(found, e.Name()+": "+s)
		}
	}
	return found
}
