package node

// The simulator-honesty test: the same failing pulls on the real node and
// through the kubelet simulator, compared. The simulator is what the bot's
// other tests and the benchmark run against; if it drifts from what a
// kubelet and containerd really write, this test says where.

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/testenv/kubeletsim"
	"github.com/pullfix/pullfix/internal/testenv/registries"
)

const (
	ecrHost     = "123456789012.dkr.ecr.us-west-2.amazonaws.com"
	droppedHost = "quay.io"
)

// honestyCase is one failing pull: a pod named name pulling image, and
// the cause the offline classifier must read in the real kubelet's words.
type honestyCase struct {
	name, image string
	cause       diagnose.Cause
}

var honestyCases = []honestyCase{
	// The runbook: a repository that does not exist (typo).
	// containerd's bare "not found": the words cannot say repository or tag.
	{"typo", registries.PublicECR + "/" + registries.RetailingUI + ":" + registries.RunbookTag, diagnose.ImageNotFound},
	// A private registry (ECR-like Basic auth) and no pull secret.
	{"private", ecrHost + "/retail-store-sample-ui:1.2.1", diagnose.Unauthorized},
	// The node's route to the registry drops connections.
	{"blackhole", droppedHost + "/pullfix/app:1", diagnose.NetworkTimeout},
}

// observed is what one kubelet wrote about one pod: its events (type,
// reason, message) and the container's waiting states, in order of first
// appearance, and when each pull attempt failed (ErrImagePull written).
type observed struct {
	mu       sync.Mutex
	waiting  []attemptState
	failures []time.Time
	last     string
}

// attemptState is a waiting state and the pull attempt it belongs to: an
// ErrImagePull starts attempt n, the ImagePullBackOff after it is still n.
type attemptState struct {
	attempt int
	state   string
}

func (o *observed) addWaiting(w *corev1.ContainerStateWaiting) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := w.Reason + ": " + w.Message
	if s == o.last {
		return
	}
	o.last = s
	if w.Reason == "ErrImagePull" {
		o.failures = append(o.failures, time.Now())
	}
	o.waiting = append(o.waiting, attemptState{len(o.failures), s})
}

// states are what the test compares of one kubelet: the distinct
// ErrImagePull states of attempts 1..n, and the ImagePullBackOff states
// after attempt n. (Whether a kubelet writes ImagePullBackOff between two
// attempts depends on when its pod worker re-syncs relative to the
// back-off's end, which jitters; after attempt n both have written one
// once the test's condition holds.) Also the failures' times, and whether
// attempt n's back-off has been written.
func (o *observed) states(n int) (waiting []string, failures []time.Time, backedOff bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, a := range o.waiting {
		keep := false
		switch {
		case strings.HasPrefix(a.state, "ErrImagePull: "):
			keep = a.attempt <= n
		case strings.HasPrefix(a.state, "ImagePullBackOff: "):
			keep = a.attempt == n
			backedOff = backedOff || keep
		}
		if keep && !slices.Contains(waiting, a.state) {
			waiting = append(waiting, a.state)
		}
	}
	return waiting, slices.Clone(o.failures), backedOff
}

// watchPods records the waiting states of the app container of every pod
// in ns, keyed by pod name.
func watchPods(t *testing.T, cs kubernetes.Interface, ns string, obs map[string]*observed) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			pod, ok := ev.Object.(*corev1.Pod)
			if !ok || ev.Type == watch.Deleted {
				continue
			}
			o := obs[pod.Name]
			for _, c := range pod.Status.ContainerStatuses {
				if o != nil && c.State.Waiting != nil && c.State.Waiting.Reason != "ContainerCreating" {
					o.addWaiting(c.State.Waiting)
				}
			}
		}
	}()
}

// podEvents lists the kubelet's events about pod name in ns.
func podEvents(ctx context.Context, cs kubernetes.Interface, ns, name string) []string {
	l, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: fields.Set{
		"involvedObject.name": name, "involvedObject.kind": "Pod", "source": "kubelet",
	}.AsSelector().String()})
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range l.Items {
		s := e.Type + " " + e.Reason + ": " + e.Message
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}

// normaliser replaces only what must differ between the two runs: the
// nodes' and namespaces' names, the address a dial went to (the simulator
// names a TEST-NET address on 443, the real node's route is a loopback
// address on 80), and the scheme of the registries' URLs (the loopback
// registries speak plain HTTP). And one thing the real containerd 1.6 does
// not do the same way twice: a dial timeout reaches the kubelet sometimes
// as gRPC DeadlineExceeded ("rpc error: code = DeadlineExceeded desc = …")
// and sometimes as Unknown (no prefix: the kubelet strips it) — both seen
// on one node for one image, in either order — so that prefix is dropped
// from timeout texts.
func normaliser(names map[string]string) func(string) string {
	addr := regexp.MustCompile(`(dial tcp )(127\.\d+\.\d+\.\d+|203\.0\.113\.\d+):\d+`)
	return func(s string) string {
		for from, to := range names {
			s = strings.ReplaceAll(s, from, to)
		}
		if strings.HasSuffix(s, ": i/o timeout") {
			s = strings.ReplaceAll(s, "rpc error: code = DeadlineExceeded desc = ", "")
		}
		s = addr.ReplaceAllString(s, "${1}ADDR")
		s = strings.ReplaceAll(s, `"http://`, `"https://`)
		s = strings.ReplaceAll(s, ` http://`, ` https://`)
		return s
	}
}

// TestSimulatorMatchesRealKubelet runs each honestyCase on the real node
// and on the kubelet simulator and compares, after normalising, the
// kubelet's events and the container's waiting reasons and messages; and
// that the real kubelet's image back-off (ErrImagePull, then
// ImagePullBackOff, retried after 10 s and then 20 s) has the shape the
// simulator compresses.
func TestSimulatorMatchesRealKubelet(t *testing.T) {
	pub := registries.New(t)
	registries.SeedRunbook(t, pub)
	ecr := registries.New(t, registries.WithBasicAuth(registries.BasicAuth{Users: map[string]registries.BasicUser{"AWS": {Password: "secret"}}}))
	ecr.Push(t, "retail-store-sample-ui:1.2.1", registries.MultiArch...)

	nt := StartForTest(t, cp, "honesty", map[string]Route{
		registries.PublicECR: {Registry: pub}, ecrHost: {Registry: ecr}, droppedHost: {Dropped: true},
	})
	cs := adminClient(t)
	nsReal, nsSim := newNamespace(t, cs, "real"), newNamespace(t, cs, "sim")

	simNode := RandomName("honesty-sim")
	sim, err := kubeletsim.NewForConfig(cp.AdminConfig(), kubeletsim.WithNamespace(nsSim), kubeletsim.WithNodeNames(simNode),
		kubeletsim.WithMirrors(map[string]string{registries.PublicECR: pub.Host, ecrHost: ecr.Host}),
		kubeletsim.WithContainerdVersion(kubeletsim.Containerd16))
	if err != nil {
		t.Fatal(err)
	}
	sim.SetRoute(droppedHost, kubeletsim.RouteBlackHole)
	if err := sim.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sim.Stop)

	real, simulated := map[string]*observed{}, map[string]*observed{}
	for _, c := range honestyCases {
		real[c.name], simulated[c.name] = &observed{}, &observed{}
	}
	watchPods(t, cs, nsReal, real)
	watchPods(t, cs, nsSim, simulated)
	began := time.Now()
	for _, c := range honestyCases {
		if _, err := cs.CoreV1().Pods(nsReal).Create(t.Context(), hostPod(nsReal, c.name, nt.Name(), c.image), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		p := hostPod(nsSim, c.name, "", c.image)
		if _, err := cs.CoreV1().Pods(nsSim).Create(t.Context(), p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// Both kubelets must have failed each pull at least twice (so the
	// back-off and the events of a retry are there); the typo case, whose
	// pulls fail at once, three times (for the back-off's doubling).
	want := map[string]int{"typo": 3, "private": 2, "blackhole": 2}
	err = wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 5*time.Minute, true, func(context.Context) (bool, error) {
		for _, c := range honestyCases {
			for _, o := range []*observed{real[c.name], simulated[c.name]} {
				if _, failures, backedOff := o.states(want[c.name]); len(failures) < want[c.name] || !backedOff {
					return false, nil
				}
			}
		}
		return true, nil
	})
	if err != nil {
		for _, c := range honestyCases {
			for who, o := range map[string]*observed{"real": real[c.name], "simulated": simulated[c.name]} {
				waiting, failures, _ := o.states(want[c.name])
				t.Logf("%s %s: %d failed pulls, states %q", who, c.name, len(failures), waiting)
			}
		}
		t.Fatalf("waiting for the failed pulls of each case on both kubelets: %v", err)
	}
	t.Logf("both kubelets failed every case at least twice after %s", time.Since(began).Round(time.Second))

	norm := normaliser(map[string]string{nt.Name(): "NODE", simNode: "NODE", nsReal: "NS", nsSim: "NS"})
	for _, c := range honestyCases {
		t.Run(c.name, func(t *testing.T) {
			// Events are written asynchronously (and aggregated by message):
			// the lists may take a moment to settle.
			var rEvents, sEvents []string
			_ = wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
				rEvents, sEvents = podEvents(ctx, cs, nsReal, c.name), podEvents(ctx, cs, nsSim, c.name)
				return slices.Equal(mapped(rEvents, norm), mapped(sEvents, norm)), nil
			})
			rWaiting, rFail, _ := real[c.name].states(want[c.name])
			sWaiting, sFail, _ := simulated[c.name].states(want[c.name])
			t.Logf("real kubelet events:\n  %s\nreal waiting states:\n  %s", strings.Join(rEvents, "\n  "), strings.Join(rWaiting, "\n  "))
			compare(t, "events", mapped(rEvents, norm), mapped(sEvents, norm))
			compare(t, "waiting states", mapped(rWaiting, norm), mapped(sWaiting, norm))
			// What the bot reads first: the real kubelet's words, classified
			// offline, name the cause they carry (and no more).
			for _, st := range rWaiting {
				reason, msg, _ := strings.Cut(st, ": ")
				if got := diagnose.Classify(reason, msg).Cause; got != c.cause {
					t.Errorf("the real kubelet's %s classifies as %s, want %s: %q", reason, got, c.cause, msg)
				}
			}
			t.Logf("real failed pulls at %s; simulated at %s", gaps(rFail), gaps(sFail))
			if c.name == "typo" {
				checkBackoff(t, rFail, 10*time.Second, "real")
				checkBackoff(t, sFail, kubeletsim.DefaultBackoffInitial, "simulated")
			}
		})
	}
}

func mapped(in []string, f func(string) string) []string {
	out := make([]string, 0, len(in))
	for _, s := range in {
		if n := f(s); !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// compare fails with both lists when they differ.
func compare(t *testing.T, what string, real, sim []string) {
	t.Helper()
	if slices.Equal(real, sim) {
		return
	}
	var b strings.Builder
	for _, s := range real {
		if !slices.Contains(sim, s) {
			fmt.Fprintf(&b, "\n  only real: %s", s)
		}
	}
	for _, s := range sim {
		if !slices.Contains(real, s) {
			fmt.Fprintf(&b, "\n  only simulated: %s", s)
		}
	}
	t.Errorf("%s differ (normalised):%s", what, b.String())
}

func gaps(ts []time.Time) string {
	var out []string
	for i := 1; i < len(ts); i++ {
		out = append(out, "+"+ts[i].Sub(ts[i-1]).Round(10*time.Millisecond).String())
	}
	return strings.Join(out, " ")
}

// checkBackoff: the second attempt comes at least initial after the first
// failure, and the third at least twice that after the second (the
// kubelet's doubling); neither comes more than 3× later than its back-off
// (the pod worker re-syncs in between).
func checkBackoff(t *testing.T, fails []time.Time, initial time.Duration, who string) {
	t.Helper()
	if len(fails) < 3 {
		t.Errorf("%s: %d failed pulls recorded, want 3", who, len(fails))
		return
	}
	for i, want := range []time.Duration{initial, 2 * initial} {
		got := fails[i+1].Sub(fails[i])
		if got < want*9/10 || got > 3*want+2*time.Second {
			t.Errorf("%s: pull %d came %s after the failure before it, want about %s (the back-off)", who, i+2, got.Round(10*time.Millisecond), want)
		}
	}
}
