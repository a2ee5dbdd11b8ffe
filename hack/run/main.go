// Command run is the README's "run" command (`make run`): it runs pullfix
// against the current kubeconfig's cluster when one answers, and otherwise
// starts an embedded local cluster on loopback — a real etcd,
// kube-apiserver and kube-controller-manager, a kubelet simulator, and an
// OCI registry standing in for public.ecr.aws — with the runbook's broken
// Deployment ui-new, then runs the bot against it.
//
// The bot itself is the real binary (go run ./cmd/bot run), configured only
// through PULLFIX_* variables, exactly as in production.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pullfix/pullfix/internal/testenv/controlplane"
	"github.com/pullfix/pullfix/internal/testenv/kubeletsim"
)

const (
	badImage = "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1"
	goodRepo = "aws-containers/retail-store-sample-ui"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "run: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context) error {
	root, err := repoRoot()
	if err != nil {
		return err
	}
	// On a workstation the ops endpoints stay on loopback, on a free port,
	// unless the caller chose one.
	if os.Getenv("PULLFIX_LISTEN_ADDR") == "" {
		os.Setenv("PULLFIX_LISTEN_ADDR", "127.0.0.1:0")
	}
	if where, ok := reachableKubeconfig(ctx); ok {
		fmt.Fprintf(os.Stderr, "pullfix: using the cluster of %s\n", where)
		return bot(ctx, root, os.Environ())
	}
	fmt.Fprintln(os.Stderr, "pullfix: no reachable kubeconfig; starting an embedded local cluster with the runbook's broken ui-new")
	return local(ctx, root)
}

// reachableKubeconfig reports whether the default kubeconfig (or
// PULLFIX_KUBECONFIG) names a cluster that answers within a few seconds.
func reachableKubeconfig(ctx context.Context) (string, bool) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if p := os.Getenv("PULLFIX_KUBECONFIG"); p != "" {
		rules.ExplicitPath = p
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return "", false
	}
	cfg.Timeout = 3 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", false
	}
	if _, err := cs.Discovery().ServerVersion(); err != nil {
		fmt.Fprintf(os.Stderr, "pullfix: kubeconfig cluster %s does not answer (%v)\n", cfg.Host, err)
		return "", false
	}
	return cfg.Host, true
}

func local(ctx context.Context, root string) error {
	if _, err := controlplane.EnsureBinaries(ctx, root); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	start := time.Now()
	cp, err := controlplane.Start(ctx, controlplane.WithLogger(log))
	if err != nil {
		return err
	}
	defer cp.Stop()
	fmt.Fprintf(os.Stderr, "pullfix: control plane up at %s in %s (kubeconfig %s)\n", cp.Host(), time.Since(start).Round(100*time.Millisecond), cp.Kubeconfig())

	// The registry that public.ecr.aws maps to: it holds the real
	// repository name and not the misspelt one, as in the runbook.
	reg := httptest.NewServer(registry.New(registry.Logger(stdlog.New(io.Discard, "", 0))))
	defer reg.Close()
	regHost := strings.TrimPrefix(reg.URL, "http://")
	for _, tag := range []string{"1.2.1", "1.2.0"} {
		if err := pushMultiArch(regHost + "/" + goodRepo + ":" + tag); err != nil {
			return fmt.Errorf("seed registry: %w", err)
		}
	}
	mirrors := map[string]string{"public.ecr.aws": regHost}

	cfg := cp.AdminConfig()
	cfg.QPS, cfg.Burst = 100, 200
	sim, err := kubeletsim.NewForConfig(cfg, kubeletsim.WithMirrors(mirrors), kubeletsim.WithLogger(log),
		kubeletsim.WithBackoff(time.Second, 10*time.Second))
	if err != nil {
		return err
	}
	if err := sim.Start(ctx); err != nil {
		return err
	}
	defer sim.Stop()
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := createUINew(ctx, cs); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "pullfix: created deployment/ui-new with %s (the runbook's typo)\n", badImage)
	fmt.Fprintf(os.Stderr, "pullfix: try: KUBECONFIG=%s kubectl get pods,events; or fix it: kubectl set image deployment/ui-new ui=public.ecr.aws/%s:1.2.1\n", cp.Kubeconfig(), goodRepo)

	env := append(os.Environ(),
		"PULLFIX_KUBECONFIG="+cp.Kubeconfig(),
		"PULLFIX_CLUSTER_NAME=local",
		"PULLFIX_REGISTRY_MIRRORS=public.ecr.aws="+regHost,
	)
	return bot(ctx, root, env)
}

// bot runs the real bot binary in the foreground until ctx ends.
func bot(ctx context.Context, root string, env []string) error {
	cmd := exec.CommandContext(ctx, "go", "run", "./cmd/bot", "run")
	cmd.Dir = root
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func createUINew(ctx context.Context, cs kubernetes.Interface) error {
	// The ServiceAccount admission plugin refuses pods until "default" exists.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the default ServiceAccount never appeared")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	one := int32(1)
	labels := map[string]string{"app": "ui-new"}
	_, err := cs.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "ui-new"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "ui", Image: badImage}}},
			},
		},
	}, metav1.CreateOptions{})
	return err
}

// pushMultiArch pushes a small linux/amd64 + linux/arm64 index to ref.
func pushMultiArch(ref string) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	var idx v1.ImageIndex = empty.Index
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := random.Image(256, 1)
		if err != nil {
			return err
		}
		cf, err := img.ConfigFile()
		if err != nil {
			return err
		}
		cf = cf.DeepCopy()
		cf.OS, cf.Architecture = "linux", arch
		if img, err = mutate.ConfigFile(img, cf); err != nil {
			return err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	return remote.WriteIndex(r, idx)
}

// repoRoot finds the module root from the working directory.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "hack", "build-k8s.sh")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("run from inside the pullfix repository (no hack/build-k8s.sh above %s)", dir)
		}
	}
}
