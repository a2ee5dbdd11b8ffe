package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"

	"github.com/pullfix/pullfix/internal/testenv/controlplane"
	"github.com/pullfix/pullfix/internal/testenv/kubeletsim"
	"github.com/pullfix/pullfix/internal/testenv/registries"
	"github.com/pullfix/pullfix/internal/testenv/slackemu"
)

// config is what a run measures.
type config struct {
	Pods, Failing, Workloads int
	Namespaces               int
	Channels                 int
	PodsPerNode              int
	// PerDeploy is the replica count of each healthy Deployment.
	PerDeploy int
	// Backoff is the simulated kubelets' initial image back-off; the cap
	// is 30 times it, as the kubelet's 10 s and 300 s.
	Backoff time.Duration
	Stagger time.Duration
	Timeout time.Duration
	JSON    bool
	Verbose bool
	// ProfileDir, when set, receives the bot's profiles and debug log.
	ProfileDir string
	// Kubewatch, when set, runs robusta-dev/kubewatch beside the bot under
	// the same storm: a binary's path, or "build" (hack/build-kubewatch.sh).
	Kubewatch string
}

func defaultConfig() config {
	return config{
		Pods: 10000, Failing: 1000, Workloads: 50, Namespaces: 20, Channels: 1, PodsPerNode: 100,
		PerDeploy: 50, Timeout: 20 * time.Minute,
		// The kubelet's own pace: a storm as dense as a real one. The
		// test suites compress it 50× to finish fast, which makes 1,000
		// failing pods retry (pull, event, status write) 50 times as often
		// as real kubelets would.
		Backoff: 10 * time.Second,
	}
}

// large reports a run beyond the 10,000-pod contract, where the test
// environment (not the bot) gets the limits and shortcuts it needs to
// create its pods in minutes: see run.
func (c config) large() bool { return c.Pods > 20000 }

func (c config) validate() error {
	switch {
	case c.Workloads < 1:
		return errors.New("--workloads must be at least 1")
	case c.Failing < c.Workloads:
		return fmt.Errorf("--failing (%d) must be at least --workloads (%d): every failing workload has a pod", c.Failing, c.Workloads)
	case c.Pods < c.Failing:
		return fmt.Errorf("--pods (%d) must be at least --failing (%d)", c.Pods, c.Failing)
	case c.Namespaces < 1 || c.Channels < 1 || c.PodsPerNode < 1 || c.PerDeploy < 1:
		return errors.New("--namespaces, --channels and --pods-per-node must be at least 1")
	case c.Timeout <= 0:
		return errors.New("--timeout must be positive")
	case c.Backoff <= 0:
		return errors.New("--backoff must be positive")
	}
	return nil
}

// Machine describes where the figures were taken.
type Machine struct {
	NProc  int    `json:"nproc"`
	CPU    string `json:"cpu"`
	MemMiB int    `json:"mem_mib"`
	Go     string `json:"go"`
	OS     string `json:"os"`
}

// Result is the benchmark's output; the JSON names are the issue's.
type Result struct {
	Pods        int     `json:"pods"`
	FailingPods int     `json:"failing_pods"`
	Workloads   int     `json:"workloads"`
	Nodes       int     `json:"nodes"`
	RSSMiB      float64 `json:"rss_mib"`
	RSSReadyMiB float64 `json:"rss_ready_mib"`
	RSSEndMiB   float64 `json:"rss_end_mib"`
	DetectP50ms int64   `json:"detect_p50_ms"`
	DetectP99ms int64   `json:"detect_p99_ms"`
	DetectMaxms int64   `json:"detect_max_ms"`
	// SentP50ms and SentP99ms count from when the simulated kubelet sent
	// the write instead: they add the API server's time to accept it.
	SentP50ms         int64   `json:"detect_from_send_p50_ms"`
	SentP99ms         int64   `json:"detect_from_send_p99_ms"`
	Notified          int     `json:"notified_workloads"`
	SlackRootMessages int     `json:"slack_root_messages"`
	SlackCalls        int     `json:"slack_calls"`
	SlackReplies      int     `json:"slack_thread_replies"`
	SlackEdits        int     `json:"slack_edits"`
	Slack429s         int     `json:"slack_429s"`
	Incidents         int     `json:"incidents"`
	UniqueImages      int     `json:"unique_images"`
	RegistryRequests  int     `json:"registry_requests"`
	RequestsPerImage  float64 `json:"registry_requests_per_image"`
	SimRequests       int     `json:"sim_registry_requests"`
	Channels          int     `json:"channels"`
	SetupS            float64 `json:"setup_s"`
	StormS            float64 `json:"storm_s"`
	ElapsedS          float64 `json:"elapsed_s"`
	Machine           Machine `json:"machine"`
	// Kubewatch is the side-by-side row (--kubewatch).
	Kubewatch *KubewatchResult `json:"kubewatch,omitempty"`

	perWorkload []workloadLatency
}

type workloadLatency struct {
	w                      failingWorkload
	latency, fromSent      time.Duration
	sent, failed, notified time.Time
}

// writeTimeline writes when each workload first failed and was notified,
// to lay beside the bot's debug log.
func writeTimeline(file string, ls []workloadLatency) error {
	var b strings.Builder
	b.WriteString("namespace\tworkload\tcause\tfirst_failing_write\tnotified\tlatency_ms\tsent\n")
	for _, l := range ls {
		fmt.Fprintf(&b, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", l.w.Namespace, l.w.Name, l.w.Cause,
			l.failed.Format(time.RFC3339Nano), l.notified.Format(time.RFC3339Nano), l.latency.Milliseconds(), l.sent.Format(time.RFC3339Nano))
	}
	return os.WriteFile(file, []byte(b.String()), 0o644)
}

// missed lists the design §9 targets this result misses.
func (r Result) missed() []string {
	var out []string
	if r.RSSMiB > 64 {
		out = append(out, fmt.Sprintf("rss_mib %.1f > 64", r.RSSMiB))
	}
	if r.DetectP99ms > 1000 {
		out = append(out, fmt.Sprintf("detect_p99_ms %d > 1000", r.DetectP99ms))
	}
	if r.SlackRootMessages > r.Workloads {
		out = append(out, fmt.Sprintf("slack_root_messages %d > %d", r.SlackRootMessages, r.Workloads))
	}
	if r.RequestsPerImage > 4 {
		out = append(out, fmt.Sprintf("registry requests per image %.2f > 4", r.RequestsPerImage))
	}
	return out
}

// table prints the result for people.
func (r Result) table(w io.Writer) {
	fmt.Fprintf(w, "\nper workload (first failing status write accepted → Slack; negative: the kubelet's event got there first):\n")
	for _, l := range r.perWorkload {
		fmt.Fprintf(w, "  %-10s %-22s %-16s %3d pods  %6d ms  %s\n", l.w.Namespace, l.w.Name, l.w.Cause, l.w.Replicas, l.latency.Milliseconds(), l.w.Image)
	}
	row := func(k, v, target string) { fmt.Fprintf(w, "  %-28s %-14s %s\n", k, v, target) }
	fmt.Fprintf(w, "\npullfix benchmark\n")
	row("pods / failing / workloads", fmt.Sprintf("%d / %d / %d", r.Pods, r.FailingPods, r.Workloads), fmt.Sprintf("on %d simulated nodes", r.Nodes))
	row("bot peak RSS", fmt.Sprintf("%.1f MiB", r.RSSMiB), fmt.Sprintf("target ≤ 64 (ready: %.1f, end: %.1f)", r.RSSReadyMiB, r.RSSEndMiB))
	row("detection p50 / p99 / max", fmt.Sprintf("%d / %d / %d ms", r.DetectP50ms, r.DetectP99ms, r.DetectMaxms), "target p99 ≤ 1000; from the status write accepted")
	row("  from the write sent", fmt.Sprintf("%d / %d ms", r.SentP50ms, r.SentP99ms), "p50 / p99, the API server's time to accept it included")
	row("workloads notified", fmt.Sprint(r.Notified), "")
	row("Slack root messages", fmt.Sprint(r.SlackRootMessages), fmt.Sprintf("target ≤ %d", r.Workloads))
	row("Slack calls / 429s", fmt.Sprintf("%d / %d", r.SlackCalls, r.Slack429s), fmt.Sprintf("%d channel(s); %d thread replies, %d edits", r.Channels, r.SlackReplies, r.SlackEdits))
	row("incidents", fmt.Sprint(r.Incidents), "")
	row("bot registry requests", fmt.Sprintf("%d (%.2f/image)", r.RegistryRequests, r.RequestsPerImage), fmt.Sprintf("%d unique images; target ≤ 4/image", r.UniqueImages))
	row("simulator registry requests", fmt.Sprint(r.SimRequests), "")
	row("setup / storm / total", fmt.Sprintf("%.0f / %.0f / %.0f s", r.SetupS, r.StormS, r.ElapsedS), "")
	row("machine", fmt.Sprintf("%d CPUs, %d MiB", r.Machine.NProc, r.Machine.MemMiB), r.Machine.CPU+", "+r.Machine.Go)
	if k := r.Kubewatch; k != nil {
		fmt.Fprintf(w, "\nside by side, the same storm          %-22s %s\n", "pullfix", "kubewatch (robusta-dev)")
		side := func(k, a, b string) { fmt.Fprintf(w, "  %-36s %-22s %s\n", k, a, b) }
		side("peak RSS", fmt.Sprintf("%.1f MiB", r.RSSMiB), fmt.Sprintf("%.1f MiB (ready %.1f)", k.RSSMiB, k.RSSReadyMiB))
		side("workloads named", fmt.Sprintf("%d of %d", r.Notified, r.Workloads), fmt.Sprintf("%d of %d", k.Named, r.Workloads))
		side("first message naming each, p50 / p99", fmt.Sprintf("%d / %d ms", r.DetectP50ms, r.DetectP99ms), fmt.Sprintf("%d / %d ms (of those named)", k.DetectP50ms, k.DetectP99ms))
		side("messages per failing workload", fmt.Sprintf("%.2f", float64(r.SlackRootMessages)/float64(r.Workloads)), fmt.Sprintf("%.2f (%d posts accepted)", k.PostsPerWorkload, k.Posts))
		side("Slack 429s", fmt.Sprint(r.Slack429s), fmt.Sprint(k.Slack429s))
		side("says why it cannot pull", "yes (cause, registry's words, fix)", fmt.Sprint(k.NamesCause))
	}
	fmt.Fprintln(w)
}

// failRecorder keeps the first failing status write of each failing
// workload, from the simulator's hook.
type failRecorder struct {
	mu    sync.Mutex
	names map[string]bool                   // "ns/deployment" of the failing workloads
	first map[string]kubeletsim.StatusWrite // "ns/deployment" → first failing write
}

func (f *failRecorder) hook(w kubeletsim.StatusWrite) {
	if w.Reason != "ErrImagePull" && w.Reason != "ImagePullBackOff" {
		return
	}
	// A Deployment's pod is <deployment>-<pod-template-hash>-<suffix>.
	name := w.Pod.Name
	for range 2 {
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i]
		}
	}
	key := w.Pod.Namespace + "/" + name
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.names[key] {
		return
	}
	if t, ok := f.first[key]; !ok || w.Written.Before(t.Written) {
		f.first[key] = w
	}
}

func (f *failRecorder) get(key string) (kubeletsim.StatusWrite, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.first[key]
	return t, ok
}

// run performs one benchmark; progress goes to logw.
func run(ctx context.Context, cfg config, logw io.Writer) (res Result, err error) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	root, err := repoRoot()
	if err != nil {
		return res, err
	}
	tmp, err := os.MkdirTemp("", "pullfix-bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(tmp)

	progress(logw, "building the bot")
	bin, err := buildBot(ctx, root, tmp)
	if err != nil {
		return res, err
	}
	binDir, err := controlplane.EnsureBinaries(ctx, root)
	if err != nil {
		return res, err
	}
	level := slog.LevelWarn
	if cfg.Verbose {
		level = slog.LevelInfo
	} else {
		// client-go's klog chatter (the simulator's event broadcasters
		// flushing at shutdown) is not the benchmark's output.
		klog.LogToStderr(false)
		klog.SetOutput(io.Discard)
	}
	log := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: level}))
	progress(logw, "starting the control plane")
	// The controllers create 10,000 pods; their client-side default (20
	// QPS) would take minutes. At 100,000 pods they are allowed four times
	// that, with more ReplicaSet workers.
	qps, burst, rsSyncs := 500, 1000, 10
	if cfg.large() {
		qps, burst, rsSyncs = 2000, 4000, 20
	}
	cp, err := controlplane.Start(ctx, controlplane.WithBinDir(binDir), controlplane.WithLogger(log),
		controlplane.WithControllerManagerArgs(fmt.Sprintf("--kube-api-qps=%d", qps), fmt.Sprintf("--kube-api-burst=%d", burst),
			fmt.Sprintf("--concurrent-replicaset-syncs=%d", rsSyncs), "--concurrent-deployment-syncs=10",
			// On two cores the simulated kubelets' Lease renewals queue
			// behind 10,000 pods' writes; the default 50s grace would mark
			// nodes NotReady and their pods unready. The benchmark measures
			// the bot, not node lifecycle.
			"--node-monitor-grace-period=10m"),
		// 100,000 pods: the API server's defaults (400 requests in flight,
		// 200 mutating) turn the pod creation into 429s the controllers
		// back off from, and etcd's 2 GiB quota holds the pods and their
		// status revisions only until the next compaction.
		controlplane.WithAPIServerArgs("--max-requests-inflight=2000", "--max-mutating-requests-inflight=1000"),
		controlplane.WithEtcdArgs("--quota-backend-bytes=8589934592"))
	if err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			cp.WriteLogTails(logw, 20)
		}
		cp.Stop()
	}()

	counts := newCounter()
	ecr := newRegistry(hostECR, counts, false)
	defer ecr.Close()
	hub := newRegistry(hostHub, counts, false)
	defer hub.Close()
	private := newRegistry(hostPrivate, counts, true)
	defer private.Close()
	hole, err := newBlackHoleRegistry(hostHole, counts)
	if err != nil {
		return res, err
	}
	defer hole.Close()
	for _, r := range []*benchRegistry{ecr, hub} {
		for _, repoTag := range seed[r.Name] {
			if err := registries.PushMultiArch(r.admin + "/" + repoTag); err != nil {
				return res, err
			}
		}
	}
	mirrors := map[string]string{}
	for _, r := range []*benchRegistry{ecr, hub, private, hole} {
		mirrors[r.Name] = r.Host
	}

	// Slack: one message per second per channel with short bursts, as
	// Slack allows; beyond that 429 with Retry-After.
	emu, err := slackemu.New(slackemu.WithPostRate(slackemu.DefaultPostRate, slackemu.DefaultPostBurst))
	if err != nil {
		return res, err
	}
	defer emu.Close()
	channel := func(i int) string { return fmt.Sprintf("C0BENCH%03d", i) }
	for i := range cfg.Channels {
		emu.AddChannel(channel(i), fmt.Sprintf("bench-%d", i))
	}

	healthy, bad := plan(cfg.Pods, cfg.Failing, cfg.Workloads, cfg.Namespaces, cfg.PerDeploy)
	rec := &failRecorder{names: map[string]bool{}, first: map[string]kubeletsim.StatusWrite{}}
	for _, w := range bad {
		rec.names[w.Namespace+"/"+w.Name] = true
	}
	nodes := max(1, (cfg.Pods+cfg.PodsPerNode-1)/cfg.PodsPerNode)
	simOpts := []kubeletsim.Option{
		kubeletsim.WithNodeCount("bench", nodes), kubeletsim.WithMirrors(mirrors),
		kubeletsim.WithMaxPods(cfg.PodsPerNode + 10), kubeletsim.WithWorkers(64), kubeletsim.WithLogger(log),
		kubeletsim.WithBackoff(cfg.Backoff, 30*cfg.Backoff),
	}
	if cfg.large() {
		// Half a million Normal events (Scheduled, Pulling, Pulled,
		// Created, Started) for the healthy pods would be most of the API
		// server's work before the storm; the bot never reads them.
		simOpts = append(simOpts, kubeletsim.WithoutNormalEvents())
	}
	sim, err := kubeletsim.NewForConfig(cp.AdminConfig(), simOpts...)
	if err != nil {
		return res, err
	}
	sim.OnStatusWrite(rec.hook)
	progress(logw, "starting %d simulated nodes", nodes)
	if err := sim.Start(ctx); err != nil {
		return res, err
	}
	defer sim.Stop()

	acfg := cp.AdminConfig()
	acfg.QPS, acfg.Burst = 200, 400
	cs, err := kubernetes.NewForConfig(acfg)
	if err != nil {
		return res, err
	}
	if err := createNamespaces(ctx, cs, cfg.Namespaces); err != nil {
		return res, err
	}
	progress(logw, "creating %d running pods in %d Deployments", cfg.Pods-cfg.Failing, len(healthy))
	for _, w := range healthy {
		if err := createDeployment(ctx, cs, w.Namespace, w.Name, w.Image, w.Replicas); err != nil {
			return res, err
		}
	}
	if err := waitReady(ctx, cs, logw, cfg.Pods-cfg.Failing); err != nil {
		return res, err
	}

	env := map[string]string{
		"PULLFIX_KUBECONFIG":       cp.Kubeconfig(),
		"PULLFIX_CLUSTER_NAME":     "bench",
		"PULLFIX_SLACK_BOT_TOKEN":  slackemu.DefaultBotToken,
		"PULLFIX_SLACK_APP_TOKEN":  slackemu.DefaultAppToken,
		"PULLFIX_SLACK_API_URL":    emu.APIURL(),
		"PULLFIX_SLACK_CHANNEL":    channel(0),
		"PULLFIX_REGISTRY_MIRRORS": mirrorsEnv(mirrors),
		"PULLFIX_LOG_LEVEL":        "warn",
	}
	if cfg.ProfileDir != "" {
		if err := os.MkdirAll(cfg.ProfileDir, 0o755); err != nil {
			return res, err
		}
		env["PULLFIX_PPROF"] = "true"
		env["PULLFIX_LOG_LEVEL"] = "debug"
	}
	if cfg.Channels > 1 {
		var pairs []string
		for i := range cfg.Namespaces {
			pairs = append(pairs, fmt.Sprintf("bench-%02d=%s", i, channel(i%cfg.Channels)))
		}
		env["PULLFIX_SLACK_CHANNELS"] = strings.Join(pairs, ",")
	}
	progress(logw, "starting the bot")
	bot, err := startBot(ctx, bin, tmp, env)
	if err != nil {
		return res, err
	}
	defer func() {
		if err != nil {
			fmt.Fprintf(logw, "--- bot log (tail) ---\n%s\n---\n", bot.logTail(30))
		}
		bot.stop()
		if cfg.ProfileDir != "" {
			if cerr := copyFile(bot.logPath, filepath.Join(cfg.ProfileDir, "bot.log")); cerr != nil {
				progress(logw, "keep the bot's log: %v", cerr)
			}
		}
	}()
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		if err, ok := bot.exited(); ok {
			return false, fmt.Errorf("the bot stopped: %v", err)
		}
		code, _, err := bot.get(ctx, "/readyz")
		return err == nil && code == 200 && emu.OpenConnections() > 0, nil
	}); err != nil {
		return res, fmt.Errorf("waiting for the bot to be ready and connected to Slack: %w", err)
	}
	res.RSSReadyMiB, _ = bot.memory()
	var kw *kubewatchRun
	if cfg.Kubewatch != "" {
		bin := cfg.Kubewatch
		if bin == "build" {
			if bin, err = buildKubewatch(ctx, root); err != nil {
				return res, err
			}
		}
		progress(logw, "starting kubewatch beside the bot")
		if kw, err = startKubewatch(ctx, bin, tmp, cp.Kubeconfig()); err != nil {
			return res, err
		}
		defer func() {
			if cfg.ProfileDir != "" {
				_ = copyFile(kw.proc.logPath, filepath.Join(cfg.ProfileDir, "kubewatch.log"))
			}
			kw.stop()
		}()
		res.Kubewatch = &KubewatchResult{}
		_, res.Kubewatch.RSSReadyMiB = kw.proc.memory()
	}
	setupDone := time.Now()
	botBefore, _, _ := counts.counts()
	progress(logw, "bot ready (%.1f MiB); creating %d failing Deployments with %d pods", res.RSSReadyMiB, len(bad), cfg.Failing)

	var cpuProfile sync.WaitGroup
	if cfg.ProfileDir != "" {
		// The storm's first 30 s hold the detections the target is about.
		cpuProfile.Go(func() {
			if err := bot.save(ctx, "/debug/pprof/profile?seconds=30", filepath.Join(cfg.ProfileDir, "cpu.pprof")); err != nil {
				progress(logw, "CPU profile: %v", err)
			}
		})
	}
	for i, w := range bad {
		if i > 0 && cfg.Stagger > 0 {
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(cfg.Stagger):
			}
		}
		if err := createDeployment(ctx, cs, w.Namespace, w.Name, w.Image, w.Replicas); err != nil {
			return res, err
		}
	}

	notified := map[string]time.Time{}
	// A workload is detected when a message in the channel names it: a
	// root message, or an edit of one. Thread replies (a storm's cards,
	// a message's details) are not in the channel's view and do not count.
	inChannel := func(c slackemu.Call) bool {
		switch c.Method {
		case "chat.postMessage":
			return c.Params.Get("thread_ts") == "" || c.Params.Get("reply_broadcast") == "true"
		case "chat.update":
			m, ok := emu.Message(c.Params.Get("channel"), c.Params.Get("ts"))
			return ok && !m.IsReply()
		}
		return false
	}
	scan := func() {
		for _, c := range emu.Calls("") {
			if !c.OK() || !inChannel(c) {
				continue
			}
			text := c.Params.Get("text") + "\n" + string(c.Blocks)
			for _, w := range bad {
				k := w.Namespace + "/" + w.Name
				if _, ok := notified[k]; !ok && strings.Contains(text, w.Name) {
					notified[k] = c.At
				}
			}
		}
	}
	waitErr := emu.WaitFor(ctx, func() bool {
		if _, ok := bot.exited(); ok {
			return true
		}
		clear(notified)
		scan()
		return len(notified) == len(bad)
	})
	if err, ok := bot.exited(); ok {
		return res, fmt.Errorf("the bot stopped during the storm: %v", err)
	}
	if waitErr != nil {
		var missing []string
		for _, w := range bad {
			if _, ok := notified[w.Namespace+"/"+w.Name]; !ok {
				missing = append(missing, w.Name)
			}
		}
		return res, fmt.Errorf("%d of %d failing workloads never reported in Slack (%s): %w", len(missing), len(bad), strings.Join(missing, ", "), waitErr)
	}
	stormDone := time.Now()
	if cfg.ProfileDir != "" {
		for _, name := range []string{"heap", "allocs", "mutex", "block", "goroutine"} {
			if err := bot.save(ctx, "/debug/pprof/"+name, filepath.Join(cfg.ProfileDir, name+".pprof")); err != nil {
				progress(logw, "%s profile: %v", name, err)
			}
		}
		cpuProfile.Wait()
		progress(logw, "profiles in %s (go tool pprof -top %s)", cfg.ProfileDir, filepath.Join(cfg.ProfileDir, "cpu.pprof"))
	}
	// Let the last group edits and late posts land before counting: wait
	// for five quiet seconds of Slack traffic (at most a minute).
	quietUntil(ctx, emu, 5*time.Second, time.Minute)
	if kw != nil {
		// kubewatch gets as long again as pullfix took, at least a minute,
		// to name the workloads it has not named yet.
		wctx, cancel := context.WithTimeout(ctx, max(time.Minute, stormDone.Sub(setupDone)))
		_ = kw.emu.WaitFor(wctx, func() bool { return kw.measure(bad, rec).Named == len(bad) })
		cancel()
		ready := res.Kubewatch.RSSReadyMiB
		m := kw.measure(bad, rec)
		m.RSSReadyMiB = ready
		res.Kubewatch = &m
	}

	// Figures.
	for _, w := range bad {
		k := w.Namespace + "/" + w.Name
		first, ok := rec.get(k)
		if !ok {
			return res, fmt.Errorf("the simulator never wrote a failing status for %s", k)
		}
		res.perWorkload = append(res.perWorkload, workloadLatency{w: w, latency: notified[k].Sub(first.Written), fromSent: notified[k].Sub(first.Sent),
			sent: first.Sent, failed: first.Written, notified: notified[k]})
	}
	if cfg.ProfileDir != "" {
		if err := writeTimeline(filepath.Join(cfg.ProfileDir, "timeline.tsv"), res.perWorkload); err != nil {
			progress(logw, "timeline: %v", err)
		}
	}
	slices.SortFunc(res.perWorkload, func(a, b workloadLatency) int { return cmp.Compare(a.latency, b.latency) })
	lat := make([]time.Duration, len(res.perWorkload))
	for i, l := range res.perWorkload {
		lat[i] = l.latency
	}
	res.DetectP50ms = percentile(lat, 50).Milliseconds()
	res.DetectP99ms = percentile(lat, 99).Milliseconds()
	res.DetectMaxms = lat[len(lat)-1].Milliseconds()
	fromSent := make([]time.Duration, len(res.perWorkload))
	for i, l := range res.perWorkload {
		fromSent[i] = l.fromSent
	}
	slices.Sort(fromSent)
	res.SentP50ms = percentile(fromSent, 50).Milliseconds()
	res.SentP99ms = percentile(fromSent, 99).Milliseconds()
	res.Notified = len(notified)
	for _, c := range emu.Calls("") {
		res.SlackCalls++
		switch {
		case c.Method == "chat.postMessage" && c.OK() && c.Params.Get("thread_ts") == "":
			res.SlackRootMessages++
		case c.Method == "chat.postMessage" && c.OK():
			res.SlackReplies++
		case c.Method == "chat.update" && c.OK():
			res.SlackEdits++
		}
	}
	res.Slack429s = emu.RateLimited()
	_, metrics, err := bot.get(ctx, "/metrics")
	if err != nil {
		return res, fmt.Errorf("scrape the bot's /metrics: %w", err)
	}
	res.Incidents = int(metricSum(metrics, "pullfix_incidents_opened_total"))
	botAfter, sim2, _ := counts.counts()
	res.RegistryRequests = botAfter // all of the bot's requests; none before the storm is expected
	res.SimRequests = sim2
	res.UniqueImages = uniqueImages(bad)
	res.RequestsPerImage = float64(res.RegistryRequests) / float64(res.UniqueImages)
	res.RSSEndMiB, res.RSSMiB = bot.memory()
	res.Pods, res.FailingPods, res.Workloads, res.Nodes, res.Channels = cfg.Pods, cfg.Failing, cfg.Workloads, nodes, cfg.Channels
	res.SetupS = setupDone.Sub(began).Seconds()
	res.StormS = stormDone.Sub(setupDone).Seconds()
	res.ElapsedS = time.Since(began).Seconds()
	res.Machine = machine()
	if botBefore > 0 {
		progress(logw, "note: the bot sent %d registry requests before the storm", botBefore)
	}
	return res, nil
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (p*len(sorted) + 99) / 100
	return sorted[max(0, min(len(sorted)-1, i-1))]
}

// quietUntil waits until the emulator has recorded no call for quiet, or
// at most limit.
func quietUntil(ctx context.Context, emu *slackemu.Emulator, quiet, limit time.Duration) {
	deadline := time.Now().Add(limit)
	last, lastAt := len(emu.Calls("")), time.Now()
	for time.Now().Before(deadline) && time.Since(lastAt) < quiet {
		wctx, cancel := context.WithTimeout(ctx, quiet-time.Since(lastAt))
		_ = emu.WaitFor(wctx, func() bool { return len(emu.Calls("")) != last })
		cancel()
		if ctx.Err() != nil {
			return
		}
		if n := len(emu.Calls("")); n != last {
			last, lastAt = n, time.Now()
		}
	}
}

func createNamespaces(ctx context.Context, cs kubernetes.Interface, n int) error {
	for i := range n {
		name := fmt.Sprintf("bench-%02d", i)
		_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
	// The ServiceAccount admission plugin refuses pods until "default" exists.
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		for i := range n {
			if _, err := cs.CoreV1().ServiceAccounts(fmt.Sprintf("bench-%02d", i)).Get(ctx, "default", metav1.GetOptions{}); err != nil {
				return false, nil
			}
		}
		return true, nil
	})
}

func createDeployment(ctx context.Context, cs kubernetes.Interface, ns, name, image string, replicas int) error {
	r := int32(replicas)
	labels := map[string]string{"app": name}
	_, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &r,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create deployment %s/%s: %w", ns, name, err)
	}
	return nil
}

// waitReady waits until the Deployments report want ready replicas.
func waitReady(ctx context.Context, cs kubernetes.Interface, logw io.Writer, want int) error {
	start, lastLog := time.Now(), time.Now()
	return wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		l, err := cs.AppsV1().Deployments("").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		ready := 0
		for _, d := range l.Items {
			ready += int(d.Status.ReadyReplicas)
		}
		if ready >= want {
			progress(logw, "%d pods running after %s", ready, time.Since(start).Round(time.Second))
			return true, nil
		}
		if time.Since(lastLog) > 15*time.Second {
			lastLog = time.Now()
			progress(logw, "%d of %d pods running (%s)", ready, want, time.Since(start).Round(time.Second))
		}
		return false, nil
	})
}

// machine describes this machine.
func machine() Machine {
	m := Machine{NProc: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kib int
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "MemTotal:") {
				fmt.Sscanf(strings.TrimPrefix(line, "MemTotal:"), "%d", &kib)
			}
		}
		m.MemMiB = kib / 1024
	}
	return m
}
