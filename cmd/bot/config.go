package main

import (
	"fmt"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/pullfix/pullfix/internal/admission"
	"github.com/pullfix/pullfix/internal/approval"
)

// Config is read from the environment (prefix PULLFIX_). Secrets come only
// from the environment; the Helm chart mounts them from a Secret. Each field's
// `desc` is what `bot run --help` and the README print.
type Config struct {
	// Slack. With no bot token the bot prints to the console.
	BotToken      string `envconfig:"SLACK_BOT_TOKEN" desc:"Slack bot token (xoxb-…); unset: report on the console"`
	AppToken      string `envconfig:"SLACK_APP_TOKEN" desc:"Slack app-level token (xapp-…) for Socket Mode"`
	SigningSecret string `envconfig:"SLACK_SIGNING_SECRET" desc:"Slack signing secret, for HTTP mode"`
	Channel       string `envconfig:"SLACK_CHANNEL" default:"#pullfix" desc:"default channel for notifications"`
	Channels      string `envconfig:"SLACK_CHANNELS" desc:"channel per namespace: team-a=C0123,team-b=#team-b"`
	Approvers     string `envconfig:"SLACK_APPROVERS" desc:"who may approve fixes: U123,S456 (users, user groups); per namespace after ';': U123;team-a=U789,S999"`
	OpenActions   bool   `envconfig:"SLACK_OPEN_ACTIONS" default:"true" desc:"anyone in the channel may Re-check, Snooze and Dismiss"`
	HTTPPath      string `envconfig:"SLACK_HTTP_PATH" default:"/slack/events" desc:"HTTP mode: the path Slack posts commands and interactions to, on PULLFIX_LISTEN_ADDR"`
	SlackAPIURL   string `envconfig:"SLACK_API_URL" desc:"Slack Web API base URL (default Slack's; tests and the demo point it at the local emulator)"`

	// Cluster.
	Cluster    string   `envconfig:"CLUSTER_NAME" default:"default" desc:"cluster name shown in every message"`
	Namespaces []string `envconfig:"NAMESPACES" desc:"comma-separated namespaces to watch (default: all)"`
	Kubeconfig string   `envconfig:"KUBECONFIG" desc:"kubeconfig path (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)"`

	// High availability: one leader among the replicas; state in a ConfigMap.
	LeaderElection bool   `envconfig:"LEADER_ELECTION" default:"false" desc:"elect one leader on a Lease (the chart turns it on)"`
	LeaseName      string `envconfig:"LEASE_NAME" default:"pullfix" desc:"name of the Lease in the bot's namespace"`
	StateConfigMap string `envconfig:"STATE_CONFIGMAP" default:"pullfix-state" desc:"ConfigMap in the bot's namespace that keeps incidents and their messages across restarts"`
	PodNamespace   string `envconfig:"POD_NAMESPACE" desc:"the bot's own namespace (the chart sets it from the downward API); unset: no state ConfigMap, no leader election"`

	// Registry probing.
	RegistryMirrors   string        `envconfig:"REGISTRY_MIRRORS" desc:"registry mirrors the nodes use, e.g. docker.io=mirror.local:5000,quay.io=…"`
	ProbeTimeout      time.Duration `envconfig:"PROBE_TIMEOUT" default:"5s" desc:"hard timeout of each registry request"`
	DiagnosisBudget   time.Duration `envconfig:"DIAGNOSIS_BUDGET" default:"500ms" desc:"how long the first message waits for the cluster reads and the registry probe; a slower registry gets the kubelet's words first, then an edit of the same message"`
	RolloutDeadline   time.Duration `envconfig:"ROLLOUT_DEADLINE" default:"5m" desc:"how long a fix's rollout is followed before the message says what still fails"`
	PullSecretProbing bool          `envconfig:"PULL_SECRET_PROBING" default:"true" desc:"look for Secrets in the namespace that hold working pull credentials (needs get on secrets)"`

	// GitOps and RBAC-bound approvals (issue #17: internal/gitops, internal/approval).
	SlackRBACMapping     string `envconfig:"SLACK_RBAC_MAPPING" desc:"bind approvers to Kubernetes RBAC: SLACK_USER=K8S_USER[|GROUP…],…, '*={email}[|GROUP…]' maps the rest by Slack e-mail; a SubjectAccessReview checks each fix (unset: off)"`
	GitOpsTemporaryPatch bool   `envconfig:"GITOPS_TEMPORARY_PATCH" default:"false" desc:"offer a temporary live patch (marked temporary) for a GitOps-owned workload; with Argo CD only when self-heal is off"`
	ArgoCDNamespace      string `envconfig:"ARGOCD_NAMESPACE" default:"argocd" desc:"where Argo CD Applications live when the tracking annotation names no namespace"`

	admission.Settings // the optional webhook's PULLFIX_ADMISSION_* (the chart's admission.enabled)
	// Process.
	ListenAddr string `envconfig:"LISTEN_ADDR" default:":8080" desc:"address of /healthz, /readyz and /metrics"`
	LogLevel   string `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat  string `envconfig:"LOG_FORMAT" default:"text" desc:"text or json"`
	Pprof      bool   `envconfig:"PPROF" default:"false" desc:"also serve Go's profiles at /debug/pprof/ on PULLFIX_LISTEN_ADDR (for a profile of a storm; keep off where that address is reachable by others)"`
}

// loadConfig reads PULLFIX_* variables and rejects bad values with a clear
// message naming the variable.
func loadConfig() (Config, error) {
	var c Config
	if err := envconfig.Process("pullfix", &c); err != nil {
		return Config{}, fmt.Errorf("configuration: %w", err)
	}
	if c.BotToken != "" && c.AppToken == "" && c.SigningSecret == "" {
		return Config{}, fmt.Errorf("configuration: PULLFIX_SLACK_BOT_TOKEN is set but neither PULLFIX_SLACK_APP_TOKEN (Socket Mode) nor PULLFIX_SLACK_SIGNING_SECRET (HTTP mode) is")
	}
	if c.LeaderElection && c.PodNamespace == "" {
		return Config{}, fmt.Errorf("configuration: PULLFIX_LEADER_ELECTION needs PULLFIX_POD_NAMESPACE (the namespace of the Lease)")
	}
	if err := c.Settings.Check(c.PodNamespace); err != nil {
		return Config{}, err
	}
	if c.ProbeTimeout <= 0 {
		return Config{}, fmt.Errorf("configuration: PULLFIX_PROBE_TIMEOUT must be positive, got %s", c.ProbeTimeout)
	}
	if _, err := approval.Parse(c.SlackRBACMapping); err != nil {
		return Config{}, fmt.Errorf("configuration: PULLFIX_SLACK_RBAC_MAPPING: %w", err)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return Config{}, fmt.Errorf("configuration: PULLFIX_LOG_FORMAT must be text or json, got %q", c.LogFormat)
	}
	return c, nil
}
