// Command bench measures pullfix at scale on the real test control plane
// (etcd, kube-apiserver, kube-controller-manager), with the kubelet
// simulator driving every pod, loopback registries and the Slack emulator:
//
//	go run ./hack/bench --pods 10000 --failing 1000 --workloads 50 --json
//
// It first brings up N−K running pods (so the bot starts on a cluster of
// that size), then starts the real bot binary as its own process, then
// creates M Deployments whose K pods cannot pull their images for a mix
// of causes and registries. It prints a table and, with --json, one JSON
// object last: the bot's peak memory, how long after the kubelet's first
// failing status write each workload was reported in Slack, how many
// messages, Slack calls and registry requests that took. Targets (design
// §9): rss_mib ≤ 64, detect_p99_ms ≤ 1000, slack_root_messages ≤
// workloads, registry_requests ≤ 4 per unique image.
//
// Performance is checked here, never by timed assertions in tests.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&cfg.Pods, "pods", cfg.Pods, "pods in the cluster, failing ones included")
	fs.IntVar(&cfg.Failing, "failing", cfg.Failing, "pods that cannot pull their image")
	fs.IntVar(&cfg.Workloads, "workloads", cfg.Workloads, "Deployments the failing pods belong to")
	fs.IntVar(&cfg.Namespaces, "namespaces", cfg.Namespaces, "namespaces the workloads are spread over")
	fs.IntVar(&cfg.Channels, "channels", cfg.Channels, "Slack channels the namespaces report to (PULLFIX_SLACK_CHANNELS)")
	fs.IntVar(&cfg.PodsPerNode, "pods-per-node", cfg.PodsPerNode, "pods per simulated node")
	fs.DurationVar(&cfg.Backoff, "backoff", cfg.Backoff, "the simulated kubelets' initial image back-off (the cap is 30 times it): 10s is the kubelet's own pace, 200ms the test suites' 50× compression")
	fs.DurationVar(&cfg.Stagger, "stagger", cfg.Stagger, "pause between creating two failing Deployments (0: all at once)")
	fs.DurationVar(&cfg.Timeout, "timeout", cfg.Timeout, "give up after this long")
	fs.BoolVar(&cfg.JSON, "json", false, "print the result as one JSON object last")
	fs.BoolVar(&cfg.Verbose, "v", false, "log progress of the simulator and control plane")
	fs.StringVar(&cfg.Kubewatch, "kubewatch", "", `also run robusta-dev/kubewatch beside the bot under the same storm and print both rows: its binary, or "build" (hack/build-kubewatch.sh)`)
	fs.StringVar(&cfg.ProfileDir, "profile", "", "write the bot's CPU profile of the storm, its heap, mutex, block and goroutine profiles and its debug log to this directory")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if !podsPerNodeSet(fs) {
		// At most 100 simulated nodes: each renews its Lease every 10 s
		// and holds a watch; a thousand of them would be the API server's
		// load, not the bot's.
		cfg.PodsPerNode = max(cfg.PodsPerNode, (cfg.Pods+99)/100)
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := run(ctx, cfg, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		os.Exit(1)
	}
	res.table(os.Stdout)
	if cfg.JSON {
		enc := json.NewEncoder(os.Stdout)
		if err := enc.Encode(res); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %v\n", err)
			os.Exit(1)
		}
	}
	if miss := res.missed(); len(miss) > 0 {
		fmt.Fprintf(os.Stderr, "bench: targets missed: %v\n", miss)
	}
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
			return "", errors.New("run from inside the pullfix repository (no hack/build-k8s.sh above " + dir + ")")
		}
	}
}

// progress prints a line of progress to w.
func progress(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "bench: "+format+"\n", args...)
}

// podsPerNodeSet reports whether --pods-per-node was given.
func podsPerNodeSet(fs *flag.FlagSet) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "pods-per-node" })
	return set
}
