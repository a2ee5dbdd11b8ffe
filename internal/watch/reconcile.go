package watch

// Crash safety: what pullfix writes down before it acts, and what it does
// with those notes when it starts leading again.
//
// Two acts cannot be undone or made idempotent by the API they use:
//
//   - A Slack root message (chat.postMessage has no idempotency key). The
//     watcher persists a post id (Incident.Posting, in the incident's
//     state record) before the post; the message carries it in its
//     metadata. A leader that finds a post id without a message reference
//     asks the Notifier (PostFinder) to look for that message in the
//     channel's recent history and adopts it instead of posting again.
//   - An approved patch. The approval is persisted (Incident.Fix, by
//     MarkFixingFor) before the dry run; a new leader reads, for every
//     incident still fixing, whether the fix reached the workload
//     (fix.Patcher.CheckFix: applied or not, audit Event ensured) and has
//     the Notifier (FixResumer) say in Slack what became of the click.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pullfix/pullfix/internal/watch/fix"
	"github.com/pullfix/pullfix/internal/watch/incident"
)

// FixIntent is an approved fix, persisted before the workload is touched;
// see incident.FixIntent.
type FixIntent = incident.FixIntent

// PostFinder is implemented by Notifiers that can find a message they
// posted earlier (Slack: by the post id in the message's metadata, in the
// channel's recent history). The watcher uses it only for an incident
// whose post may have gone out before a crash.
type PostFinder interface {
	// FindPosted returns the reference of the message posted for inc with
	// post id inc.Posting, or "" when there is none.
	FindPosted(ctx context.Context, inc Incident) (string, error)
	// Adopted brings a found message (inc.NotifyRef) up to date with inc.
	Adopted(ctx context.Context, inc Incident) error
}

// newPostID is a short random id naming one root post.
func newPostID() string { return strings.ToLower(rand.Text()[:12]) }

// postIntent is a new post id being made durable (persisted with the
// incident) while the incident is diagnosed, so the write costs the first
// message no time of its own in the common case.
type postIntent struct {
	id   string
	done chan error // the write's outcome, once
	used bool       // a post was attempted with it: it must stay until its reference is known
}

// beginPost starts writing a new post id for the incident at ks. It
// returns nil when no intent is needed (a Notifier that cannot find its
// posts, no persistent state) or when the incident carries a post id from
// before a restart, which postOnce must look for first.
func (w *Watcher) beginPost(ctx context.Context, ks string, inc Incident) *postIntent {
	if _, ok := w.notify.(PostFinder); !ok || !w.store.Persistent() || inc.Posting != "" {
		return nil
	}
	w.mu.Lock()
	e := w.incidents[ks]
	if e == nil || e.ID != inc.ID || e.Posting != "" {
		w.mu.Unlock()
		return nil
	}
	pi := &postIntent{id: newPostID(), done: make(chan error, 1)}
	// The state it is persisted in is the incident's current one (open, or
	// snoozed and waking), so a restart posts — or finds — it again.
	e.Posting = pi.id
	snap := e.snapshot()
	w.mu.Unlock()
	go func() { pi.done <- w.persist(ctx, snap) }()
	return pi
}

// endPost forgets a post id no post was attempted with (the diagnosis
// failed, or the incident joined a storm group's message): nothing can
// have been posted under it.
func (w *Watcher) endPost(ks, id string, pi *postIntent) {
	if pi == nil || pi.used {
		return
	}
	<-pi.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if e := w.incidents[ks]; e != nil && e.ID == id && e.Posting == pi.id {
		e.Posting = ""
	}
}

// postOnce posts inc's root message at most once across crashes: the post
// id (beginPost's, or one written now) is durable before the post, and
// when the incident carries a post id from before a restart (a crash came
// between an earlier post and its state write) that message is looked for
// before posting again.
func (w *Watcher) postOnce(ctx context.Context, ks string, inc Incident, pi *postIntent) (string, error) {
	finder, ok := w.notify.(PostFinder)
	if !ok || !w.store.Persistent() {
		return w.notify.Opened(ctx, inc)
	}
	if pi == nil && inc.Posting != "" {
		ref, err := finder.FindPosted(ctx, inc)
		if err != nil {
			// Posting now could post twice; the item is retried.
			return "", fmt.Errorf("looking for the message posted before a restart: %w", err)
		}
		if ref != "" {
			inc.NotifyRef = ref
			if err := finder.Adopted(ctx, inc); err != nil {
				w.log.Warn("found the incident's message posted before a restart, but could not update it", "id", inc.ID, "ref", ref, "err", err)
			}
			w.log.Info("found the incident's message posted before a restart; not posting it again", "id", inc.ID, "ref", ref)
			w.clearPosting(ks, inc.ID)
			return ref, nil
		}
	}
	if pi == nil {
		// Not found, or the incident changed since beginPost: a new
		// intent, written now.
		id := newPostID()
		w.mu.Lock()
		e := w.incidents[ks]
		if e == nil || e.ID != inc.ID {
			w.mu.Unlock()
			return w.notify.Opened(ctx, inc)
		}
		e.Posting = id
		intent := e.snapshot()
		w.mu.Unlock()
		if err := w.persist(ctx, intent); err != nil {
			return "", fmt.Errorf("recording the post before making it: %w", err)
		}
		inc.Posting = id
	} else {
		if err := <-pi.done; err != nil {
			pi.done <- err // endPost reads it again
			return "", fmt.Errorf("recording the post before making it: %w", err)
		}
		pi.done <- nil
		pi.used = true
		inc.Posting = pi.id
	}
	ref, err := w.notify.Opened(ctx, inc)
	if err != nil {
		return "", err
	}
	w.clearPosting(ks, inc.ID)
	return ref, nil
}

// clearPosting forgets the post id once the post's reference is known
// (commitNotified persists the two together).
func (w *Watcher) clearPosting(ks, id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e := w.incidents[ks]; e != nil && e.ID == id {
		e.Posting = ""
	}
}

// MarkFixingFor is MarkFixing with the approved fix recorded (persisted
// with the incident before anything is changed): the intent a new leader
// resumes from (resumeFixes). The double-click guard is MarkFixing's.
func (w *Watcher) MarkFixingFor(ctx context.Context, id string, f FixIntent) error {
	if isGroupID(id) {
		return fmt.Errorf("%w: %q is a group; fix its incidents one by one", ErrUnknownIncident, id)
	}
	if f.At.IsZero() {
		f.At = time.Now()
	}
	return w.change(ctx, id, "fix", func(inc *Incident) (bool, error) { return incident.MarkFixingFor(inc, f) })
}

// FixResumer is implemented by Notifiers that answer an approved fix a
// previous leader (or process) left under way, once the watcher has read
// whether it reached the workload: applied, follow its rollout (through
// FollowFix); not applied, clear it (ClearFixing) and ask the approver to
// click again. inc.Fix is the fix; inc.ProvenSecrets is current, so a pull
// secret not yet added is offered again.
type FixResumer interface {
	ResumeFix(ctx context.Context, inc Incident, applied bool)
}

// resumeFixes takes over the fixes a previous leader left under way. It
// runs when this leadership starts, before its workers: each such
// incident is marked as the fixer's to report (no "resolved" of the
// watcher's own), and read and answered in the background — goroutines of
// this leadership (w.bg), which lead waits for.
func (w *Watcher) resumeFixes(ctx context.Context) {
	resumer, ok := w.notify.(FixResumer)
	if !ok || w.patcher == nil {
		return
	}
	var fixing []Incident
	w.mu.Lock()
	for _, e := range w.incidents {
		if e.State == StateFixing && e.Fix != nil {
			e.fixInFlight = true
			fixing = append(fixing, e.snapshot())
		}
	}
	w.mu.Unlock()
	if len(fixing) == 0 {
		return
	}
	w.log.Info("resuming fixes a previous leader left under way", "count", len(fixing))
	for _, inc := range fixing {
		w.bg.Go(func() { w.resumeFix(ctx, resumer, inc) })
	}
}

// resumeFix reads whether inc's recorded fix reached the workload (the
// audit Event made sure of when it did), retrying while the API server
// cannot answer, and hands the answer to the Notifier.
func (w *Watcher) resumeFix(ctx context.Context, resumer FixResumer, inc Incident) {
	f := *inc.Fix
	var chk fix.FixCheck
	delay := 500 * time.Millisecond
	for {
		var err error
		chk, err = w.patcher.CheckFix(ctx, inc.Key, f)
		var stale *fix.StaleError
		if err == nil || errors.Is(err, ErrWorkloadNotFound) || errors.As(err, &stale) {
			break
		}
		w.log.Warn("reading whether an approved fix was applied before the restart; retrying", "incident", inc.ID, "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Second)
	}
	w.log.Info("resuming a fix left under way by a previous process", "incident", inc.ID, "approver", f.By,
		"target", f.Target, "applied", chk.Applied, "by_pullfix", chk.ByPullfix, "audit_event_recorded", chk.EventRecorded)
	if !chk.Applied && f.AddsSecret() {
		// The re-rendered message offers the secret again.
		if proven, err := w.provenSecrets(ctx, inc.ID); err == nil {
			inc.ProvenSecrets = proven
		}
	}
	if cur, ok := w.Incident(inc.ID); ok {
		inc.NotifyRef, inc.Pods = cur.NotifyRef, cur.Pods
	}
	resumer.ResumeFix(ctx, inc, chk.Applied)
	if !chk.Applied {
		// The resumer cleared the fix (ClearFixing); should it not have,
		// the watcher reports the outcome itself from now on.
		w.setFixInFlight(inc.ID, false)
	}
}
