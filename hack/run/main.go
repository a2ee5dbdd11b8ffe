// Command run is the README's "run" command (`make run`): it runs pullfix
// against the current kubeconfig's cluster when one answers, and otherwise
// starts an embedded local cluster on loopback — a real etcd,
// kube-apiserver and kube-controller-manager, a kubelet simulator, and an
// OCI registry standing in for public.ecr.aws — with the runbook's broken
// Deployment ui-new, then runs the bot against it.
//
// On the embedded cluster without Slack tokens it also starts the Slack
// emulator (internal/testenv/slackemu) with an approver "alice" and a
// channel #pullfix, and serves that channel as a web page on 127.0.0.1:
// the bot's Block Kit message appears there live and its buttons work, as
// alice. With PULLFIX_SLACK_BOT_TOKEN set, the bot talks to real Slack
// instead; with a reachable kubeconfig, it watches that cluster (console,
// or Slack by the tokens).
//
// The bot itself is the real binary (built from ./cmd/bot and run as
// `bot run`), configured only through PULLFIX_* variables, exactly as in
// production.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pullfix/pullfix/internal/testenv/controlplane"
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
	began := time.Now()
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
		return bot(ctx, root, os.Environ(), os.Stdout, os.Stderr)
	}
	fmt.Fprintln(os.Stderr, "pullfix: no reachable kubeconfig; starting an embedded local cluster with the runbook's broken ui-new")
	return local(ctx, root, began)
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

// local runs the embedded cluster (and, without Slack tokens, the emulated
// Slack channel and its page) until ctx ends.
func local(ctx context.Context, root string, began time.Time) error {
	if _, err := controlplane.EnsureBinaries(ctx, root); err != nil {
		return err
	}
	realSlack := os.Getenv("PULLFIX_SLACK_BOT_TOKEN") != ""
	addr := os.Getenv("PULLFIX_DEMO_ADDR")
	if addr == "" {
		addr = defaultPageAddr
	}
	l, err := startLocal(ctx, localOptions{emulateSlack: !realSlack, pageAddr: addr, out: os.Stderr})
	if err != nil {
		return err
	}
	defer l.Close()
	if l.PageURL != "" {
		banner(os.Stderr, "open "+l.PageURL+" — the emulated Slack channel #pullfix (you are alice, an approver)")
		go l.announceFirstPost(ctx, os.Stderr, began)
	} else {
		fmt.Fprintln(os.Stderr, "pullfix: PULLFIX_SLACK_BOT_TOKEN is set: reporting to your Slack workspace")
	}
	return bot(ctx, root, append(os.Environ(), l.Env...), os.Stdout, os.Stderr)
}

// bot builds ./cmd/bot and runs it as `bot run` in the foreground until ctx
// ends, then interrupts it and waits for it to stop. It builds first rather
// than `go run` so the interrupt reaches the bot itself (go run leaves
// SIGINT to the terminal's process group, which a test does not have).
func bot(ctx context.Context, root string, env []string, stdout, stderr io.Writer) error {
	dir, err := os.MkdirTemp("", "pullfix-bot-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "bot")
	start := time.Now()
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/bot")
	build.Dir = root
	build.Stdout, build.Stderr = stderr, stderr
	fmt.Fprintln(stderr, "pullfix: building the bot (go build ./cmd/bot)…")
	if err := build.Run(); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("build ./cmd/bot: %w", err)
	}
	fmt.Fprintf(stderr, "pullfix: bot built in %s; starting `bot run`\n", time.Since(start).Round(100*time.Millisecond))

	cmd := exec.CommandContext(ctx, bin, "run")
	cmd.Dir = root
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		return nil
	}
	return err
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
