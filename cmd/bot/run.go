package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/admission"
	"github.com/pullfix/pullfix/internal/approval"
	"github.com/pullfix/pullfix/internal/bridge"
	"github.com/pullfix/pullfix/internal/console"
	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/gitops"
	"github.com/pullfix/pullfix/internal/kubeclient"
	"github.com/pullfix/pullfix/internal/ops"
	"github.com/pullfix/pullfix/internal/slackapp"
	"github.com/pullfix/pullfix/internal/watch"
	"github.com/pullfix/pullfix/internal/watch/fix"
	"github.com/pullfix/pullfix/internal/watch/leader"
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
	// Issue #17: the patcher writes only what GitOps ownership and the approver's RBAC allow.
	guard := gitops.NewGuard(env.cs, env.dyn, gitops.GuardConfig{AllowTemporary: cfg.GitOpsTemporaryPatch, ArgoNamespace: cfg.ArgoCDNamespace}, log)
	rbac, _ := approval.NewBinding(env.cs, cfg.SlackRBACMapping) // loadConfig checked it
	patcher, err := fix.NewPatcher(env.cs, append([]fix.PatcherOption{fix.WithPatcherLogger(log), fix.WithRolloutDeadline(cfg.RolloutDeadline), guard.PatcherOption()}, rbac.PatcherOptions()...)...)
	if err != nil {
		fmt.Fprintf(stderr, "bot: PULLFIX_ROLLOUT_DEADLINE: %v\n", err)
		return 2
	}
	opts := []watch.Option{
		watch.WithCluster(cfg.Cluster), watch.WithNamespaces(cfg.Namespaces...), watch.WithLogger(log), watch.WithMetrics(metrics),
		watch.WithDiagnosisBudget(cfg.DiagnosisBudget), watch.WithPatcher(patcher),
		// Diagnoses wait on registries (a black hole holds one for the whole
		// probe timeout), posts on Slack's pace: with the default 4 workers a
		// storm queues behind a few slow ones (hack/bench); 16 cost nothing.
		watch.WithWorkers(16),
	}
	if cfg.PodNamespace != "" {
		opts = append(opts, watch.WithStateConfigMap(cfg.PodNamespace, cfg.StateConfigMap))
	}
	if cfg.LeaderElection {
		opts = append(opts, watch.WithLeaderElection(leader.Config{Namespace: cfg.PodNamespace, Name: cfg.LeaseName, Logger: log}))
	}
	// The bridge gets the watcher once it exists, before Run (so before any call).
	b := bridge.New(cfg.Cluster, log, guard, rbac)
	var notifier watch.Notifier = b
	extra, mode := map[string]http.Handler{}, "console"
	if cfg.BotToken == "" {
		// People read text on a terminal; a pipe or a log collector gets JSON lines.
		notifier = console.New(stdout, console.IsTerminal(stdout))
	} else {
		if cfg.PullSecretProbing {
			opts = append(opts, watch.WithPullSecretSearch(env.prober))
		}
		app, err := newSlackApp(ctx, cfg, b, rbac, log, slackapp.NewPrometheusMetrics(reg))
		if err != nil {
			fmt.Fprintf(stderr, "bot: %v\n", err)
			return 1
		}
		defer app.Close()
		b.SetApp(app)
		rbac.SetEmailLookup(app.UserEmail)
		if mode = "slack http mode at " + cfg.HTTPPath; cfg.AppToken != "" {
			mode = "slack socket mode"
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
		ops.AddPprof(extra)
	}
	// The webhook (if PULLFIX_ADMISSION) runs on every replica; a heads-up joins its incident's thread.
	wh, err := admission.Start(ctx, admission.Config{Settings: cfg.Settings, Client: env.cs, Prober: env.prober, Diagnoser: env.diag,
		App: b.App(), Cluster: cfg.Cluster, Namespace: cfg.PodNamespace, ReadSecrets: cfg.PullSecretProbing, Registerer: reg, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "bot: admission webhook: %v\n", err)
		return 1
	}
	defer wh.Stop()
	opts = append(opts, watch.WithOnOpened(wh.ThreadHeadsUp))
	w, err := watch.New(env.cs, env.diag, notifier, opts...)
	if err != nil {
		fmt.Fprintf(stderr, "bot: %v\n", err)
		return 2
	}
	b.SetWatcher(w)
	addr, err := ops.Serve(ctx, cfg.ListenAddr, reg, w.HasSynced, extra, log)
	if err != nil {
		fmt.Fprintf(stderr, "bot: PULLFIX_LISTEN_ADDR %s: %v\n", cfg.ListenAddr, err)
		return 1
	}
	log.Info("pullfix starting", "version", version, "cluster", cfg.Cluster, "kubeconfig", env.where, "ops", addr, "report", mode)
	if err := w.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "bot: %v\n", err)
		return 1
	}
	return 0
}

// newSlackApp connects to Slack and builds the app around b.
func newSlackApp(ctx context.Context, cfg Config, b *bridge.Bridge, rbac *approval.Binding, log *slog.Logger, m slackapp.Metrics) (*slackapp.App, error) {
	api, err := slackapp.Dial(ctx, cfg.BotToken, cfg.AppToken, cfg.SlackAPIURL, log)
	if err != nil {
		return nil, fmt.Errorf("PULLFIX_SLACK_BOT_TOKEN: %w", err)
	}
	policy, err := slackapp.ParseApprovers(cfg.Approvers)
	if err != nil {
		return nil, fmt.Errorf("PULLFIX_SLACK_APPROVERS: %w", err)
	}
	channels, err := slackapp.ParseChannels(cfg.Channels)
	if err != nil {
		return nil, fmt.Errorf("PULLFIX_SLACK_CHANNELS: %w", err)
	}
	approvers := slackapp.NewApprovers(policy, slackapp.SlackGroupMembers{API: api}, slackapp.WithOpenActions(cfg.OpenActions))
	return slackapp.New(api, slackapp.Config{
		Cluster: cfg.Cluster, DefaultChannel: cfg.Channel, Channels: channels, SigningSecret: cfg.SigningSecret,
	}, slackapp.Deps{Incidents: b, Fixer: b, OnDemand: b, Approvers: approvers, Authorizer: rbac},
		slackapp.WithLogger(log), slackapp.WithQueueOptions(slackapp.WithMetrics(m), slackapp.WithPostBurst(3)),
		slackapp.WithStorm(cfg.StormAt, slackapp.DefaultStormWindow, slackapp.DefaultStormJoin)), nil
}

// runEnv is what every cluster-facing subcommand needs.
type runEnv struct {
	cfg    Config
	log    *slog.Logger
	cs     kubernetes.Interface
	dyn    dynamic.Interface // GitOps owners (Argo CD Applications, Flux objects)
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
	log := ops.NewLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	ops.SetMemoryLimit(log)
	cs, dyn, where, err := kubeclient.NewWithDynamic(cfg.Kubeconfig, "pullfix/"+version)
	if err != nil {
		fmt.Fprintf(stderr, "bot: %v\n", err)
		return runEnv{}, 1
	}
	p, d, err := newDiagnoser(cfg, log)
	if err != nil {
		fmt.Fprintf(stderr, "bot: %v\n", err)
		return runEnv{}, 2
	}
	return runEnv{cfg: cfg, log: log, cs: cs, dyn: dyn, where: where, prober: p, diag: d}, 0
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
