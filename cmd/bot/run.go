package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/watch"
)

func init() {
	subcommands["run"] = runWatch
	subcommands["diagnose"] = runDiagnose
}

// runWatch is `bot run`: watch the cluster and report each broken workload
// once. Without Slack tokens it reports on the console.
func runWatch(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "bot run takes no arguments; configure it with PULLFIX_* variables (see README)\n")
		return 2
	}
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	cs, where, err := kubeClient(cfg.Kubeconfig)
	if err != nil {
		fmt.Fprintf(stderr, "bot: %v\n", err)
		return 1
	}
	d, err := newDiagnoser(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "bot: %v\n", err)
		return 2
	}
	if cfg.BotToken != "" {
		log.Warn("Slack tokens are set but this build reports on the console only")
	}
	// People read text on a terminal; a pipe or a log collector gets JSON lines.
	human := false
	if f, ok := stdout.(*os.File); ok {
		human = readerIsTerminal(f)
	}
	n := newConsole(stdout, human)
	w := watch.New(cs, d, n,
		watch.WithCluster(cfg.Cluster), watch.WithNamespaces(cfg.Namespaces...), watch.WithLogger(log))
	reg := prometheus.NewRegistry()
	addr, err := serveOps(ctx, cfg.ListenAddr, reg, probes{ready: w.HasSynced}, log)
	if err != nil {
		fmt.Fprintf(stderr, "bot: PULLFIX_LISTEN_ADDR %s: %v\n", cfg.ListenAddr, err)
		return 1
	}
	log.Info("pullfix starting", "version", version, "cluster", cfg.Cluster, "kubeconfig", where, "ops", addr)
	if err := w.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "bot: %v\n", err)
		return 1
	}
	return 0
}

// kubeClient connects the way kubectl would: in-cluster when running in a
// pod, else the given path, $KUBECONFIG, ~/.kube/config. It says which.
func kubeClient(path string) (kubernetes.Interface, string, error) {
	var cfg *rest.Config
	var where string
	if path == "" {
		if c, err := rest.InClusterConfig(); err == nil {
			cfg, where = c, "in-cluster"
		}
	}
	if cfg == nil {
		rules := clientcmd.NewDefaultClientConfigLoadingRules()
		if path != "" {
			rules.ExplicitPath = path
		}
		c, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
		if err != nil {
			return nil, "", fmt.Errorf("no Kubernetes connection: %w (set PULLFIX_KUBECONFIG or KUBECONFIG, or run `make run` for the local demo cluster)", err)
		}
		cfg, where = c, rules.GetDefaultFilename()
		if path != "" {
			where = path
		}
	}
	cfg.UserAgent = "pullfix/" + version
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes client: %w", err)
	}
	return cs, where, nil
}

// newDiagnoser builds the registry prober and diagnoser from configuration.
func newDiagnoser(cfg Config, log *slog.Logger) (*diagnose.Diagnoser, error) {
	opts := []diagnose.Option{diagnose.WithTimeout(cfg.ProbeTimeout), diagnose.WithLogger(log), diagnose.WithUserAgent("pullfix/" + version)}
	if cfg.RegistryMirrors != "" {
		m, err := diagnose.ParseMirrors(cfg.RegistryMirrors)
		if err != nil {
			return nil, fmt.Errorf("PULLFIX_REGISTRY_MIRRORS: %w", err)
		}
		opts = append(opts, diagnose.WithMirrors(m))
	}
	p, err := diagnose.NewProber(opts...)
	if err != nil {
		return nil, err
	}
	return diagnose.NewDiagnoser(p, diagnose.WithDiagnoserLogger(log)), nil
}
