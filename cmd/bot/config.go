package main

import (
	"fmt"
	"time"

	"github.com/kelseyhightower/envconfig"
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

	// Cluster.
	Cluster    string   `envconfig:"CLUSTER_NAME" default:"default" desc:"cluster name shown in every message"`
	Namespaces []string `envconfig:"NAMESPACES" desc:"comma-separated namespaces to watch (default: all)"`
	Kubeconfig string   `envconfig:"KUBECONFIG" desc:"kubeconfig path (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)"`

	// Registry probing.
	RegistryMirrors string        `envconfig:"REGISTRY_MIRRORS" desc:"registry mirrors the nodes use, e.g. docker.io=mirror.local:5000,quay.io=…"`
	ProbeTimeout    time.Duration `envconfig:"PROBE_TIMEOUT" default:"5s" desc:"hard timeout of each registry request"`

	// Process.
	ListenAddr string `envconfig:"LISTEN_ADDR" default:":8080" desc:"address of /healthz, /readyz and /metrics"`
	LogLevel   string `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error"`
	LogFormat  string `envconfig:"LOG_FORMAT" default:"text" desc:"text or json"`
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
	if c.ProbeTimeout <= 0 {
		return Config{}, fmt.Errorf("configuration: PULLFIX_PROBE_TIMEOUT must be positive, got %s", c.ProbeTimeout)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return Config{}, fmt.Errorf("configuration: PULLFIX_LOG_FORMAT must be text or json, got %q", c.LogFormat)
	}
	return c, nil
}
