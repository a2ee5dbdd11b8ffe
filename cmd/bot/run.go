package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/slack-go/slack"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/slackapp"
	"github.com/pullfix/pullfix/internal/watch"
)

func init() {
	subcommands["run"] = runWatch
	subcommands["diagnose"] = runDiagnose
}

// runWatch is `bot run`: watch the cluster and report each broken workload
// once: in Slack when a bot token is set, on the console otherwise.
func runWatch(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "bot run takes no arguments; configure it with PULLFIX_* variables (see README)\n")
		return 2
	}
	env, code := setup(stderr)
	if code != 0 {
		return code
	}
	cfg, log := env.cfg, env.log
	reg := prometheus.NewRegistry()
	metrics := watch.NewMetrics(reg)
	opts := []watch.Option{
		watch.WithCluster(cfg.Cluster), watch.WithNamespaces(cfg.Namespaces...), watch.WithLogger(log), watch.WithMetrics(metrics),
		watch.WithDiagnosisBudget(cfg.DiagnosisBudget),
		// Diagnoses wait on registries (a black hole holds one for the whole
		// probe timeout) and posts wait on Slack's per-channel pace: with
		// watch's default of 4 workers, a storm queues behind a few slow
		// ones (hack/bench). Workers are goroutines; 16 cost nothing.
		watch.WithWorkers(16),
	}
	if cfg.PodNamespace != "" {
		opts = append(opts, watch.WithStateConfigMap(cfg.PodNamespace, cfg.StateConfigMap))
	}
	if cfg.LeaderElection {
		opts = append(opts, watch.WithLeaderElection(watch.LeaderConfig{Namespace: cfg.PodNamespace, Name: cfg.LeaseName, Logger: log}))
	}
	patcher := watch.NewPatcher(env.cs, watch.WithPatcherLogger(log), watch.WithRolloutDeadline(cfg.RolloutDeadline))

	var notifier watch.Notifier
	var b *bridge
	extra := map[string]http.Handler{}
	if cfg.BotToken == "" {
		// People read text on a terminal; a pipe or a log collector gets JSON lines.
		human := false
		if f, ok := stdout.(*os.File); ok {
			human = readerIsTerminal(f)
		}
		notifier = newConsole(stdout, human)
	} else {
		b = newBridge(nil, patcher, env.cs, env.diag, env.prober, cfg, log)
		b.metrics = metrics
		app, err := newSlackApp(ctx, cfg, b, log, newSlackMetrics(reg))
		if err != nil {
			fmt.Fprintf(stderr, "bot: %v\n", err)
			return 1
		}
		defer app.Close()
		b.app = app
		notifier = b
		opts = append(opts, watch.WithFixResume(b.resumeFixes))
		if cfg.AppToken != "" {
			// Slack hands each Socket Mode event to one open connection, so
			// only the leader holds one: it moves with leadership.
			opts = append(opts, watch.WithOnLeading(func(ctx context.Context) {
				if err := app.Run(ctx); err != nil {
					log.Error("Slack Socket Mode stopped", "err", err)
				}
			}))
		} else {
			extra[cfg.HTTPPath] = app.Handler()
		}
	}
	if cfg.Pprof {
		addPprof(extra)
	}
	w := watch.New(env.cs, env.diag, notifier, opts...)
	if b != nil {
		b.w = w
	}
	addr, err := serveOps(ctx, cfg.ListenAddr, reg, probes{ready: w.HasSynced}, extra, log)
	if err != nil {
		fmt.Fprintf(stderr, "bot: PULLFIX_LISTEN_ADDR %s: %v\n", cfg.ListenAddr, err)
		return 1
	}
	mode := "console"
	switch {
	case cfg.BotToken != "" && cfg.AppToken != "":
		mode = "slack socket mode"
	case cfg.BotToken != "":
		mode = "slack http mode at " + cfg.HTTPPath
	}
	log.Info("pullfix starting", "version", version, "cluster", cfg.Cluster, "kubeconfig", env.where, "ops", addr, "report", mode)
	if err := w.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "bot: %v\n", err)
		return 1
	}
	return 0
}

// newSlackApp connects to Slack (checking the bot token with auth.test, so
// a bad token is a clear start-up error) and builds the app around b.
func newSlackApp(ctx context.Context, cfg Config, b *bridge, log *slog.Logger, m slackapp.Metrics) (*slackapp.App, error) {
	opts := []slack.Option{}
	if cfg.AppToken != "" {
		opts = append(opts, slack.OptionAppLevelToken(cfg.AppToken))
	}
	if cfg.SlackAPIURL != "" {
		opts = append(opts, slack.OptionAPIURL(cfg.SlackAPIURL))
	}
	api := slack.New(cfg.BotToken, opts...)
	who, err := api.AuthTestContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("Slack refused PULLFIX_SLACK_BOT_TOKEN (auth.test): %v", err)
	}
	log.Info("connected to Slack", "team", who.Team, "bot", who.User)
	policy, err := slackapp.ParseApprovers(cfg.Approvers)
	if err != nil {
		return nil, fmt.Errorf("PULLFIX_SLACK_APPROVERS: %w", err)
	}
	channels, err := parsePairs(cfg.Channels)
	if err != nil {
		return nil, fmt.Errorf("PULLFIX_SLACK_CHANNELS: %w", err)
	}
	approvers := slackapp.NewApprovers(policy, slackapp.SlackGroupMembers{API: api}, slackapp.WithOpenActions(cfg.OpenActions))
	return slackapp.New(api, slackapp.Config{
		Cluster: cfg.Cluster, DefaultChannel: cfg.Channel, Channels: channels, SigningSecret: cfg.SigningSecret,
	}, slackapp.Deps{Incidents: b, Fixer: b, OnDemand: b, Approvers: approvers},
		slackapp.WithLogger(log), slackapp.WithQueueOptions(slackapp.WithMetrics(m), slackapp.WithPostBurst(3))), nil
}

// parsePairs parses "a=x,b=y" (namespace=channel).
func parsePairs(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("%q is not NAMESPACE=CHANNEL", part)
		}
		out[k] = v
	}
	return out, nil
}

// runEnv is what every cluster-facing subcommand needs.
type runEnv struct {
	cfg    Config
	log    *slog.Logger
	cs     kubernetes.Interface
	where  string
	prober *diagnose.Prober
	diag   *diagnose.Diagnoser
}

// setup reads the configuration, connects to the cluster and builds the
// diagnoser; on failure it has said why on stderr and returns the exit code.
func setup(stderr io.Writer) (runEnv, int) {
	cfg, err := loadConfig()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return runEnv{}, 2
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	// client-go reports through klog (leader election, a reflector's
	// forbidden or failed watch): send that through the same logger, so
	// the log is one format (JSON lines for collectors) and RBAC denials
	// are not lost on a side channel.
	klog.SetSlogLogger(log)
	cs, where, err := kubeClient(cfg.Kubeconfig)
	if err != nil {
		fmt.Fprintf(stderr, "bot: %v\n", err)
		return runEnv{}, 1
	}
	p, d, err := newDiagnoser(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "bot: %v\n", err)
		return runEnv{}, 2
	}
	return runEnv{cfg: cfg, log: log, cs: cs, where: where, prober: p, diag: d}, 0
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
	if cfg.QPS == 0 && cfg.Burst == 0 {
		// client-go's default (5 QPS, burst 10) turns a storm of 50 new
		// incidents — an owner GET, a Deployment GET and a ReplicaSet list
		// each — into tens of seconds of client-side throttling before the
		// first post (hack/bench). Reads happen only when something fails.
		cfg.QPS, cfg.Burst = 50, 100
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes client: %w", err)
	}
	return cs, where, nil
}

// newDiagnoser builds the registry prober and diagnoser from configuration.
func newDiagnoser(cfg Config, log *slog.Logger) (*diagnose.Prober, *diagnose.Diagnoser, error) {
	opts := []diagnose.Option{diagnose.WithTimeout(cfg.ProbeTimeout), diagnose.WithLogger(log), diagnose.WithUserAgent("pullfix/" + version)}
	if cfg.RegistryMirrors != "" {
		m, err := diagnose.ParseMirrors(cfg.RegistryMirrors)
		if err != nil {
			return nil, nil, fmt.Errorf("PULLFIX_REGISTRY_MIRRORS: %w", err)
		}
		opts = append(opts, diagnose.WithMirrors(m))
	}
	p, err := diagnose.NewProber(opts...)
	if err != nil {
		return nil, nil, err
	}
	return p, diagnose.NewDiagnoser(p, diagnose.WithDiagnoserLogger(log)), nil
}
