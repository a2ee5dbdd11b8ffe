package watch

import (
	"context"
	"errors"
	"time"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// DefaultDiagnosisBudget is how long the first notification of an incident
// waits for the cluster reads and the registry probe. A registry that does
// not answer (a black hole, an outage) makes the probe wait for its own
// timeout (5 s by default); rather than keep the person on call waiting,
// the incident is posted on the kubelet's words alone and refined — the
// same message edited — when the probe answers. 500 ms leaves room, within
// the one second from failure to message that pullfix aims for, for the
// API server's watch and Slack's own answer; a healthy registry answers
// the probe's first request well within it.
const DefaultDiagnosisBudget = 500 * time.Millisecond

// WithDiagnosisBudget sets how long the first notification waits for the
// full diagnosis (default DefaultDiagnosisBudget; 0 waits for it always;
// negative is an error).
func WithDiagnosisBudget(d time.Duration) Option {
	return func(w *Watcher) error {
		if d < 0 {
			return errorf("WithDiagnosisBudget(%s): negative", d)
		}
		w.budget = d
		return nil
	}
}

// Refiner is implemented by notifiers that can edit a posted incident when
// its diagnosis improves after it was posted (the registry probe answered
// after the diagnosis budget). Notifiers without it keep the first words.
type Refiner interface {
	// Refined is called once, by a worker, with the incident carrying its
	// full diagnosis; edit the message inc.NotifyRef names.
	Refined(ctx context.Context, inc Incident) error
}

// diagnoseWithin diagnoses inc, waiting at most the budget for the
// cluster reads and the registry together. When the budget runs out it
// returns the kubelet-only diagnosis (from the pod in the cache, no
// request), and the full one is stored and reported through a "refine"
// item when it arrives.
func (w *Watcher) diagnoseWithin(ctx context.Context, ks string, inc Incident) (diagnose.Diagnosis, error) {
	if w.budget <= 0 {
		return w.diagnoseIncident(ctx, inc)
	}
	// The kubelet's words come from the caches; without them (the pod is
	// gone) there is nothing to diagnose.
	quickT, err := w.quickTarget(inc)
	if err != nil {
		return diagnose.Diagnosis{}, err
	}
	type answer struct {
		d   diagnose.Diagnosis
		err error
	}
	done := make(chan answer, 1)
	// The reads and the probe run under the watcher's context, not this
	// sync's: they are bounded by their own timeouts and their answer is
	// wanted after the post.
	//
	// The goroutine belongs to the leadership (lead waits for it): ctx is
	// the leader's, which outlives this sync, and a new leader diagnoses
	// afresh what this one could not finish.
	w.bg.Go(func() {
		began := time.Now()
		bg := ctx
		t, kc, pod, err := w.targetOf(bg, inc)
		if err != nil {
			done <- answer{err: err}
			return
		}
		read := time.Since(began)
		d := w.diag.Diagnose(bg, t, kc)
		adaptToSource(inc.Key, pod, &d)
		w.log.Debug("diagnosed", "key", ks, "cause", d.Cause, "inputs", read.Round(time.Millisecond), "probe", d.ProbeDuration.Round(time.Millisecond))
		done <- answer{d: d}
	})
	timer := time.NewTimer(w.budget)
	defer timer.Stop()
	select {
	case a := <-done:
		return a.d, a.err
	case <-ctx.Done():
		return diagnose.Diagnosis{}, ctx.Err()
	case <-timer.C:
	}
	quick := diagnose.DiagnoseOffline(quickT)
	quickPod, _ := w.cachedPod(inc.Key.Namespace, inc.Pods[0])
	adaptToSource(inc.Key, quickPod, &quick)
	w.bg.Go(func() {
		a := <-done
		if a.err != nil {
			// The pod went away meanwhile: the kubelet's words stand.
			w.log.Debug("full diagnosis not available; keeping the kubelet's words", "key", ks, "err", a.err)
			return
		}
		w.mu.Lock()
		if e := w.incidents[ks]; e != nil {
			e.refined = &a.d
		}
		w.mu.Unlock()
		w.enqueue(item{kind: itemRefine, key: ks})
	})
	w.log.Debug("diagnosis budget spent; posting the kubelet's words first", "key", ks, "budget", w.budget)
	return quick, nil
}

// syncRefine stores a diagnosis that arrived after the incident was posted
// and tells the notifier, if it can edit what it posted.
func (w *Watcher) syncRefine(ctx context.Context, ks string) error {
	w.mu.Lock()
	e := w.incidents[ks]
	if e == nil || e.refined == nil {
		w.mu.Unlock()
		return nil
	}
	if e.NotifyRef == "" && e.GroupID == "" {
		if e.State != StateOpen {
			// Closed before it was posted: nothing to refine.
			e.refined = nil
			w.mu.Unlock()
			return nil
		}
		// Not posted yet (the post is under way or retrying): refine it
		// once it is.
		w.mu.Unlock()
		w.enqueueAfter(item{kind: itemRefine, key: ks}, time.Second)
		return nil
	}
	e.Diagnosis, e.refined = e.refined, nil
	inc := e.snapshot()
	w.mu.Unlock()
	if err := w.persist(ctx, inc); err != nil {
		w.log.Warn("refined diagnosis not saved", "key", ks, "err", err)
	}
	if inc.GroupID != "" {
		w.enqueueAfter(item{kind: itemGroup, key: inc.GroupID}, groupUpdateDelay)
		return nil
	}
	r, ok := w.notify.(Refiner)
	if !ok || inc.State != StateNotified {
		return nil
	}
	if err := r.Refined(ctx, inc); err != nil && !errors.Is(err, context.Canceled) {
		w.metrics.Error("notify")
		return err
	}
	// The registry's verdict may be a credentials problem the kubelet's
	// words did not show.
	w.searchSecretsLater(ctx, ks, inc)
	return nil
}
