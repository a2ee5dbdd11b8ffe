package chart

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/testenv/controlplane"
	"github.com/pullfix/pullfix/internal/testenv/kubeletsim"
	"github.com/pullfix/pullfix/internal/testenv/registries"
	"github.com/pullfix/pullfix/internal/watch"
	"github.com/pullfix/pullfix/internal/watch/creds"
	"github.com/pullfix/pullfix/internal/watch/fix"
	"github.com/pullfix/pullfix/internal/watch/leader"
)

const (
	badImage  = "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1"
	goodImage = "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1"
)

// notes is a watch.Notifier that records what the bot would post.
type notes struct {
	mu               sync.Mutex
	opened, resolved []watch.Incident
	updated, grouped int
}

func (n *notes) Opened(_ context.Context, inc watch.Incident) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.opened = append(n.opened, inc)
	return "C0TEST/" + inc.ID, nil
}

func (n *notes) Updated(context.Context, watch.Incident) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.updated++
	return nil
}

func (n *notes) Resolved(_ context.Context, inc watch.Incident) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.resolved = append(n.resolved, inc)
	return nil
}

func (n *notes) UpdatedGroup(context.Context, watch.Group) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.grouped++
	return nil
}

func (n *notes) snapshot() (opened, resolved []watch.Incident) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.opened), slices.Clone(n.resolved)
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

// TestChartBotRound runs the bot's own code — the Watcher with leader
// election and the state ConfigMap, the Diagnoser, FindWorkingPullSecrets
// and the Patcher with its rollout follower — in-process with the chart's
// service-account token, cluster-wide and namespaced, through one round of
// the runbook: ui-new cannot pull retailing-store-sample-ui, the bot
// notices, diagnoses repo_not_found with the verified candidate (reading
// the pod's pull secret and its node), an approver's fix is patched, the
// rollout is followed to ready and the incident resolves. Nothing the bot
// logs may say it was forbidden: a missing right that the code degrades
// around (a node it cannot read, a secret it cannot get) fails the test as
// surely as a failed patch.
func TestChartBotRound(t *testing.T) {
	h := RequireHelm(t, "pullfix")
	controlplane.Require(t, cp)
	for _, mode := range []struct {
		name       string
		namespaced bool
	}{{"cluster", false}, {"namespaced", true}} {
		t.Run(mode.name, func(t *testing.T) {
			ctx := t.Context()
			release := uniqueName("bot-" + mode.name)
			app := release + "-app"
			values := map[string]any{}
			if mode.namespaced {
				values["watchNamespaces"] = []any{app}
			}
			in := installChart(t, h, release, values, []string{app})

			reg := registries.New(t)
			registries.SeedRunbook(t, reg)
			mirrors := map[string]string{registries.PublicECR: reg.Host}
			adminCfg := cp.AdminConfig()
			adminCfg.QPS, adminCfg.Burst = 200, 400
			sim, err := kubeletsim.NewForConfig(adminCfg, kubeletsim.WithNamespace(app), kubeletsim.WithNodeNames(app+"-node"),
				// An arm64 node: the bot reads the node's platform (a silent
				// linux/amd64 default otherwise), so the diagnosis shows it did.
				kubeletsim.WithPlatform("linux", "arm64", ""),
				kubeletsim.WithMirrors(mirrors), kubeletsim.WithBackoff(100*time.Millisecond, time.Second), kubeletsim.WithPullTimeout(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if err := sim.Start(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(sim.Stop)

			// A pull secret the workload and a ServiceAccount name: the bot
			// reads it by name to probe as the kubelet would.
			auth := base64.StdEncoding.EncodeToString([]byte("ci:s3cret"))
			cfgJSON, _ := json.Marshal(map[string]any{"auths": map[string]any{
				registries.PublicECR: map[string]string{"auth": auth}, reg.Host: map[string]string{"auth": auth},
			}})
			if _, err := in.admin.CoreV1().Secrets(app).Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
				Data: map[string][]byte{corev1.DockerConfigJsonKey: cfgJSON},
			}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := in.admin.CoreV1().ServiceAccounts(app).Create(ctx, &corev1.ServiceAccount{
				ObjectMeta: metav1.ObjectMeta{Name: "builder"}, ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}},
			}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}

			logs := &logBuffer{}
			log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			prober, err := diagnose.NewProber(diagnose.WithMirrors(diagnose.Mirrors(mirrors)), diagnose.WithTimeout(2*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			rec := &notes{}
			opts := []watch.Option{
				watch.WithCluster("test"), watch.WithLogger(log), watch.WithResolveTimeout(time.Minute),
				// The first notification carries the full diagnosis, however
				// loaded the machine (the budget has its own tests in watch).
				watch.WithDiagnosisBudget(0),
				watch.WithStateConfigMap(in.ns, in.cm),
				watch.WithLeaderElection(leader.Config{Namespace: in.ns, Name: in.lease, Logger: log}),
			}
			if mode.namespaced {
				opts = append(opts, watch.WithNamespaces(app))
			}
			w, err := watch.New(in.asSA, diagnose.NewDiagnoser(prober), rec, opts...)
			if err != nil {
				t.Fatal(err)
			}
			runCtx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(runCtx) }()
			t.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("watcher: %v", err)
				}
			})

			began := time.Now()
			tpl := corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "ui-new"}},
				Spec: corev1.PodSpec{
					Containers:       []corev1.Container{{Name: "ui", Image: badImage}},
					ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}},
				},
			}
			one := int32(1)
			if _, err := in.admin.AppsV1().Deployments(app).Create(ctx, &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: "ui-new"},
				Spec:       appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: tpl.Labels}, Template: tpl},
			}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}

			var inc watch.Incident
			poll(t, 90*time.Second, "the bot opens an incident for ui-new", func(context.Context) (bool, error) {
				opened, _ := rec.snapshot()
				for _, o := range opened {
					if o.Key.Namespace == app && o.Key.Workload.Name == "ui-new" {
						inc = o
						return true, nil
					}
				}
				return false, nil
			})
			detected := time.Since(began)
			d := inc.Diagnosis
			if d == nil || d.Cause != diagnose.RepoNotFound {
				t.Fatalf("diagnosis %+v, want repo_not_found", d)
			}
			var candidate string
			for _, c := range d.Candidates {
				if c.Image == goodImage {
					candidate = c.Image
				}
			}
			if candidate == "" {
				t.Fatalf("candidates %+v lack %s", d.Candidates, goodImage)
			}
			if d.Target.Platform.Architecture != "arm64" {
				t.Errorf("the diagnosis has platform %+v, not the arm64 node's: the bot could not read the Node", d.Target.Platform)
			}

			found, err := creds.FindWorkingPullSecrets(ctx, in.asSA, app, goodImage, d.Target.Platform, prober, creds.WithFindLogger(log))
			if err != nil || !slices.Equal(found, []string{"regcred"}) {
				t.Errorf("FindWorkingPullSecrets = %v, %v; want [regcred]", found, err)
			}

			p, err := fix.NewPatcher(in.asSA, fix.WithPatcherLogger(log), fix.WithRolloutDeadline(2*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			res, err := p.SetImage(ctx, fix.FixRequest{Key: inc.Key, NewImage: candidate, Approver: "@alice (U0AAA)"})
			if err != nil {
				t.Fatalf("SetImage as the chart's service account: %v", err)
			}
			if len(res.Warnings) > 0 {
				t.Errorf("patch warnings (an audit step lacked a right?): %v", res.Warnings)
			}
			st, err := p.FollowRollout(ctx, inc.Key, nil)
			if err != nil || !st.Ready {
				t.Fatalf("FollowRollout: %v, %+v", err, st)
			}
			poll(t, 90*time.Second, "the bot resolves the incident", func(context.Context) (bool, error) {
				_, resolved := rec.snapshot()
				return len(resolved) > 0, nil
			})
			t.Logf("%s: incident in %s, fixed and resolved in %s", mode.name, detected.Round(time.Millisecond), time.Since(began).Round(time.Millisecond))

			// Leader election and state went through the chart's named rights.
			lease, err := in.admin.CoordinationV1().Leases(in.ns).Get(ctx, in.lease, metav1.GetOptions{})
			if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
				t.Errorf("Lease %s/%s: %v, %+v", in.ns, in.lease, err, lease)
			}
			if cm, err := in.admin.CoreV1().ConfigMaps(in.ns).Get(ctx, in.cm, metav1.GetOptions{}); err != nil || len(cm.Data) == 0 {
				t.Errorf("state ConfigMap %s/%s: %v (data %d keys)", in.ns, in.cm, err, len(cm.Data))
			}
			if m := forbiddenRE.FindAllString(logs.String(), 5); len(m) > 0 {
				t.Errorf("the bot was refused something with the chart's RBAC: %q\nlogs:\n%s", m, logs.String())
			}
		})
	}
}

var forbiddenRE = regexp.MustCompile(`(?i)[^\n]*(forbidden|cannot (get|list|watch|patch|create|update))[^\n]*`)

func poll(t *testing.T, timeout time.Duration, what string, cond wait.ConditionWithContextFunc) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, timeout, true, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}
