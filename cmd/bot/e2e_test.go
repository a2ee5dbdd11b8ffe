package main

// End-to-end tests of the runbook's three branches (design §1: not found,
// access denied, timeout) on real parts: the real control plane, the
// kubelet simulator (or, in realnode_test.go, a real containerd and
// kubelet), loopback registries, and the Slack emulator driven by the real
// slack-go client over Socket Mode.
//
// The bot is the whole program, run in-process through run(ctx, ["run"], …)
// exactly as the container's entry point runs it. It is configured only by
// PULLFIX_* variables, and those are the ones the chart's own Deployment
// sets (rendered by the pinned Helm, fieldRef and secretKeyRef resolved as
// the kubelet would), except the two things a pod gets from its
// environment: the API server credentials (a kubeconfig holding a real
// token of the chart's ServiceAccount, in place of the mounted token) and
// the ops listen address (loopback, any port). So the bot runs with the
// chart's least-privilege RBAC, and nothing it logs may say it was refused.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/pullfix/pullfix/internal/slackapp"
	"github.com/pullfix/pullfix/internal/testenv/chart"
	"github.com/pullfix/pullfix/internal/testenv/controlplane"
	"github.com/pullfix/pullfix/internal/testenv/kubeletsim"
	"github.com/pullfix/pullfix/internal/testenv/node"
	"github.com/pullfix/pullfix/internal/testenv/registries"
	"github.com/pullfix/pullfix/internal/testenv/slackemu"
	"github.com/pullfix/pullfix/internal/watch"
	"github.com/pullfix/pullfix/internal/watch/fix"
)

const (
	// The runbook's references (seeds/000): the misspelt repository and
	// the one that exists.
	badImage  = "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1"
	goodImage = "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1"
	// ecrHost is a private ECR registry, served by a loopback registry
	// that node and bot both reach through the mirror mapping.
	ecrHost = "123456789012.dkr.ecr.us-west-2.amazonaws.com"

	channelID   = "C0PULLFIX1"
	approverID  = "U0ALICE01"
	bystanderID = "U0MALLORY"
	clusterName = "e2e"
)

// ---- the environment -------------------------------------------------

// e2e is one test's world: the chart's RBAC installed under a fresh release,
// the app namespace, a kubelet simulator for it, a Slack emulator, and the
// environment the bot runs with.
type e2e struct {
	admin   kubernetes.Interface
	release string
	system  string // the release namespace: the bot's own (Lease, state)
	ns      string // the watched namespace the workloads live in
	emu     *slackemu.Emulator
	sim     *kubeletsim.Simulator        // the kubelet simulator, or nil on a real node
	node    *node.Test                   // the real node (containerd + kubelet), or nil
	env     map[string]string            // PULLFIX_* as the chart sets them, plus the overrides
	objs    []*unstructured.Unstructured // what the chart rendered
	logs    *logBuffer

	mu sync.Mutex
	// firstFail is when the kubelet first wrote a pull failure into a pod
	// status (ErrImagePull), for the detection-latency figure.
	firstFail time.Time
	// created lists the Deployments the test made, removed at the end
	// while the simulator still runs (it finishes pod deletions).
	created []string
}

// world says what a test needs besides the defaults.
type world struct {
	// namespace is the app namespace; "" makes a fresh one per test.
	namespace string
	// mirrors maps registry hosts in image references to loopback
	// registries, for the nodes (containerd's hosts.toml) and the bot
	// (the chart's registryMirrors) alike.
	mirrors map[string]string
	// realNode runs the pods on a real containerd and kubelet
	// (internal/testenv/node) instead of the kubelet simulator; routes then
	// say how that node reaches each registry host of mirrors.
	realNode bool
	routes   map[string]node.Route
	// emuOpts configure the Slack emulator (its tokens, signing secret,
	// request URLs).
	emuOpts []slackemu.Option
	// httpAddr, when set, runs the chart's Slack HTTP mode (the emulator's
	// signing secret) with the bot listening there.
	httpAddr string
	// slack holds more of the chart's slack values (e.g. rbacMapping).
	slack map[string]any
	// values are more chart values (e.g. admission), over the defaults below.
	values map[string]any
}

// newE2E renders the chart with Slack on, creates its ServiceAccount, RBAC
// and Slack Secret (not its Deployment: the bot runs in this process),
// starts the Slack emulator and the kubelet simulator, and derives the
// bot's environment from the rendered Deployment.
func newE2E(t *testing.T, w world) *e2e {
	t.Helper()
	controlplane.Require(t, cp)
	if w.realNode {
		node.Require(t)
	}
	h := chart.RequireHelm(t, "pullfix")
	ctx := t.Context()
	admin, err := kubernetes.NewForConfig(cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	release := "e2e-" + strings.ToLower(rand.Text()[:6])
	e := &e2e{admin: admin, release: release, system: release + "-system", ns: w.namespace, logs: &logBuffer{}}
	if e.ns == "" {
		e.ns = release + "-app"
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("bot logs:\n%s", e.logs.String())
		}
	})
	for _, ns := range []string{e.system, e.ns} {
		ensureNamespace(t, admin, ns)
	}

	emu, err := slackemu.New(w.emuOpts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	emu.AddChannel(channelID, "platform-oncall")
	emu.AddUser(approverID, "alice")
	emu.AddUser(bystanderID, "mallory")
	e.emu = emu

	mirrors := map[string]any{}
	for k, v := range w.mirrors {
		mirrors[k] = v
	}
	values := map[string]any{
		"clusterName":     clusterName,
		"watchNamespaces": []any{e.ns},
		"registryMirrors": mirrors,
		"logFormat":       "text",
		"slack": map[string]any{
			"enabled":   true,
			"mode":      "socket",
			"channel":   channelID,
			"approvers": map[string]any{"global": []any{approverID}},
			"botToken":  emu.BotToken(),
			"appToken":  emu.AppToken(),
		},
		// The one Slack setting a real install never needs: where Slack is.
		// (w.slack is merged in below.)
		"extraEnv": []any{map[string]any{"name": "PULLFIX_SLACK_API_URL", "value": emu.APIURL()}},
	}
	if w.httpAddr != "" {
		sl := values["slack"].(map[string]any)
		sl["mode"], sl["signingSecret"] = "http", emu.SigningSecret()
		delete(sl, "appToken")
	}
	maps.Copy(values["slack"].(map[string]any), w.slack)
	maps.Copy(values, w.values)
	objs, err := h.Render(ctx, release, e.system, values)
	if err != nil {
		t.Fatal(err)
	}
	e.objs = objs
	var install []*unstructured.Unstructured
	for _, o := range objs {
		switch o.GetKind() {
		case "ServiceAccount", "Secret", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding":
			install = append(install, o)
		}
	}
	if err := chart.Create(ctx, cp.AdminConfig(), e.system, install); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, o := range install {
			switch o.GetKind() {
			case "ClusterRole":
				_ = admin.RbacV1().ClusterRoles().Delete(context.Background(), o.GetName(), metav1.DeleteOptions{})
			case "ClusterRoleBinding":
				_ = admin.RbacV1().ClusterRoleBindings().Delete(context.Background(), o.GetName(), metav1.DeleteOptions{})
			case "Role", "RoleBinding":
				// In the app namespace: gone with it, except in a shared
				// namespace such as default.
				if o.GetNamespace() == e.ns {
					rbac := admin.RbacV1()
					if o.GetKind() == "Role" {
						_ = rbac.Roles(e.ns).Delete(context.Background(), o.GetName(), metav1.DeleteOptions{})
					} else {
						_ = rbac.RoleBindings(e.ns).Delete(context.Background(), o.GetName(), metav1.DeleteOptions{})
					}
				}
			}
		}
	})

	sas := chart.Find(objs, "ServiceAccount")
	deps := chart.Find(objs, "Deployment")
	if len(sas) != 1 || len(deps) != 1 {
		t.Fatalf("the chart rendered %d ServiceAccounts and %d Deployments, want 1 and 1", len(sas), len(deps))
	}
	e.env = chartEnv(t, deps[0], chart.Find(objs, "Secret"), e.system)
	for k, want := range map[string]string{
		"PULLFIX_POD_NAMESPACE": e.system, "PULLFIX_LEADER_ELECTION": "true", "PULLFIX_CLUSTER_NAME": clusterName,
		"PULLFIX_SLACK_CHANNEL": channelID, "PULLFIX_SLACK_APPROVERS": approverID, "PULLFIX_NAMESPACES": e.ns,
	} {
		if got := e.env[k]; got != want {
			t.Fatalf("the chart's Deployment sets %s=%q, want %q", k, got, want)
		}
	}
	httpMode := w.httpAddr != ""
	if e.env["PULLFIX_STATE_CONFIGMAP"] == "" || e.env["PULLFIX_SLACK_BOT_TOKEN"] == "" ||
		(e.env["PULLFIX_SLACK_APP_TOKEN"] != "") == httpMode || (e.env["PULLFIX_SLACK_SIGNING_SECRET"] != "") != httpMode {
		t.Fatal("the chart's Deployment sets no state ConfigMap or not the Slack tokens of its mode")
	}

	// What a pod gets from where it runs rather than from the chart: the
	// API server and its ServiceAccount token, and a free port.
	saCfg, err := cp.ServiceAccountConfig(ctx, e.system, sas[0].GetName())
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	kc := clientcmdapi.NewConfig()
	kc.Clusters["e2e"] = &clientcmdapi.Cluster{Server: saCfg.Host, CertificateAuthorityData: saCfg.CAData}
	kc.AuthInfos["pullfix"] = &clientcmdapi.AuthInfo{Token: saCfg.BearerToken}
	kc.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: "pullfix", Namespace: e.system}
	kc.CurrentContext = "e2e"
	if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
		t.Fatal(err)
	}
	e.env["PULLFIX_KUBECONFIG"] = kubeconfig
	e.env["PULLFIX_LISTEN_ADDR"] = "127.0.0.1:0"
	if w.httpAddr != "" {
		e.env["PULLFIX_LISTEN_ADDR"] = w.httpAddr
	}
	// The first post waits for the probe (loopback answers in ms), so a
	// loaded CI machine cannot turn it into a kubelet-only post plus an edit.
	e.env["PULLFIX_DIAGNOSIS_BUDGET"] = "30s"

	// The authorizer learns of new bindings through its informers: wait
	// until each binding is in effect, so a denial later is the chart's.
	asSA, err := kubernetes.NewForConfig(saCfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, ra := range []authorizationv1.ResourceAttributes{
		{Verb: "watch", Resource: "pods", Namespace: e.ns},
		{Verb: "patch", Group: "apps", Resource: "deployments", Namespace: e.ns},
		{Verb: "get", Resource: "nodes", Name: "any"},
		{Verb: "create", Group: "coordination.k8s.io", Resource: "leases", Namespace: e.system},
		{Verb: "create", Resource: "configmaps", Namespace: e.system},
	} {
		poll(t, 30*time.Second, fmt.Sprintf("the chart's RBAC to allow %s %s", ra.Verb, ra.Resource), func(ctx context.Context) (bool, error) {
			r, err := asSA.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
				&authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &ra}}, metav1.CreateOptions{})
			return err == nil && r.Status.Allowed, nil
		})
	}

	if w.realNode {
		e.node = node.StartForTest(t, cp, "realnode", w.routes)
		e.recordFirstFailure(t)
	} else {
		e.startSimulator(t, release, w.mirrors)
	}
	// Runs before the node stops (cleanups run last-in first-out) and after
	// the bots stop: a shared namespace such as default is left as found.
	t.Cleanup(func() { e.deleteDeployments(t) })
	return e
}

// startSimulator runs the kubelet simulator for the test's namespace,
// recording the first ErrImagePull status write.
func (e *e2e) startSimulator(t *testing.T, release string, mirrors map[string]string) {
	t.Helper()
	cfg := cp.AdminConfig()
	sim, err := kubeletsim.NewForConfig(cfg, kubeletsim.WithNamespace(e.ns), kubeletsim.WithNodeNames(release+"-node"),
		kubeletsim.WithMirrors(mirrors), kubeletsim.WithBackoff(100*time.Millisecond, time.Second), kubeletsim.WithPullTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	sim.OnStatusWrite(func(sw kubeletsim.StatusWrite) {
		reason, at := sw.Reason, sw.Written
		if reason != "ErrImagePull" {
			return
		}
		e.mu.Lock()
		if e.firstFail.IsZero() {
			e.firstFail = at
		}
		e.mu.Unlock()
	})
	// Not t.Context(): that ends before the cleanups, and the simulator
	// must outlive deleteDeployments to finish the pods' deletion.
	if err := sim.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Stop)
	e.sim = sim
}

// recordFirstFailure watches the namespace's pods and records when a
// container status first says ErrImagePull — the real kubelet's first
// status write of a pull failure, as the simulator's hook does.
func (e *e2e) recordFirstFailure(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := e.admin.CoreV1().Pods(e.ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			for _, cs := range pod.Status.ContainerStatuses {
				if cs.State.Waiting != nil && cs.State.Waiting.Reason == "ErrImagePull" {
					e.mu.Lock()
					if e.firstFail.IsZero() {
						e.firstFail = time.Now()
					}
					e.mu.Unlock()
				}
			}
		}
	}()
}

// chartEnv is the bot container's environment as the chart's Deployment
// declares it, with fieldRef (the pod's namespace) and secretKeyRef (the
// chart's Secret) resolved as the kubelet would.
func chartEnv(t *testing.T, dep *unstructured.Unstructured, secrets []*unstructured.Unstructured, podNamespace string) map[string]string {
	t.Helper()
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(dep.Object, &d); err != nil {
		t.Fatal(err)
	}
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("the chart's Deployment has %d containers", len(d.Spec.Template.Spec.Containers))
	}
	if args := d.Spec.Template.Spec.Containers[0].Args; !slices.Equal(args, []string{"run"}) {
		t.Fatalf("the chart runs the bot with args %q; this test runs [run]", args)
	}
	data := map[string]map[string]string{}
	for _, s := range secrets {
		m := map[string]string{}
		sd, _, _ := unstructured.NestedStringMap(s.Object, "stringData")
		for k, v := range sd {
			m[k] = v
		}
		bd, _, _ := unstructured.NestedStringMap(s.Object, "data")
		for k, v := range bd {
			b, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				t.Fatalf("Secret %s key %s: %v", s.GetName(), k, err)
			}
			m[k] = string(b)
		}
		data[s.GetName()] = m
	}
	env := map[string]string{}
	for _, v := range d.Spec.Template.Spec.Containers[0].Env {
		switch from := v.ValueFrom; {
		case from == nil:
			env[v.Name] = v.Value
		case from.FieldRef != nil && from.FieldRef.FieldPath == "metadata.namespace":
			env[v.Name] = podNamespace
		case from.SecretKeyRef != nil:
			val, ok := data[from.SecretKeyRef.Name][from.SecretKeyRef.Key]
			if !ok {
				t.Fatalf("%s: the chart rendered no Secret %s with key %s", v.Name, from.SecretKeyRef.Name, from.SecretKeyRef.Key)
			}
			env[v.Name] = val
		default:
			t.Fatalf("%s: a valueFrom this test cannot resolve: %+v", v.Name, from)
		}
	}
	return env
}

// configKeys are the variables Config reads, so a test can unset the
// ones the chart does not set (a developer's shell must not leak in).
func configKeys() []string {
	var keys []string
	var add func(rt reflect.Type)
	add = func(rt reflect.Type) {
		for i := range rt.NumField() {
			f := rt.Field(i)
			if k := f.Tag.Get("envconfig"); k != "" {
				keys = append(keys, "PULLFIX_"+k)
			} else if f.Anonymous && f.Type.Kind() == reflect.Struct {
				add(f.Type) // envconfig reads an embedded struct's fields as Config's own (admission.Settings)
			}
		}
	}
	add(reflect.TypeFor[Config]())
	return keys
}

// startBot runs the bot in this process, `bot run` as the chart's
// container does, with e.env as its whole configuration, and returns once
// it leads and holds its Socket Mode connection. stop cancels it and waits
// for it to exit cleanly (and to let go of Slack); it is idempotent and
// also runs when the test ends.
func startBot(t *testing.T, e *e2e) (stop func()) {
	t.Helper()
	for _, k := range configKeys() {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for k, v := range e.env {
		t.Setenv(k, v)
	}
	before := len(e.emu.Connections())
	ctx, cancel := context.WithCancel(context.Background())
	exited, exitedCancel := context.WithCancel(context.Background())
	var code int
	go func() {
		defer exitedCancel()
		code = run(ctx, []string{"run"}, strings.NewReader(""), io.Discard, e.logs)
	}()
	began := time.Now()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-exited.Done():
				if code != 0 {
					t.Errorf("the bot exited with code %d", code)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("the bot did not stop within 30s of its context ending")
				return
			}
			waitSlack(t, e.emu, 15*time.Second, "the stopped bot to close its Socket Mode connection", func() bool { return e.emu.OpenConnections() == 0 })
		})
	}
	t.Cleanup(stop)
	wctx, wcancel := context.WithTimeout(exited, 60*time.Second)
	defer wcancel()
	if err := e.emu.WaitFor(wctx, func() bool { return len(e.emu.Connections()) > before && e.emu.OpenConnections() > 0 }); err != nil {
		if exited.Err() != nil {
			t.Fatalf("the bot exited with code %d before connecting to Slack", code)
		}
		t.Fatalf("the bot did not lead and open its Socket Mode connection: %v", err)
	}
	t.Logf("bot leading and connected to Slack %s after start", time.Since(began).Round(time.Millisecond))
	return stop
}

// ---- cluster helpers ---------------------------------------------------

func ensureNamespace(t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	ctx := t.Context()
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	switch {
	case err == nil:
		t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	case !apierrors.IsAlreadyExists(err):
		t.Fatal(err)
	}
	// The ServiceAccount admission plugin refuses pods until the
	// namespace's default ServiceAccount exists.
	poll(t, 30*time.Second, "the default ServiceAccount in "+ns, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
}

// createDeployment creates a one-replica Deployment of one container
// "ui" (labels app=NAME), as the runbook's ui-new. On a real node its pods
// name the node (no scheduler runs) and use the host network (the node
// has no CNI plugin).
func (e *e2e) createDeployment(t *testing.T, name, image string) *appsv1.Deployment {
	t.Helper()
	one := int32(1)
	labels := map[string]string{"app": name}
	var nodeName string
	if e.node != nil {
		nodeName = e.node.Name()
	}
	d, err := e.admin.AppsV1().Deployments(e.ns).Create(t.Context(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers:                    []corev1.Container{{Name: "ui", Image: image}},
					TerminationGracePeriodSeconds: new(int64(1)),
					NodeName:                      nodeName,
					HostNetwork:                   e.node != nil,
				},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	e.created = append(e.created, name)
	e.mu.Unlock()
	return d
}

// deleteDeployments removes the test's Deployments and waits for their
// pods to go, so the next test (or -count run) in a shared namespace
// starts clean.
func (e *e2e) deleteDeployments(t *testing.T) {
	e.mu.Lock()
	names := slices.Clone(e.created)
	e.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fg := metav1.DeletePropagationForeground
	for _, name := range names {
		if err := e.admin.AppsV1().Deployments(e.ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("cleanup: delete Deployment %s/%s: %v", e.ns, name, err)
		}
		err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			pods, err := e.admin.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + name})
			return err == nil && len(pods.Items) == 0, nil
		})
		if err != nil {
			t.Logf("cleanup: pods of %s/%s still present: %v", e.ns, name, err)
		}
	}
}

// createPullSecret creates a dockerconfigjson Secret holding user:password
// for host in the app namespace.
func (e *e2e) createPullSecret(t *testing.T, name, host, user, password string) {
	t.Helper()
	auths, _ := json.Marshal(map[string]any{"auths": map[string]any{
		host: map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + password))},
	}})
	if _, err := e.admin.CoreV1().Secrets(e.ns).Create(t.Context(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: auths},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (e *e2e) deployment(t *testing.T, name string) *appsv1.Deployment {
	t.Helper()
	d, err := e.admin.AppsV1().Deployments(e.ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// pods lists the workload's pods that are not being deleted.
func (e *e2e) pods(ctx context.Context, app string) ([]corev1.Pod, error) {
	l, err := e.admin.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(l.Items, func(p corev1.Pod) bool { return p.DeletionTimestamp != nil }), nil
}

// waitPullFailure waits until the workload's one pod sits in reason
// (ErrImagePull, ImagePullBackOff) and returns it.
func (e *e2e) waitPullFailure(t *testing.T, app, reason string) corev1.Pod {
	t.Helper()
	var pod corev1.Pod
	timeout := 60 * time.Second
	if e.node != nil {
		// containerd gives up on a dropped route after its 30 s dial
		// timeout; the kubelet's back-off then starts at 10 s.
		timeout = 3 * time.Minute
	}
	poll(t, timeout, "a pod of "+app+" in "+reason, func(ctx context.Context) (bool, error) {
		pods, err := e.pods(ctx, app)
		if err != nil || len(pods) != 1 {
			return false, nil
		}
		pod = pods[0]
		cs := pod.Status.ContainerStatuses
		return len(cs) == 1 && cs[0].State.Waiting != nil && cs[0].State.Waiting.Reason == reason, nil
	})
	return pod
}

// waitReady waits until the Deployment is 1/1 with one pod, Running and
// Ready, on image — `kubectl get deploy` READY 1/1, old pods gone.
func (e *e2e) waitReady(t *testing.T, app, image string) corev1.Pod {
	t.Helper()
	var pod corev1.Pod
	timeout := 90 * time.Second
	if e.node != nil {
		// A real kubelet retries a failed pull only after its back-off
		// (10 s, doubling): the pull that works may be one back-off away.
		timeout = 5 * time.Minute
	}
	poll(t, timeout, app+" 1/1 Running on "+image, func(ctx context.Context) (bool, error) {
		d, err := e.admin.AppsV1().Deployments(e.ns).Get(ctx, app, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		st := d.Status
		if st.ObservedGeneration < d.Generation || st.Replicas != 1 || st.ReadyReplicas != 1 || st.UpdatedReplicas != 1 || st.AvailableReplicas != 1 {
			return false, nil
		}
		pods, err := e.pods(ctx, app)
		if err != nil || len(pods) != 1 {
			return false, nil
		}
		pod = pods[0]
		cs := pod.Status.ContainerStatuses
		return pod.Status.Phase == corev1.PodRunning && pod.Spec.Containers[0].Image == image &&
			len(cs) == 1 && cs[0].Ready && cs[0].State.Running != nil, nil
	})
	return pod
}

// events lists the events about one object (by UID).
func (e *e2e) events(t *testing.T, uid types.UID) []corev1.Event {
	t.Helper()
	l, err := e.admin.CoreV1().Events(e.ns).List(t.Context(), metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("involvedObject.uid", string(uid)).String(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// checkKubeletEvents asserts the kubelet's events of a pod that cannot
// pull image: Pulling, Failed with the runtime's words (containing want),
// and the back-off, from the kubelet on the pod's node.
func (e *e2e) checkKubeletEvents(t *testing.T, pod corev1.Pod, image, want string) {
	t.Helper()
	var got []string
	poll(t, 30*time.Second, "the kubelet's pull events of "+pod.Name, func(context.Context) (bool, error) {
		got = got[:0]
		var pulling, failed, backoff bool
		for _, ev := range e.events(t, pod.UID) {
			if ev.Source.Component != "kubelet" || ev.Source.Host != pod.Spec.NodeName {
				continue
			}
			got = append(got, ev.Type+" "+ev.Reason+": "+ev.Message)
			switch {
			case ev.Reason == "Pulling" && strings.Contains(ev.Message, image):
				pulling = true
			case ev.Reason == "Failed" && ev.Type == corev1.EventTypeWarning &&
				strings.HasPrefix(ev.Message, fmt.Sprintf("Failed to pull image %q: ", image)) && strings.Contains(ev.Message, want):
				failed = true
			case ev.Reason == "BackOff" && strings.Contains(ev.Message, "Back-off pulling image"):
				backoff = true
			}
		}
		return pulling && failed && backoff, nil
	})
	t.Logf("kubelet events of %s:\n  %s", pod.Name, strings.Join(got, "\n  "))
}

// stateRecords reads the bot's state ConfigMap (as the admin): incident id
// → record (state, ref).
func (e *e2e) stateRecords(ctx context.Context) map[string]stateRecord {
	cm, err := e.admin.CoreV1().ConfigMaps(e.system).Get(ctx, e.env["PULLFIX_STATE_CONFIGMAP"], metav1.GetOptions{})
	if err != nil {
		return nil
	}
	out := map[string]stateRecord{}
	for k, v := range cm.Data {
		var r stateRecord
		if json.Unmarshal([]byte(v), &r) == nil {
			out[k] = r
		}
	}
	return out
}

// stateRecord is the part of the watcher's persisted record a test reads.
type stateRecord struct {
	ID    string      `json:"id"`
	State watch.State `json:"state"`
	Ref   string      `json:"ref"`
}

// waitState waits until the state ConfigMap holds the incident posted at
// ref in state want.
func (e *e2e) waitState(t *testing.T, ref string, want watch.State) {
	t.Helper()
	poll(t, 60*time.Second, fmt.Sprintf("the state ConfigMap to record %s as %s", ref, want), func(ctx context.Context) (bool, error) {
		for _, r := range e.stateRecords(ctx) {
			if r.Ref == ref && r.State == want {
				return true, nil
			}
		}
		return false, nil
	})
}

// checkNoForbidden fails the test when the bot logged a refusal: the
// chart's RBAC must cover everything the bot did.
func (e *e2e) checkNoForbidden(t *testing.T) {
	t.Helper()
	if m := forbiddenRE.FindAllString(e.logs.String(), 5); len(m) > 0 {
		t.Errorf("the bot was refused something with the chart's RBAC: %q", m)
	}
}

var forbiddenRE = regexp.MustCompile(`(?i)[^\n]*(forbidden|cannot (get|list|watch|patch|create|update) )[^\n]*`)

// ---- Slack helpers -------------------------------------------------------

// waitRoot waits for the bot's first root message in the channel and
// checks it is the only one.
func (e *e2e) waitRoot(t *testing.T) slackemu.Message {
	t.Helper()
	waitSlack(t, e.emu, 90*time.Second, "pullfix's message in the channel", func() bool { return len(e.emu.Messages(channelID)) > 0 })
	roots := e.emu.Messages(channelID)
	if len(roots) != 1 {
		t.Fatalf("%d root messages, want exactly one: %q", len(roots), texts(roots))
	}
	return roots[0]
}

// root returns the current version of the root message at ts.
func (e *e2e) root(t *testing.T, ts string) slackemu.Message {
	t.Helper()
	m, ok := e.emu.Message(channelID, ts)
	if !ok {
		t.Fatalf("root message %s is gone", ts)
	}
	return m
}

// replies are the thread replies under the root at ts.
// replies are the thread's replies after the details reply: what
// happened to the incident (clicks, patches, rollout).
func (e *e2e) replies(ts string) []slackemu.Message {
	th := e.emu.Thread(channelID, ts)
	if len(th) == 0 {
		return nil
	}
	var out []slackemu.Message
	for _, m := range th[1:] {
		if !strings.HasPrefix(m.Text, "Details: ") {
			out = append(out, m)
		}
	}
	return out
}

// facts is the text of the root message at ts and of its details reply
// (the thread's first reply), once both hold every want; after 30 s it
// returns what they hold, for the caller's assertions to report. The
// details reply is edited when the registry's answer refines the
// diagnosis, so it is polled, not read once.
func (e *e2e) facts(t *testing.T, ts string, wants ...string) string {
	t.Helper()
	read := func() string {
		var sb strings.Builder
		sb.WriteString(parseBlocks(t, e.root(t, ts).Blocks).text())
		for _, m := range e.emu.Thread(channelID, ts) {
			if strings.HasPrefix(m.Text, "Details: ") {
				sb.WriteString("\n" + parseBlocks(t, m.Blocks).text())
			}
		}
		return sb.String()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		text := read()
		if !slices.ContainsFunc(wants, func(w string) bool { return !strings.Contains(text, w) }) || time.Now().After(deadline) {
			return text
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// quiet checks that no second root message appears within d: an absence
// cannot be awaited, so it is a bounded window that ends early (and
// fails) on the first root message too many.
func (e *e2e) quiet(t *testing.T, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	if err := e.emu.WaitFor(ctx, func() bool { return len(e.emu.Messages(channelID)) > 1 }); err == nil {
		t.Errorf("a second root message was posted: %q", texts(e.emu.Messages(channelID)))
	}
}

func (e *e2e) click(t *testing.T, user string, root slackemu.Message, b button) time.Time {
	t.Helper()
	at := time.Now()
	ack, err := e.emu.Click(t.Context(), slackemu.Click{UserID: user, ChannelID: channelID, MessageTS: root.TS, ActionID: b.ActionID, BlockID: b.BlockID})
	if err != nil {
		t.Fatalf("%s clicking %q: %v", user, b.Label, err)
	}
	t.Logf("%s clicked %q: acknowledged in %s", user, b.Label, ack.Latency.Round(time.Millisecond))
	return at
}

// waitSlack waits up to timeout for pred. Not on t.Context(): that ends
// before the cleanups run, and stopping the bot in a cleanup waits here
// for its Socket Mode connection to close (on a loaded machine not yet
// closed when the wait begins).
func waitSlack(t *testing.T, emu *slackemu.Emulator, timeout time.Duration, what string, pred func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := emu.WaitFor(ctx, pred); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func poll(t *testing.T, timeout time.Duration, what string, cond wait.ConditionWithContextFunc) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, timeout, true, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

func texts(ms []slackemu.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Text
	}
	return out
}

// blocks is a message's Block Kit JSON, decoded loosely: the test reads
// what a person sees (header, text) and what a client sends back
// (buttons' action_id, value, block_id).
type blocks []map[string]any

func parseBlocks(t *testing.T, raw json.RawMessage) blocks {
	t.Helper()
	var bs blocks
	if err := json.Unmarshal(raw, &bs); err != nil {
		t.Fatalf("blocks %s: %v", raw, err)
	}
	return bs
}

// header is the text of the first header block.
func (bs blocks) header() string {
	for _, b := range bs {
		if b["type"] == "header" {
			if tx, ok := b["text"].(map[string]any); ok {
				s, _ := tx["text"].(string)
				return s
			}
		}
	}
	return ""
}

// text is every text a person can read in the blocks, one per line.
func (bs blocks) text() string {
	var out []string
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if s, ok := x["text"].(string); ok {
				out = append(out, s)
			}
			for _, k := range slices.Sorted(maps.Keys(x)) {
				if _, isString := x[k].(string); k != "text" || !isString {
					walk(x[k])
				}
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	for _, b := range bs {
		walk(b)
	}
	return strings.Join(out, "\n")
}

// button is one clickable element.
type button struct {
	BlockID, ActionID, Value, Label string
}

func (bs blocks) buttons() []button {
	var out []button
	add := func(blockID string, el any) {
		m, ok := el.(map[string]any)
		if !ok || m["type"] != "button" {
			return
		}
		b := button{BlockID: blockID}
		b.ActionID, _ = m["action_id"].(string)
		b.Value, _ = m["value"].(string)
		if tx, ok := m["text"].(map[string]any); ok {
			b.Label, _ = tx["text"].(string)
		}
		out = append(out, b)
	}
	for _, b := range bs {
		id, _ := b["block_id"].(string)
		if acc, ok := b["accessory"]; ok {
			add(id, acc)
		}
		if els, ok := b["elements"].([]any); ok && b["type"] == "actions" {
			for _, el := range els {
				add(id, el)
			}
		}
	}
	return out
}

// button finds the button with actionID and label, or fails the test.
func (bs blocks) button(t *testing.T, actionID, label string) button {
	t.Helper()
	for _, b := range bs.buttons() {
		if b.ActionID == actionID && b.Label == label {
			return b
		}
	}
	t.Fatalf("no %q button (%s) in the message; buttons: %+v", label, actionID, bs.buttons())
	return button{}
}

func (bs blocks) hasAction(actionID string) bool {
	return slices.ContainsFunc(bs.buttons(), func(b button) bool { return b.ActionID == actionID })
}

// logBuffer collects the bot's logs, safe for concurrent writers.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (e *e2e) failedAt() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.firstFail
}

// ---- the runbook ---------------------------------------------------------

// runbookWorld is a registry serving the runbook's images as public.ecr.aws
// (retail-store-sample-ui exists, retailing-store-sample-ui does not), for
// the nodes and the bot alike.
//
// On a real node the fix (retail-store-sample-ui:1.2.1) is an image that
// runs, and brokenRoute makes the node's route to public.ecr.aws drop
// connections until restoreRoute.
func runbookWorld(t *testing.T, namespace string, realNode, brokenRoute bool) (*e2e, *registries.Registry) {
	t.Helper()
	reg := registries.New(t)
	if realNode {
		node.Require(t)
		sleeper, err := node.SleeperBinary()
		if err != nil {
			t.Fatal(err)
		}
		registries.SeedRunbookRunnable(t, reg, sleeper)
	} else {
		registries.SeedRunbook(t, reg)
	}
	e := newE2E(t, world{
		namespace: namespace, mirrors: map[string]string{registries.PublicECR: reg.Host},
		realNode: realNode, routes: map[string]node.Route{registries.PublicECR: {Registry: reg, Dropped: brokenRoute}},
	})
	if brokenRoute && !realNode {
		e.sim.SetRoute(registries.PublicECR, kubeletsim.RouteBlackHole)
	}
	return e, reg
}

// restoreRoute gives the nodes their route to host back.
func (e *e2e) restoreRoute(host string) {
	if e.node != nil {
		e.node.Restore(host)
		return
	}
	e.sim.SetRoute(host, "")
}

// TestSeedRunbook is the runbook's "not found" branch, end to end: ui-new
// in default points at the misspelt repository; pullfix posts one message
// saying so with a verified "Set image" button; the approver's click
// patches the Deployment (change-cause, Event), the rollout reaches 1/1
// Running, and the root message is edited to say so, with the steps in its
// thread. Nothing is posted twice.
func TestSeedRunbook(t *testing.T) {
	e, _ := runbookWorld(t, metav1.NamespaceDefault, false, false)
	seedRunbook(t, e)
}

// seedRunbook is the runbook's "not found" branch on e's nodes (simulated
// or real); see TestSeedRunbook.
func seedRunbook(t *testing.T, e *e2e) {
	t.Helper()
	startBot(t, e)
	created := time.Now()
	dep := e.createDeployment(t, "ui-new", badImage)

	root := e.waitRoot(t)
	failed := e.failedAt()
	t.Logf("Deployment created → first pull failure %s → Slack post %s (post latency after the kubelet's status write: %s)",
		failed.Sub(created).Round(time.Millisecond), root.PostedAt.Sub(created).Round(time.Millisecond), root.PostedAt.Sub(failed).Round(time.Millisecond))

	// The cluster, as the runbook found it: 0/1, ImagePullBackOff, the
	// kubelet's events.
	pod := e.waitPullFailure(t, "ui-new", "ImagePullBackOff")
	if w := pod.Status.ContainerStatuses[0].State.Waiting; !strings.Contains(w.Message, "not found") {
		t.Errorf("waiting message %q does not say not found", w.Message)
	}
	e.checkKubeletEvents(t, pod, badImage, fmt.Sprintf("failed to resolve reference %q", badImage))
	poll(t, 30*time.Second, "ui-new to show 0/1", func(ctx context.Context) (bool, error) {
		d, err := e.admin.AppsV1().Deployments(e.ns).Get(ctx, "ui-new", metav1.GetOptions{})
		return err == nil && d.Status.Replicas == 1 && d.Status.ReadyReplicas == 0 && d.Status.UnavailableReplicas == 1, nil
	})

	// The message: the cause, the evidence, the verified fix.
	bs := parseBlocks(t, root.Blocks)
	if h := bs.header(); h != "ui-new: repository not found" {
		t.Errorf("header %q, want %q", h, "ui-new: repository not found")
	}
	// The root names the registry's own answer; the details reply holds
	// the kubelet's words and the probe's.
	if text := bs.text(); !strings.Contains(text, "Registry said:* ") || !strings.Contains(text, "NAME_UNKNOWN") {
		t.Errorf("the root message does not give the registry's answer in one line:\n%s", text)
	}
	wants := []string{"Kubelet said", badImage + ": not found", "Registry said", "NAME_UNKNOWN", "ui-new", "`" + e.ns + "`", "`" + clusterName + "`"}
	text := e.facts(t, root.TS, wants...)
	for _, want := range wants {
		if !strings.Contains(text, want) {
			t.Errorf("the message and its details do not show %q:\n%s", want, text)
		}
	}
	set := bs.button(t, slackapp.ActionIDSetImage, "Set image to "+goodImage)
	if strings.Contains(set.Value, goodImage) || strings.Contains(set.Value, "retail-store") {
		t.Errorf("the button value %q carries the image; it must carry only ids", set.Value)
	}

	clicked := e.click(t, approverID, root, set)
	poll(t, 30*time.Second, "ui-new's image to become "+goodImage, func(ctx context.Context) (bool, error) {
		d, err := e.admin.AppsV1().Deployments(e.ns).Get(ctx, "ui-new", metav1.GetOptions{})
		return err == nil && d.Spec.Template.Spec.Containers[0].Image == goodImage, nil
	})
	patched := time.Since(clicked)
	d := e.deployment(t, "ui-new")
	if img := d.Spec.Template.Spec.Containers[0].Image; img != goodImage {
		t.Errorf("image %q, want exactly %q", img, goodImage)
	}
	cause := "pullfix: image " + badImage + " → " + goodImage + ", approved by <@" + approverID + "> (Slack)"
	if got := d.Annotations[fix.ChangeCauseAnnotation]; got != cause {
		t.Errorf("Deployment change-cause %q, want %q", got, cause)
	}

	pod = e.waitReady(t, "ui-new", goodImage)
	running := time.Since(clicked)

	// `kubectl rollout history deployment/ui-new`: revision 2 is the fix,
	// with its cause.
	poll(t, 30*time.Second, "the rollout history to show the change cause", func(ctx context.Context) (bool, error) {
		rss, err := e.admin.AppsV1().ReplicaSets(e.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=ui-new"})
		if err != nil {
			return false, nil
		}
		for _, rs := range rss.Items {
			if metav1.IsControlledBy(&rs, dep) && rs.Spec.Template.Spec.Containers[0].Image == goodImage {
				return rs.Annotations[fix.ChangeCauseAnnotation] == cause && rs.Annotations["deployment.kubernetes.io/revision"] == "2", nil
			}
		}
		return false, nil
	})
	var audit []string
	for _, ev := range e.events(t, dep.UID) {
		if ev.Reason == fix.ReasonImageUpdated {
			audit = append(audit, ev.Message)
		}
	}
	if len(audit) != 1 || !strings.Contains(audit[0], goodImage) || !strings.Contains(audit[0], approverID) {
		t.Errorf("ImageUpdated Events on the Deployment: %q, want one naming %s and the approver", audit, goodImage)
	}

	// The root message says it is over; the thread tells how.
	waitSlack(t, e.emu, 60*time.Second, "the root message to say ui-new 1/1 Running", func() bool {
		m, _ := e.emu.Message(channelID, root.TS)
		var bs blocks
		return json.Unmarshal(m.Blocks, &bs) == nil && bs.header() == "✅ ui-new 1/1 Running on retail-store-sample-ui:1.2.1"
	})
	resolved := time.Since(clicked)
	final := parseBlocks(t, e.root(t, root.TS).Blocks)
	if bts := final.buttons(); len(bts) > 0 {
		t.Errorf("the resolved message still has buttons: %+v", bts)
	}
	if !strings.Contains(final.text(), "<@"+approverID+">") {
		t.Errorf("the resolved message does not name the approver:\n%s", final.text())
	}
	e.waitState(t, slackapp.Ref(channelID, root.TS), watch.StateResolved)
	e.quiet(t, 3*time.Second)

	steps := map[string]int{}
	var thread []string
	for _, r := range e.replies(root.TS) {
		thread = append(thread, r.Text)
		for _, s := range []string{"Approved:", "Patched ", "Rollout of ", "Resolved:"} {
			if strings.HasPrefix(r.Text, s) {
				steps[s]++
			}
		}
	}
	t.Logf("thread:\n  %s", strings.Join(thread, "\n  "))
	for _, s := range []string{"Approved:", "Patched ", "Rollout of ", "Resolved:"} {
		if steps[s] == 0 {
			t.Errorf("the thread lacks the %q step", s)
		}
	}
	for _, s := range []string{"Approved:", "Patched ", "Resolved:"} {
		if steps[s] > 1 {
			t.Errorf("the thread says %q %d times", s, steps[s])
		}
	}
	t.Logf("click → patched %s, → 1/1 Running %s, → root message resolved %s", patched.Round(time.Millisecond), running.Round(time.Millisecond), resolved.Round(time.Millisecond))
	e.checkNoForbidden(t)
}

// TestSeedAccessDenied is the "access denied" branch: a private ECR
// repository the node has no credentials for. pullfix says the pull was
// refused and names what the node role needs (or an imagePullSecret); a
// Secret in the namespace that a ServiceAccount names holds working
// credentials, so the message offers to add it, and the approver's click
// brings ui-new to 1/1 Running.
func TestSeedAccessDenied(t *testing.T) { seedAccessDenied(t, false) }

// seedAccessDenied is the "access denied" branch on simulated or real
// nodes; see TestSeedAccessDenied.
func seedAccessDenied(t *testing.T, realNode bool) {
	t.Helper()
	const password = "ecr-token-for-tests"
	ecr := registries.New(t, registries.WithBasicAuth(registries.BasicAuth{Users: map[string]registries.BasicUser{"AWS": {Password: password}}}))
	if realNode {
		node.Require(t)
		sleeper, err := node.SleeperBinary()
		if err != nil {
			t.Fatal(err)
		}
		ecr.PushRunnable(t, "retail-store-sample-ui:1.2.1", sleeper)
	} else {
		ecr.Push(t, "retail-store-sample-ui:1.2.1", registries.MultiArch...)
	}
	image := ecrHost + "/retail-store-sample-ui:1.2.1"
	e := newE2E(t, world{mirrors: map[string]string{ecrHost: ecr.Host}, realNode: realNode, routes: map[string]node.Route{ecrHost: {Registry: ecr}}})

	// regcred works, and the "builder" ServiceAccount names it — the bot
	// finds it there (it may only get Secrets by name, never list them).
	// ui-new's pods run as "default", which names none.
	e.createPullSecret(t, "regcred", ecrHost, "AWS", password)
	ctx := t.Context()
	if _, err := e.admin.CoreV1().ServiceAccounts(e.ns).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta:       metav1.ObjectMeta{Name: "builder"},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	startBot(t, e)
	created := time.Now()
	e.createDeployment(t, "ui-new", image)
	root := e.waitRoot(t)
	failed := e.failedAt()
	t.Logf("first pull failure %s after create → Slack post %s later", failed.Sub(created).Round(time.Millisecond), root.PostedAt.Sub(failed).Round(time.Millisecond))
	pod := e.waitPullFailure(t, "ui-new", "ImagePullBackOff")
	e.checkKubeletEvents(t, pod, image, "401 Unauthorized")

	// The post waits for no secret search: the working secret is edited
	// into the same message once proven.
	waitSlack(t, e.emu, 30*time.Second, "the proven pull secret in the message", func() bool {
		m, _ := e.emu.Message(channelID, root.TS)
		var bs blocks
		return json.Unmarshal(m.Blocks, &bs) == nil && bs.hasAction(slackapp.ActionIDAddSecret)
	})
	for _, c := range e.emu.Calls("") {
		if c.Method == "chat.postMessage" && c.Params.Get("thread_ts") == "" && parseBlocks(t, c.Blocks).hasAction(slackapp.ActionIDAddSecret) {
			t.Error("the first post already offers the secret: it waited for the secret search")
		}
	}
	root = e.root(t, root.TS)
	bs := parseBlocks(t, root.Blocks)
	// The node role's permissions are named in the details reply.
	text := e.facts(t, root.TS, "imagePullSecret", "*Details*")
	t.Logf("header %q", bs.header())
	if h := bs.header(); h != "ui-new: registry credentials missing or rejected" && h != "ui-new: access to the image denied" {
		t.Errorf("header %q, want the registry's refusal (unauthorized or access denied)", h)
	}
	if !regexp.MustCompile(`ecr:GetAuthorizationToken|ecr:BatchGetImage|ecr:GetDownloadUrlForLayer|AmazonEC2ContainerRegistryReadOnly`).MatchString(text) {
		t.Errorf("the message does not name what the node role needs:\n%s", text)
	}
	if !strings.Contains(text, "imagePullSecret") {
		t.Errorf("the message does not mention imagePullSecrets:\n%s", text)
	}
	if bs.hasAction(slackapp.ActionIDSetImage) {
		t.Errorf("an image change is offered for a credentials problem: %+v", bs.buttons())
	}
	add := bs.button(t, slackapp.ActionIDAddSecret, "Add imagePullSecret regcred")

	clicked := e.click(t, approverID, root, add)
	poll(t, 30*time.Second, "regcred in ui-new's pod template", func(ctx context.Context) (bool, error) {
		d, err := e.admin.AppsV1().Deployments(e.ns).Get(ctx, "ui-new", metav1.GetOptions{})
		return err == nil && slices.Contains(d.Spec.Template.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: "regcred"}), nil
	})
	if img := e.deployment(t, "ui-new").Spec.Template.Spec.Containers[0].Image; img != image {
		t.Errorf("the image changed to %q; adding a pull secret must leave it", img)
	}
	e.waitReady(t, "ui-new", image)
	running := time.Since(clicked)
	waitSlack(t, e.emu, 60*time.Second, "the root message to say ui-new 1/1 Running", func() bool {
		m, _ := e.emu.Message(channelID, root.TS)
		var bs blocks
		return json.Unmarshal(m.Blocks, &bs) == nil && strings.HasPrefix(bs.header(), "✅ ui-new 1/1 Running")
	})
	final := parseBlocks(t, e.root(t, root.TS).Blocks)
	if bts := final.buttons(); len(bts) > 0 {
		t.Errorf("the resolved message still has buttons: %+v", bts)
	}
	t.Logf("resolved message:\n%s", final.text())
	var thread []string
	for _, r := range e.replies(root.TS) {
		thread = append(thread, r.Text)
	}
	t.Logf("thread:\n  %s", strings.Join(thread, "\n  "))
	if !slices.ContainsFunc(thread, func(s string) bool {
		return strings.HasPrefix(s, "Patched Deployment "+e.ns+"/ui-new: add imagePullSecret regcred")
	}) {
		t.Errorf("the thread does not say regcred was added: %q", thread)
	}
	t.Logf("click → 1/1 Running %s, → root message resolved %s", running.Round(time.Millisecond), time.Since(clicked).Round(time.Millisecond))
	e.waitState(t, slackapp.Ref(channelID, root.TS), watch.StateResolved)
	e.quiet(t, 2*time.Second)
	e.checkNoForbidden(t)
}

// TestSeedTimeout is the "timeout" branch: the nodes' route to public ECR
// is a black hole while the bot reaches it. pullfix says the nodes cannot
// reach the registry and where to look, and offers no image change; a
// Re-check says the same; once the route is back the pod recovers and the
// message turns to resolved.
func TestSeedTimeout(t *testing.T) {
	e, _ := runbookWorld(t, "", false, true)
	seedTimeout(t, e)
}

// seedTimeout is the "timeout" branch on e, whose nodes' route to public
// ECR is broken; see TestSeedTimeout.
func seedTimeout(t *testing.T, e *e2e) {
	t.Helper()
	startBot(t, e)
	created := time.Now()
	e.createDeployment(t, "ui-new", goodImage)
	root := e.waitRoot(t)
	failed := e.failedAt()
	t.Logf("first pull failure %s after create → Slack post %s later", failed.Sub(created).Round(time.Millisecond), root.PostedAt.Sub(failed).Round(time.Millisecond))
	pod := e.waitPullFailure(t, "ui-new", "ImagePullBackOff")
	e.checkKubeletEvents(t, pod, goodImage, "i/o timeout")

	bs := parseBlocks(t, root.Blocks)
	text := e.facts(t, root.TS, "NAT gateway", "the nodes")
	if h := bs.header(); h != "ui-new: registry unreachable (timeout)" {
		t.Errorf("header %q, want %q", h, "ui-new: registry unreachable (timeout)")
	}
	for _, want := range []string{"NAT gateway", "transit gateway", "proxy", "security groups", "the nodes"} {
		if !strings.Contains(text, want) {
			t.Errorf("the message does not say %q:\n%s", want, text)
		}
	}
	for _, a := range []string{slackapp.ActionIDSetImage, slackapp.ActionIDRollback, slackapp.ActionIDAddSecret} {
		if bs.hasAction(a) {
			t.Errorf("a %s button is offered for a node network problem: %+v", a, bs.buttons())
		}
	}

	// Re-check while the path is still broken: the same verdict, said in
	// the thread, still no image change.
	detailsEdits := func() (n, edits int) {
		for _, m := range e.emu.Thread(channelID, root.TS) {
			if strings.HasPrefix(m.Text, "Details: ") {
				n, edits = n+1, len(m.Edits)
			}
		}
		return n, edits
	}
	_, editsBefore := detailsEdits()
	e.click(t, approverID, root, bs.button(t, slackapp.ActionIDRecheck, "Re-check"))
	waitSlack(t, e.emu, 30*time.Second, "the Re-check's reply in the thread", func() bool {
		return slices.ContainsFunc(e.replies(root.TS), func(m slackemu.Message) bool { return strings.HasPrefix(m.Text, "Re-checked ") })
	})
	// The re-check's diagnosis replaced the details in place: still one
	// details reply, edited once more (it is edited before the reply).
	if n, edits := detailsEdits(); n != 1 || edits <= editsBefore {
		t.Errorf("after Re-check: %d details replies, edited %d times (before: %d), want one, edited again", n, edits, editsBefore)
	}
	rechecked := parseBlocks(t, e.root(t, root.TS).Blocks)
	if h := rechecked.header(); h != "ui-new: registry unreachable (timeout)" || rechecked.hasAction(slackapp.ActionIDSetImage) {
		t.Errorf("after Re-check: header %q, buttons %+v", h, rechecked.buttons())
	}

	// The route comes back: the kubelet's next attempt pulls, the watcher
	// sees ui-new ready and edits the message.
	restored := time.Now()
	e.restoreRoute(registries.PublicECR)
	e.waitReady(t, "ui-new", goodImage)
	ready := time.Since(restored)
	waitSlack(t, e.emu, 60*time.Second, "the root message to turn resolved", func() bool {
		m, _ := e.emu.Message(channelID, root.TS)
		var bs blocks
		return json.Unmarshal(m.Blocks, &bs) == nil && strings.HasPrefix(bs.header(), "✅ ui-new") && len(bs.buttons()) == 0
	})
	final := parseBlocks(t, e.root(t, root.TS).Blocks)
	t.Logf("route restored → 1/1 Running %s → message resolved %s: %q", ready.Round(time.Millisecond), time.Since(restored).Round(time.Millisecond), final.header())
	if !strings.Contains(final.header(), "Running") {
		t.Errorf("resolved header %q does not say Running", final.header())
	}
	waitSlack(t, e.emu, 30*time.Second, "the resolution in the thread", func() bool {
		return slices.ContainsFunc(e.replies(root.TS), func(m slackemu.Message) bool { return strings.HasPrefix(m.Text, "Resolved") })
	})
	t.Logf("resolved message:\n%s\nthread: %q", final.text(), texts(e.replies(root.TS)))
	e.waitState(t, slackapp.Ref(channelID, root.TS), watch.StateResolved)
	e.quiet(t, 2*time.Second)
	e.checkNoForbidden(t)
}

// TestNonApproverClickPatchesNothing: someone who is not an approver
// clicks "Set image": the Deployment is untouched (no patch, no
// change-cause, no Event), the message is unchanged, and only they see an
// explanation.
func TestNonApproverClickPatchesNothing(t *testing.T) {
	e, _ := runbookWorld(t, "", false, false)
	startBot(t, e)
	dep := e.createDeployment(t, "ui-new", badImage)
	root := e.waitRoot(t)
	set := parseBlocks(t, root.Blocks).button(t, slackapp.ActionIDSetImage, "Set image to "+goodImage)
	before := e.deployment(t, "ui-new")

	e.click(t, bystanderID, root, set)
	waitSlack(t, e.emu, 30*time.Second, "the explanation shown to the non-approver", func() bool { return len(e.emu.Ephemerals(bystanderID)) > 0 })
	eph := e.emu.Ephemerals(bystanderID)
	if len(eph) != 1 || !strings.Contains(eph[0].Text, "can't") || !strings.Contains(eph[0].Text, "Nothing was changed") {
		t.Errorf("ephemerals to %s: %+v, want one explanation that nothing was changed", bystanderID, eph)
	}
	t.Logf("shown to %s: %q", bystanderID, eph[0].Text)
	if n := len(e.emu.Ephemerals(approverID)); n != 0 {
		t.Errorf("the approver was shown %d ephemeral messages", n)
	}

	after := e.deployment(t, "ui-new")
	if after.Generation != before.Generation || after.Spec.Template.Spec.Containers[0].Image != badImage || after.Annotations[fix.ChangeCauseAnnotation] != "" {
		t.Errorf("the Deployment changed: generation %d → %d, image %q, change-cause %q",
			before.Generation, after.Generation, after.Spec.Template.Spec.Containers[0].Image, after.Annotations[fix.ChangeCauseAnnotation])
	}
	for _, ev := range e.events(t, dep.UID) {
		if ev.Reason == fix.ReasonImageUpdated {
			t.Errorf("an ImageUpdated Event was recorded: %q", ev.Message)
		}
	}
	if m := e.root(t, root.TS); len(m.Edits) != 0 || len(e.replies(root.TS)) != 0 {
		t.Errorf("the message was edited (%d times) or answered in its thread (%q)", len(m.Edits), texts(e.replies(root.TS)))
	}
	if len(e.emu.Messages(channelID)) != 1 {
		t.Errorf("root messages: %q", texts(e.emu.Messages(channelID)))
	}
	e.checkNoForbidden(t)
}

// TestRestartDoesNotRepost stops the bot after it posted and starts it
// again, as a rolled Deployment would: the new process takes the Lease,
// reads the state ConfigMap and posts nothing again — and the first
// message's button still works through it.
func TestRestartDoesNotRepost(t *testing.T) {
	e, _ := runbookWorld(t, "", false, false)
	stop := startBot(t, e)
	e.createDeployment(t, "ui-new", badImage)
	root := e.waitRoot(t)
	ref := slackapp.Ref(channelID, root.TS)
	e.waitState(t, ref, watch.StateNotified)
	stop()

	restarted := time.Now()
	startBot(t, e)
	t.Logf("restarted and leading in %s", time.Since(restarted).Round(time.Millisecond))
	e.quiet(t, 3*time.Second)

	// The old message's button acts through the new process.
	clicked := e.click(t, approverID, root, parseBlocks(t, root.Blocks).button(t, slackapp.ActionIDSetImage, "Set image to "+goodImage))
	e.waitReady(t, "ui-new", goodImage)
	waitSlack(t, e.emu, 60*time.Second, "the root message to say ui-new 1/1 Running", func() bool {
		m, _ := e.emu.Message(channelID, root.TS)
		var bs blocks
		return json.Unmarshal(m.Blocks, &bs) == nil && bs.header() == "✅ ui-new 1/1 Running on retail-store-sample-ui:1.2.1"
	})
	t.Logf("click on the pre-restart message → resolved %s", time.Since(clicked).Round(time.Millisecond))
	if n := len(e.emu.Messages(channelID)); n != 1 {
		t.Errorf("%d root messages after the restart, want 1: %q", n, texts(e.emu.Messages(channelID)))
	}
	e.checkNoForbidden(t)
}

// startReplica starts one more bot process-in-process with the same
// configuration as startBot's: a follower while another replica leads.
func startReplica(t *testing.T, e *e2e) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	go func() { exited <- run(ctx, []string{"run"}, strings.NewReader(""), io.Discard, e.logs) }()
	select {
	case code := <-exited:
		t.Fatalf("the second replica exited at once with code %d", code)
	case <-time.After(time.Second):
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case code := <-exited:
				if code != 0 {
					t.Errorf("the second replica exited with code %d", code)
				}
			case <-time.After(30 * time.Second):
				t.Errorf("the second replica did not stop within 30s")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestStaleApprovalRefused: the Deployment's image changed after the
// diagnosis; the approver's click on the old message patches nothing, and
// the thread says what changed.
func TestStaleApprovalRefused(t *testing.T) {
	e, _ := runbookWorld(t, "", false, false)
	startBot(t, e)
	dep := e.createDeployment(t, "ui-new", badImage)
	root := e.waitRoot(t)
	set := parseBlocks(t, root.Blocks).button(t, slackapp.ActionIDSetImage, "Set image to "+goodImage)

	// Someone edits the Deployment by hand to another image (still broken,
	// so the old incident stays open).
	other := "public.ecr.aws/aws-containers/retailing-store-sample-ui:9.9.9"
	patch := fmt.Sprintf(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":%q}]`, other)
	if _, err := e.admin.AppsV1().Deployments(e.ns).Patch(t.Context(), "ui-new", types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	before := e.deployment(t, "ui-new")

	e.click(t, approverID, root, set)
	waitSlack(t, e.emu, 60*time.Second, "the refusal in the thread", func() bool {
		for _, r := range e.replies(root.TS) {
			if strings.Contains(r.Text, "9.9.9") {
				return true
			}
		}
		return false
	})
	after := e.deployment(t, "ui-new")
	if img := after.Spec.Template.Spec.Containers[0].Image; img != other || after.Generation != before.Generation {
		t.Errorf("the Deployment changed: image %q, generation %d → %d", img, before.Generation, after.Generation)
	}
	for _, ev := range e.events(t, dep.UID) {
		if ev.Reason == fix.ReasonImageUpdated {
			t.Errorf("an ImageUpdated Event was recorded: %q", ev.Message)
		}
	}
	t.Logf("thread: %q", texts(e.replies(root.TS)))
	e.checkNoForbidden(t)
}

// TestDoubleClickPatchesOnce: two replicas run (one leads and holds the
// Slack connection); the approver clicks "Set image" twice in a row:
// exactly one patch is applied and recorded, and the second click is told
// the fix is already under way.
func TestDoubleClickPatchesOnce(t *testing.T) {
	e, _ := runbookWorld(t, "", false, false)
	startBot(t, e)
	startReplica(t, e)
	dep := e.createDeployment(t, "ui-new", badImage)
	root := e.waitRoot(t)
	set := parseBlocks(t, root.Blocks).button(t, slackapp.ActionIDSetImage, "Set image to "+goodImage)
	gen := e.deployment(t, "ui-new").Generation

	// The first click is acknowledged once it is recorded, and the message
	// then turns to "fixing" without the button: hold that edit, as a
	// person's second click races it in Slack, until both clicks are in.
	edit := e.emu.HoldCall("chat.update", false, nil)
	e.click(t, approverID, root, set)
	e.click(t, approverID, root, set)
	edit.Release()
	e.waitReady(t, "ui-new", goodImage)
	waitSlack(t, e.emu, 30*time.Second, "the second click's answer", func() bool {
		for _, m := range e.emu.Ephemerals(approverID) {
			if strings.Contains(m.Text, "already being fixed") {
				return true
			}
		}
		return false
	})
	if g := e.deployment(t, "ui-new").Generation; g != gen+1 {
		t.Errorf("generation %d → %d, want exactly one patch", gen, g)
	}
	n := 0
	for _, ev := range e.events(t, dep.UID) {
		if ev.Reason == fix.ReasonImageUpdated {
			n += int(max(ev.Count, 1))
		}
	}
	if n != 1 {
		t.Errorf("%d ImageUpdated Events, want 1", n)
	}
	if got := len(e.emu.Messages(channelID)); got != 1 {
		t.Errorf("%d root messages with two replicas, want 1", got)
	}
	e.checkNoForbidden(t)
}
