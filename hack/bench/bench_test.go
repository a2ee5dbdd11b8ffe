package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/pullfix/pullfix/internal/testenv/controlplane"
)

// TestBenchSmall runs the whole benchmark harness at a small size — the
// real control plane, simulator, registries, Slack emulator and the bot
// binary as its own process — and checks that every figure is present and
// sane: every failing workload reported, no more root messages than
// workloads, the bot's registry requests counted. It asserts no timings:
// performance is measured by `go run ./hack/bench`, not by tests.
func TestBenchSmall(t *testing.T) {
	if _, err := controlplane.BinDir(); err != nil {
		// Skips (or fails under CI=true) naming hack/build-k8s.sh.
		controlplane.Require(t, nil)
	}
	cfg := defaultConfig()
	cfg.Pods, cfg.Failing, cfg.Workloads, cfg.Namespaces, cfg.Channels = 300, 40, 5, 3, 3
	cfg.PerDeploy, cfg.PodsPerNode, cfg.Timeout = 40, 100, 8*time.Minute
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	res, err := run(t.Context(), cfg, &log)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, log.String())
	}
	var table bytes.Buffer
	res.table(&table)
	t.Logf("\n%s", table.String())

	// The JSON object carries every field the issue names.
	data, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"pods", "failing_pods", "workloads", "rss_mib", "detect_p50_ms", "detect_p99_ms", "detect_from_send_p99_ms",
		"slack_root_messages", "slack_calls", "slack_429s", "incidents", "unique_images", "registry_requests", "elapsed_s", "machine"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, data)
		}
	}

	checks := []struct {
		name string
		ok   bool
	}{
		{"sizes echo the configuration", res.Pods == 300 && res.FailingPods == 40 && res.Workloads == 5},
		{"every failing workload was reported in Slack", res.Notified == res.Workloads},
		{"at least one and at most one root message per workload", res.SlackRootMessages >= 1 && res.SlackRootMessages <= res.Workloads},
		{"one incident per failing workload", res.Incidents == res.Workloads},
		{"the bot's memory was sampled", res.RSSMiB > 0 && res.RSSReadyMiB > 0 && res.RSSMiB >= res.RSSReadyMiB},
		// From the write accepted a latency may be negative (the bot saw the
		// kubelet's event first); counted from the write sent it includes
		// the API server's time, so it is never less.
		{"latencies are ordered", res.DetectP50ms <= res.DetectP99ms && res.DetectP99ms <= res.DetectMaxms && res.DetectMaxms > 0},
		{"counted from the write sent, no less", res.SentP50ms >= res.DetectP50ms && res.SentP99ms >= res.DetectP99ms},
		{"Slack calls include the root messages", res.SlackCalls >= res.SlackRootMessages},
		{"the bot probed the registries (counted by User-Agent)", res.RegistryRequests > 0},
		{"the simulator pulled (counted apart from the bot)", res.SimRequests > 0},
		{"unique images counted", res.UniqueImages == 5},
		{"machine described", res.Machine.NProc > 0 && res.Machine.Go != ""},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("%s: %+v", c.name, res)
		}
	}
}

// TestPlan checks how pods are dealt: sizes add up, causes and registries
// are mixed, and some workloads share an image.
func TestPlan(t *testing.T) {
	for _, tc := range []struct{ pods, failing, workloads, ns int }{
		{10000, 1000, 50, 20}, {300, 40, 5, 3}, {1000, 100, 10, 20}, {57, 7, 3, 1},
	} {
		healthy, bad := plan(tc.pods, tc.failing, tc.workloads, tc.ns, 50)
		run, fail := 0, 0
		for _, w := range healthy {
			run += w.Replicas
		}
		causes := map[string]bool{}
		for _, w := range bad {
			fail += w.Replicas
			causes[w.Name[strings.LastIndexByte(w.Name, '-')+1:]] = true // repo, tag, hubtag, auth, timeout
			if w.Replicas < 1 {
				t.Errorf("%+v: workload %s has no pod", tc, w.Name)
			}
		}
		if run != tc.pods-tc.failing || fail != tc.failing || len(bad) != tc.workloads {
			t.Errorf("%+v: %d running, %d failing in %d workloads", tc, run, fail, len(bad))
		}
		if want := min(tc.workloads, 5); len(causes) < want {
			t.Errorf("%+v: causes %v, want at least %d", tc, causes, want)
		}
	}
	_, bad := plan(10000, 1000, 50, 20, 50)
	if u := uniqueImages(bad); u >= len(bad) {
		t.Errorf("no two workloads share an image (%d unique of %d)", u, len(bad))
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*config)
		want string
	}{
		{func(c *config) { c.Workloads = 0 }, "--workloads"},
		{func(c *config) { c.Failing = 10; c.Workloads = 20 }, "--failing"},
		{func(c *config) { c.Pods = 10; c.Failing = 20; c.Workloads = 5 }, "--pods"},
		{func(c *config) { c.Channels = 0 }, "--channels"},
		{func(c *config) { c.Timeout = 0 }, "--timeout"},
	} {
		c := defaultConfig()
		tc.mod(&c)
		err := c.validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("validate() = %v, want an error naming %s", err, tc.want)
		}
	}
	if err := defaultConfig().validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
}

func TestMetricSumAndPercentile(t *testing.T) {
	text := "# HELP pullfix_incidents_opened_total x\npullfix_incidents_opened_total{cause=\"repo_not_found\"} 3\npullfix_incidents_opened_total{cause=\"unauthorized\"} 2\npullfix_incidents_opened_totalx 9\n"
	if got := metricSum(text, "pullfix_incidents_opened_total"); got != 5 {
		t.Errorf("metricSum = %v, want 5", got)
	}
	d := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if p := percentile(d, 50); p != 5 {
		t.Errorf("p50 = %v", p)
	}
	if p := percentile(d, 99); p != 10 {
		t.Errorf("p99 = %v", p)
	}
	if p := percentile(nil, 99); p != 0 {
		t.Errorf("p99 of nothing = %v", p)
	}
}
