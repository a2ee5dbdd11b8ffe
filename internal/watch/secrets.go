package watch

import (
	"context"
	"slices"
	"time"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/watch/creds"
)

// secretSearchTimeout bounds one search for working pull secrets: it reads
// ServiceAccounts, pods and Secrets and probes the registry with each.
const secretSearchTimeout = 15 * time.Second

// SecretFinder finds the pull secrets of a namespace that are proven to
// pull image (creds.FindWorkingPullSecrets, in production).
type SecretFinder func(ctx context.Context, namespace, image string, platform diagnose.Platform) ([]string, error)

// WithPullSecretSearch makes the watcher look for pull secrets that hold
// working credentials for an incident whose cause a pull secret can fix
// (Cause.Credentials), and keep them on the incident
// (Incident.ProvenSecrets, persisted). Default: no search. A posted
// incident is searched in the background and refined (Refiner) when one is
// found; Recheck and on-demand diagnosis search before they answer.
func WithPullSecretSearch(prober *diagnose.Prober) Option {
	return func(w *Watcher) error {
		if prober == nil {
			return errorf("WithPullSecretSearch: no prober")
		}
		w.findSecrets = func(ctx context.Context, ns, image string, p diagnose.Platform) ([]string, error) {
			return creds.FindWorkingPullSecrets(ctx, w.cs, ns, image, p, prober, creds.WithFindLogger(w.log))
		}
		return nil
	}
}

// wantsSecrets says whether a search could help inc.
func (w *Watcher) wantsSecrets(inc Incident) bool {
	return w.findSecrets != nil && inc.Diagnosis != nil && inc.Diagnosis.Cause.Credentials()
}

// searchSecrets looks for working pull secrets now; searched is false when
// no search applies or it failed. Secrets the pod already names are not a
// fix and are left out.
func (w *Watcher) searchSecrets(ctx context.Context, inc Incident) (proven []string, searched bool) {
	if !w.wantsSecrets(inc) {
		return nil, false
	}
	ctx, cancel := context.WithTimeout(ctx, secretSearchTimeout)
	defer cancel()
	found, err := w.findSecrets(ctx, inc.Key.Namespace, inc.Key.Image, inc.Diagnosis.Target.Platform)
	if err != nil {
		w.log.Warn("looking for working pull secrets", "incident", inc.ID, "err", err)
		return nil, false
	}
	return slices.DeleteFunc(found, func(s string) bool { return slices.Contains(inc.Diagnosis.Target.PullSecrets, s) }), true
}

// provenSecrets returns the incident's proven pull secrets, searching now
// (and keeping the answer) when it has not been searched.
func (w *Watcher) provenSecrets(ctx context.Context, id string) ([]string, error) {
	w.mu.Lock()
	ks, active := w.ids[id]
	var inc Incident
	done := false
	if active {
		e := w.incidents[ks]
		inc, done = e.snapshot(), e.secretsSearched
	}
	w.mu.Unlock()
	if !active {
		r, ok := w.store.Get(id)
		if !ok {
			return nil, errorf("%w: %q", ErrUnknownIncident, id)
		}
		inc = r.Incident()
		done = len(inc.ProvenSecrets) > 0
	}
	if done {
		return inc.ProvenSecrets, nil
	}
	proven, searched := w.searchSecrets(ctx, inc)
	if searched && active {
		w.keepSecrets(ctx, ks, id, proven)
	}
	return proven, nil
}

// keepSecrets stores a search's answer on the active incident and
// persists it; it reports whether it found the incident.
func (w *Watcher) keepSecrets(ctx context.Context, ks, id string, proven []string) (Incident, bool) {
	w.mu.Lock()
	e := w.incidents[ks]
	if e == nil || e.ID != id {
		w.mu.Unlock()
		return Incident{}, false
	}
	e.ProvenSecrets, e.secretsSearched = proven, true
	inc := e.snapshot()
	w.mu.Unlock()
	if err := w.persist(ctx, inc); err != nil {
		w.log.Warn("proven pull secrets not saved", "incident", id, "err", err)
	}
	return inc, true
}

// searchSecretsLater looks for working pull secrets for a posted incident
// in the background — in a storm that takes seconds the first message must
// not wait for — and, when it finds one, refines the message through a
// "secrets" work item. The search belongs to this leadership: it ends with
// ctx and lead waits for it.
func (w *Watcher) searchSecretsLater(ctx context.Context, ks string, inc Incident) {
	if !w.wantsSecrets(inc) {
		return
	}
	w.mu.Lock()
	e := w.incidents[ks]
	if e == nil || e.ID != inc.ID || e.secretsSearched || e.searching {
		w.mu.Unlock()
		return
	}
	e.searching = true
	w.mu.Unlock()
	w.bg.Go(func() {
		proven, searched := w.searchSecrets(ctx, inc)
		w.mu.Lock()
		if e := w.incidents[ks]; e != nil {
			e.searching = false
		}
		w.mu.Unlock()
		if !searched {
			return
		}
		if _, ok := w.keepSecrets(ctx, ks, inc.ID, proven); ok && len(proven) > 0 {
			w.enqueue(item{kind: itemSecrets, key: ks})
		}
	})
}

// syncSecrets edits a posted message to offer the pull secrets just
// proven, when it still offers fixes: a click since the post has rendered
// it itself, and a storm group's message lists workloads, not fixes.
func (w *Watcher) syncSecrets(ctx context.Context, ks string) error {
	w.mu.Lock()
	e := w.incidents[ks]
	if e == nil {
		w.mu.Unlock()
		return nil
	}
	inc := e.snapshot()
	w.mu.Unlock()
	if inc.GroupID != "" || (inc.State != StateNotified && inc.State != StateOpen) {
		return nil
	}
	if inc.NotifyRef == "" {
		if inc.State == StateOpen {
			// The post is under way: offer them once it is done.
			w.enqueueAfter(item{kind: itemSecrets, key: ks}, time.Second)
		}
		return nil
	}
	r, ok := w.notify.(Refiner)
	if !ok {
		return nil
	}
	if err := r.Refined(ctx, inc); err != nil {
		w.metrics.Error("notify")
		w.log.Warn("adding the working pull secret to the message", "incident", inc.ID, "err", err)
	}
	return nil
}
