package watch

import (
	"context"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// unauthorizedDiagnoser says every pull lacks credentials.
type unauthorizedDiagnoser struct{}

func (unauthorizedDiagnoser) Diagnose(_ context.Context, t diagnose.Target, _ authn.Keychain) diagnose.Diagnosis {
	return diagnose.Diagnosis{Target: t, Cause: diagnose.Unauthorized, Summary: "credentials missing"}
}

// TestProvenSecretsSurviveARestart: the watcher searches for working pull
// secrets for a posted credentials incident in the background (a goroutine
// of the leadership), edits the message to offer them (Refined), and keeps
// them on the incident in the state ConfigMap: a restarted watcher offers
// them without searching again (real API server: the ConfigMap's writes
// are compare-and-swap on its resourceVersion).
func TestProvenSecretsSurviveARestart(t *testing.T) {
	e := newCluster(t)
	cs := e.cs
	ctx := t.Context()
	var searches atomic.Int32
	finder := func(_ context.Context, ns, image string, _ diagnose.Platform) ([]string, error) {
		searches.Add(1)
		return []string{"regcred"}, nil
	}
	start := func() (*Watcher, *refineRecorder, func()) {
		rec := &refineRecorder{recorder: &recorder{}}
		w, err := New(cs, unauthorizedDiagnoser{}, rec, WithCluster("test"), WithNamespaces(e.ns), WithDiagnosisBudget(0),
			WithStateConfigMap(e.ns, "state"), WithLogger(slog.New(slog.DiscardHandler)))
		if err != nil {
			t.Fatal(err)
		}
		w.findSecrets = finder
		runCtx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(runCtx) }()
		stop := func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("watcher: %v", err)
			}
		}
		poll(t, 30*time.Second, "leading", func(context.Context) (bool, error) { return w.IsLeader(), nil })
		return w, rec, stop
	}

	w, rec, stop := start()
	e.deployment("app", badImage, 1)
	poll(t, 30*time.Second, "the message edited to offer the proven secret", func(context.Context) (bool, error) {
		for _, inc := range rec.refinements() {
			if slices.Equal(inc.ProvenSecrets, []string{"regcred"}) && inc.NotifyRef != "" {
				return true, nil
			}
		}
		return false, nil
	})
	opened, _ := rec.snapshot()
	id := opened[0].ID
	stop() // waits for the leadership's goroutines, the search's included

	w2, rec2, stop2 := start()
	defer stop2()
	poll(t, 30*time.Second, "the incident restored", func(context.Context) (bool, error) {
		inc, ok := w2.Incident(id)
		return ok && inc.State == StateNotified, nil
	})
	inc, _ := w2.Incident(id)
	if !slices.Equal(inc.ProvenSecrets, []string{"regcred"}) {
		t.Errorf("after a restart: proven %v, want [regcred]", inc.ProvenSecrets)
	}
	proven, err := w2.provenSecrets(ctx, id)
	if err != nil || !slices.Equal(proven, []string{"regcred"}) {
		t.Errorf("provenSecrets = %v, %v", proven, err)
	}
	if n := searches.Load(); n != 1 {
		t.Errorf("%d searches, want 1: the restarted watcher keeps the answer", n)
	}
	if opened2, _ := rec2.snapshot(); len(opened2) != 0 {
		t.Errorf("the restarted watcher posted again: %v", opened2)
	}
	_ = w
}
