package watch

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/testenv/registries"
)

// refineRecorder is a recorder that can also edit what it posted.
type refineRecorder struct {
	*recorder
	mu      sync.Mutex
	refined []Incident
}

func (r *refineRecorder) Refined(_ context.Context, inc Incident) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refined = append(r.refined, inc)
	return nil
}

func (r *refineRecorder) refinements() []Incident {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Incident(nil), r.refined...)
}

// TestSlowRegistryPostsWithinBudget: when the registry is slow to answer
// the bot's probe, the incident is posted on the kubelet's words within
// the diagnosis budget, then refined once with the probe's verdict and its
// verified fix; nothing is posted twice.
func TestSlowRegistryPostsWithinBudget(t *testing.T) {
	e := newCluster(t)
	// The nodes pull from the fast registry (and fail: the repository is
	// misspelt); the bot's probe goes to a copy that answers slowly.
	slow := registries.New(t, registries.WithDelay(700*time.Millisecond))
	registries.SeedRunbook(t, slow)
	p, err := diagnose.NewProber(diagnose.WithMirrors(diagnose.Mirrors{registries.PublicECR: slow.Host}), diagnose.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	e.diag = diagnose.NewDiagnoser(p)
	rec := &refineRecorder{recorder: e.rec}
	const budget = 300 * time.Millisecond
	e.w = e.start(rec, WithDiagnosisBudget(budget)).w
	e.deployment("ui-new", badImage, 1)

	poll(t, 60*time.Second, "posted", func(context.Context) (bool, error) { return len(e.rec.openedFor("ui-new")) == 1, nil })
	first := e.rec.openedFor("ui-new")[0]
	if d := first.Diagnosis; d == nil || len(d.Probes) != 0 || len(d.Candidates) != 0 {
		t.Fatalf("first post should carry the kubelet's words only (no probe yet): %+v", d)
	}
	poll(t, 60*time.Second, "refined", func(context.Context) (bool, error) { return len(rec.refinements()) == 1, nil })
	got := rec.refinements()[0]
	if got.NotifyRef != "ref-1" || got.Diagnosis == nil || got.Diagnosis.Cause != diagnose.RepoNotFound {
		t.Fatalf("refinement %+v, want ref-1 with repo_not_found", got)
	}
	if c := got.Diagnosis.Candidates; len(c) == 0 || c[0].Image != goodImage {
		t.Errorf("refined candidates %+v, want %s first", c, goodImage)
	}
	if inc, ok := e.w.Incident(first.ID); !ok || inc.Diagnosis == nil || inc.Diagnosis.Cause != diagnose.RepoNotFound {
		t.Errorf("the watcher's state keeps the first words: %+v", inc.Diagnosis)
	}
	if n := len(e.rec.openedFor("ui-new")); n != 1 {
		t.Errorf("%d posts, want 1", n)
	}
	t.Logf("kubelet-only post, then the probe's verdict (%s) as an edit", got.Diagnosis.ProbeDuration.Round(time.Millisecond))
}

// blockingDiagnoser holds every diagnosis until released, like a registry
// that hangs.
type blockingDiagnoser struct {
	entered chan string
	release chan struct{}
}

func (b *blockingDiagnoser) Diagnose(_ context.Context, t diagnose.Target, _ authn.Keychain) diagnose.Diagnosis {
	b.entered <- t.Name
	<-b.release
	return diagnose.DiagnoseOffline(t)
}

// TestIncidentOpensWhileDiagnosesWait: a diagnosis that holds its worker
// (a hanging registry, no budget) must not delay opening the next
// workload's incident: pods are synced from their own queue.
func TestIncidentOpensWhileDiagnosesWait(t *testing.T) {
	e := newCluster(t)
	b := &blockingDiagnoser{entered: make(chan string, 10), release: make(chan struct{})}
	w, err := New(e.cs, b, e.rec, WithCluster("test"), WithNamespaces(e.ns), WithWorkers(1), WithDiagnosisBudget(0))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		close(b.release)
		cancel()
		<-done
	}()
	poll(t, 30*time.Second, "watcher synced", func(context.Context) (bool, error) { return w.HasSynced(), nil })

	e.deployment("first", badImage, 1)
	select {
	case name := <-b.entered:
		if name != "first" {
			t.Fatalf("diagnosing %s, want first", name)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("first was never diagnosed")
	}
	// The only incident worker is now held by first's diagnosis.
	e.deployment("second", badImage, 1)
	poll(t, 60*time.Second, "second's incident opened while first's diagnosis waits", func(context.Context) (bool, error) {
		for _, inc := range w.Incidents() {
			if inc.Key.Name == "second" {
				return true, nil
			}
		}
		return false, nil
	})
}
