package watch

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/pullfix/pullfix/internal/watch/incident"
)

// Errors of the lifecycle methods; test with errors.Is.
var (
	// ErrUnknownIncident: no incident (or group) has this ID here — never
	// seen, or forgotten after the state TTL.
	ErrUnknownIncident = errors.New("unknown incident")
	// ErrNotLeader: this replica is not leading, so it holds no incidents;
	// only the leader holds the Slack connection that calls these.
	ErrNotLeader = errors.New("not the leader")
	// ErrNotFailing: Recheck found no failing pod to diagnose; the
	// incident is resolving.
	ErrNotFailing = errors.New("no pod of the incident is failing")
)

// TransitionError: the incident's state does not allow the change asked
// for; see incident.TransitionError.
type TransitionError = incident.TransitionError

// FixInProgressError: MarkFixing found a fix under way (a second click);
// see incident.FixInProgressError.
type FixInProgressError = incident.FixInProgressError

// Incident returns the incident with this ID: an active one, or a closed
// one the state still remembers (without pods).
func (w *Watcher) Incident(id string) (Incident, bool) {
	w.mu.Lock()
	if ks, ok := w.ids[id]; ok {
		inc := w.incidents[ks].snapshot()
		w.mu.Unlock()
		return inc, true
	}
	w.mu.Unlock()
	if r, ok := w.store.Get(id); ok {
		return r.Incident(), true
	}
	return Incident{}, false
}

// Dismiss closes an incident (or every member of a group) without a fix:
// nothing more is posted about it, and the same workload, container and
// image stays quiet even if it fails again later; a new image is a new
// incident. by names who dismissed it.
func (w *Watcher) Dismiss(ctx context.Context, id, by string) error {
	return w.change(ctx, id, "dismiss", func(inc *Incident) (bool, error) { return incident.Dismiss(inc, by) })
}

// Snooze silences an incident (or every open member of a group) until
// until; then, if it still fails, it is diagnosed again and posted anew.
// An incident fixed meanwhile is reported resolved as usual.
func (w *Watcher) Snooze(ctx context.Context, id string, until time.Time, by string) error {
	if !until.After(time.Now()) {
		return fmt.Errorf("snooze %s: until %s is not in the future", id, until.Format(time.RFC3339))
	}
	return w.change(ctx, id, "snooze", func(inc *Incident) (bool, error) { return incident.Snooze(inc, until, by) })
}

// MarkFixing records that by's fix is being applied (before patching):
// the guard against a double click. The check and the mark are one step
// under the watcher's lock, so of two concurrent clicks exactly one goes
// on; the other gets *FixInProgressError. Once the watcher applies the fix
// (SetImage, AddPullSecret) and until FollowFix or ClearFixing ends it, the
// watcher posts no "resolved" of its own: the fixer reports the outcome. A
// fix applied elsewhere after MarkFixing is reported resolved by the
// watcher, naming the approver.
func (w *Watcher) MarkFixing(ctx context.Context, id, by string) error {
	if isGroupID(id) {
		return fmt.Errorf("%w: %q is a group; fix its incidents one by one", ErrUnknownIncident, id)
	}
	return w.change(ctx, id, "fix", func(inc *Incident) (bool, error) { return incident.MarkFixing(inc, by) })
}

// Recheck diagnoses the incident again now, from one of its failing pods,
// and returns it with the fresh diagnosis (also kept and persisted). It
// posts nothing: the caller shows the answer.
func (w *Watcher) Recheck(ctx context.Context, id string) (Incident, error) {
	if !w.IsLeader() {
		return Incident{}, ErrNotLeader
	}
	w.mu.Lock()
	ks, ok := w.ids[id]
	if !ok {
		w.mu.Unlock()
		if inc, ok := w.Incident(id); ok {
			return inc, fmt.Errorf("recheck %s: %w (it is %s)", id, ErrNotFailing, inc.State)
		}
		return Incident{}, fmt.Errorf("%w: %q", ErrUnknownIncident, id)
	}
	inc := w.incidents[ks].snapshot()
	w.mu.Unlock()
	if len(inc.Pods) == 0 {
		return inc, fmt.Errorf("recheck %s: %w", id, ErrNotFailing)
	}
	d, err := w.diagnoseIncident(ctx, inc)
	if err != nil {
		return inc, fmt.Errorf("recheck %s: %w", id, err)
	}
	inc.Diagnosis = &d
	// The person asked and waits for the answer: look for working pull
	// secrets again now.
	proven, searched := w.searchSecrets(ctx, inc)
	// What was proven for the old diagnosis is not carried over.
	w.mu.Lock()
	if e := w.incidents[ks]; e != nil {
		e.Diagnosis = &d
		e.ProvenSecrets, e.secretsSearched = proven, searched
		inc = e.snapshot()
	} else {
		inc.ProvenSecrets = proven
	}
	w.mu.Unlock()
	if err := w.persist(ctx, inc); err != nil {
		w.log.Warn("recheck: state not saved", "id", id, "err", err)
	}
	return inc, nil
}

// change applies f to the incident, or to every active member of a group,
// persists the result before returning, and leaves the report to a worker.
func (w *Watcher) change(ctx context.Context, id, op string, f func(*Incident) (bool, error)) error {
	if !w.IsLeader() {
		return ErrNotLeader
	}
	w.mu.Lock()
	var keys []string
	if isGroupID(id) {
		g := w.groups[id]
		if g == nil {
			w.mu.Unlock()
			return fmt.Errorf("%w: group %q", ErrUnknownIncident, id)
		}
		for ks, e := range w.incidents {
			if e.GroupID == id || (ks == g.seed && e.GroupID == "") {
				keys = append(keys, ks)
			}
		}
	} else if ks, ok := w.ids[id]; ok {
		keys = []string{ks}
	} else {
		w.mu.Unlock()
		if r, ok := w.store.Get(id); ok {
			inc := r.Incident()
			if _, err := f(&inc); err != nil {
				return err
			}
			return nil // closed and its pods gone: nothing changes
		}
		return fmt.Errorf("%w: %q", ErrUnknownIncident, id)
	}
	now := time.Now()
	var changed []Incident
	var firstErr error
	for _, ks := range keys {
		e := w.incidents[ks]
		inc := e.Incident
		ok, err := f(&inc)
		if err != nil {
			if !isGroupID(id) {
				firstErr = err
			}
			continue
		}
		if !ok {
			continue
		}
		inc.Changed = now
		e.Incident = inc
		if inc.State != StateFixing {
			e.fixInFlight = false // the fix ended or was cleared
		}
		changed = append(changed, e.snapshot())
	}
	w.mu.Unlock()
	if firstErr != nil {
		return firstErr
	}
	if len(changed) == 0 {
		return nil
	}
	if err := w.persist(ctx, changed...); err != nil {
		return err
	}
	for _, inc := range changed {
		w.log.Info("incident "+string(inc.State), "id", inc.ID, "by", inc.By, "until", inc.SnoozedUntil)
		w.enqueue(item{kind: itemIncident, key: inc.Key.String()})
	}
	return nil
}

// syncIncident drives one incident through its lifecycle: report a change
// made through the API, notify a new incident, wake a snoozed one, and
// report it resolved once its pods no longer fail and the workload is ready.
func (w *Watcher) syncIncident(ctx context.Context, ks string) (time.Duration, error) {
	w.mu.Lock()
	e := w.incidents[ks]
	if e == nil {
		w.mu.Unlock()
		return 0, nil
	}
	if e.State == StateResolved && len(e.pods) > 0 {
		// Failing again after it was reported resolved: a new occurrence.
		now := time.Now()
		e.State, e.reported, e.Opened, e.Changed = StateOpen, StateOpen, now, now
		e.NotifyRef, e.GroupID, e.By, e.Diagnosis, e.Posting, e.Fix = "", "", "", nil, "", nil
		e.ProvenSecrets, e.secretsSearched, e.fixInFlight, e.fixReported = nil, false, false, false
		w.noteDetectionLocked(e.Key.Image, now)
	}
	inc := e.snapshot()
	reported := e.reported
	if len(e.pods) > 0 {
		e.emptySince = time.Time{}
	} else if e.emptySince.IsZero() {
		e.emptySince = time.Now()
	}
	emptySince := e.emptySince
	w.mu.Unlock()

	if inc.State != reported && reported != StateOpen && inc.State != StateOpen {
		if err := w.reportChange(ctx, inc); err != nil {
			return 0, err
		}
		w.mu.Lock()
		if e := w.incidents[ks]; e != nil && e.State == inc.State {
			e.reported = inc.State
		}
		w.mu.Unlock()
	}
	now := time.Now()
	switch {
	case inc.State.Closed():
		if len(inc.Pods) == 0 {
			w.drop(ks)
		}
		return 0, nil
	case inc.State == StateSnoozed && len(inc.Pods) > 0:
		if now.Before(inc.SnoozedUntil) {
			return inc.SnoozedUntil.Sub(now), nil
		}
		w.log.Info("snoozed incident wakes still failing; posting it again", "id", inc.ID)
		w.mu.Lock()
		w.noteDetectionLocked(inc.Key.Image, now)
		w.mu.Unlock()
		return 0, w.notifyIncident(ctx, ks, inc, now)
	case len(inc.Pods) == 0:
		if inc.State == StateOpen {
			w.drop(ks)
			w.forget(ctx, inc)
			return 0, nil
		}
		ready, err := w.inputs.workloadReady(ctx, inc.Key)
		if err != nil {
			return 0, err
		}
		if !ready && time.Since(emptySince) < w.resolveTimeout {
			return 2 * time.Second, nil
		}
		return 0, w.resolve(ctx, ks)
	case inc.State == StateOpen:
		return 0, w.notifyIncident(ctx, ks, inc, inc.Opened)
	}
	return 0, nil
}

// reportChange tells the notifier about a state set through the API.
func (w *Watcher) reportChange(ctx context.Context, inc Incident) error {
	if inc.GroupID != "" {
		w.enqueueAfter(item{kind: itemGroup, key: inc.GroupID}, groupUpdateDelay)
		return nil
	}
	if err := w.notify.Updated(ctx, inc); err != nil {
		w.metrics.Error("notify")
		return fmt.Errorf("notify update %s: %w", inc.ID, err)
	}
	return nil
}

// notifyIncident diagnoses and posts an incident (new, or a snoozed one
// waking); detected is when it (re)entered notification, for grouping.
func (w *Watcher) notifyIncident(ctx context.Context, ks string, inc Incident, detected time.Time) (err error) {
	began := time.Now()
	pi := w.beginPost(ctx, ks, inc) // the post's intent is written while the incident is diagnosed
	defer w.endPost(ks, inc.ID, pi)
	d, err := w.diagnoseWithin(ctx, ks, inc)
	if err != nil {
		return err
	}
	diagnosed := time.Now()
	// Where the time to a notification went: waiting in the queue, at the
	// registry, at Slack.
	defer func() {
		if err != nil {
			return
		}
		w.log.Info("incident notified", "id", inc.ID, "key", ks, "cause", d.Cause, "after", time.Since(detected).Round(time.Millisecond),
			"queued", began.Sub(detected).Round(time.Millisecond), "diagnosis", diagnosed.Sub(began).Round(time.Millisecond),
			"post", time.Since(diagnosed).Round(time.Millisecond))
	}()
	prev := inc.State
	inc.Diagnosis = &d
	// The message's buttons name this diagnosis's candidates: keep it on
	// the incident before posting, so a click that arrives while the post
	// returns (a fast person, a second replica's user) finds them.
	w.mu.Lock()
	if e := w.incidents[ks]; e != nil && e.ID == inc.ID {
		e.Diagnosis = &d
	}
	w.mu.Unlock()
	inc.State = StateNotified
	inc.SnoozedUntil = time.Time{}
	inc.GroupID = ""
	if gk, ok := w.groupKeyOf(&d, inc.Key); ok {
		return w.notifyGrouped(ctx, ks, prev, inc, gk, detected)
	}
	ref, err := w.postOnce(ctx, ks, inc, pi)
	if err != nil {
		w.metrics.Error("notify")
		return fmt.Errorf("notify %s: %w", ks, err)
	}
	w.metrics.diagnosed(d, detected)
	w.commitNotified(ctx, ks, prev, inc, ref, "")
	w.searchSecretsLater(ctx, ks, inc)
	w.afterOpened(ctx, inc, ref)
	return nil
}

// commitNotified records that inc was posted (ref) or joined group
// groupID, unless its state changed meanwhile through the API (then the
// newer state stands and is reported next), and persists it with extra.
// A failed write is retried by a "state" item: the post itself must not
// be repeated.
func (w *Watcher) commitNotified(ctx context.Context, ks string, prev State, inc Incident, ref, groupID string, extra ...Incident) {
	now := time.Now()
	w.mu.Lock()
	e := w.incidents[ks]
	if e != nil {
		e.Diagnosis, e.NotifyRef, e.GroupID = inc.Diagnosis, ref, groupID
		if e.State == prev {
			e.State, e.SnoozedUntil, e.Changed = StateNotified, time.Time{}, now
			e.reported = StateNotified
		} else {
			// Dismissed (say) while being posted: report that next.
			e.reported = StateNotified
			defer w.enqueue(item{kind: itemIncident, key: ks})
		}
		extra = append(extra, e.snapshot())
	}
	w.mu.Unlock()
	if err := w.persist(ctx, extra...); err != nil {
		w.log.Error("notified, but the state could not be saved; retrying", "key", ks, "err", err)
		w.enqueueAfter(item{kind: itemState}, time.Second)
	}
}

// resolve reports the incident resolved (a group member through its
// group) and closes it. The report goes first: if it fails, the sync is
// retried and nothing is reported twice.
func (w *Watcher) resolve(ctx context.Context, ks string) error {
	w.mu.Lock()
	e := w.incidents[ks]
	if e == nil || len(e.pods) > 0 {
		w.mu.Unlock()
		return nil
	}
	inc := e.snapshot()
	// A fix applied through pullfix reports its own outcome: while it is
	// under way, and once its follow-up saw the rollout ready, the
	// watcher posts no second "resolved".
	reportedByFix := e.fixInFlight || e.fixReported
	w.mu.Unlock()
	inc.State, inc.Changed = StateResolved, time.Now()
	if inc.GroupID == "" && !reportedByFix {
		if err := w.notify.Resolved(ctx, inc); err != nil {
			w.metrics.Error("notify")
			return fmt.Errorf("notify resolved %s: %w", ks, err)
		}
	}
	w.mu.Lock()
	if e := w.incidents[ks]; e != nil {
		e.State, e.Changed, e.reported = inc.State, inc.Changed, inc.State
	}
	w.mu.Unlock()
	w.log.Info("incident resolved", "id", inc.ID, "key", ks)
	w.drop(ks)
	if err := w.persist(ctx, inc); err != nil {
		w.log.Error("resolved, but the state could not be saved; retrying", "key", ks, "err", err)
		w.enqueueAfter(item{kind: itemState}, time.Second)
	}
	if inc.GroupID != "" {
		w.enqueueAfter(item{kind: itemGroup, key: inc.GroupID}, groupUpdateDelay)
	}
	return nil
}
