package watch

// Crash safety: what pullfix writes down before it acts, and what it does
// with those notes when it starts leading again.
//
// Two acts cannot be undone or made idempotent by the API they use:
//
//   - A Slack root message (chat.postMessage has no idempotency key). The
//     watcher persists a post id (Incident.Posting) before the post; the
//     message carries it in its metadata. A leader that finds a post id
//     without a message reference asks the Notifier (PostFinder) to look
//     for that message in the channel's recent history and adopts it
//     instead of posting again.
//   - An approved patch. The approval is persisted (Incident.Fix) before
//     the dry run; a new leader hands every incident still fixing to the
//     resume hook (WithFixResume), which reads the workload
//     (Patcher.CheckFix: applied or not, audit Event ensured) and says in
//     Slack what became of the click.

import (
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

// FixIntent is an approved fix, persisted before the workload is touched.
type FixIntent struct {
	// Action is the button's action: set_image, rollback or add_secret.
	Action string `json:"action"`
	// Arg is the button's argument: a candidate id or the secret's name.
	Arg string `json:"arg"`
	// Target is what the fix sets: the image, or the pull secret's name.
	Target string `json:"target"`
	// By is the approver (a Slack user id).
	By string    `json:"by"`
	At time.Time `json:"at"`
}

// AddsSecret reports whether the fix adds a pull secret (else it sets an image).
func (f FixIntent) AddsSecret() bool { return f.Action == "add_secret" }

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
	if _, ok := w.notify.(PostFinder); !ok || !w.store.persistent() || inc.Posting != "" {
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
	if !ok || !w.store.persistent() {
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

// MarkFixingFor is MarkFixing with the approved fix recorded: the intent a
// restart resumes from (WithFixResume).
func (w *Watcher) MarkFixingFor(ctx context.Context, id string, fix FixIntent) error {
	if isGroupID(id) {
		return fmt.Errorf("%w: %q is a group; fix its incidents one by one", ErrUnknownIncident, id)
	}
	if fix.At.IsZero() {
		fix.At = time.Now()
	}
	return w.change(ctx, id, "fix", func(inc *Incident) (bool, error) {
		switch inc.State {
		case StateFixing:
			return false, nil
		case StateResolved, StateDismissed:
			return false, &TransitionError{ID: inc.ID, Op: "fix", State: inc.State}
		}
		f := fix
		inc.State, inc.By, inc.SnoozedUntil, inc.Fix = StateFixing, fix.By, time.Time{}, &f
		return true, nil
	})
}

// WithFixResume calls f each time this Watcher starts leading, after the
// state is loaded and the caches replayed and before its workers start,
// with the incidents a previous leader left fixing (an approved fix it may
// or may not have applied). f must return quickly — it runs before any
// incident is synced — and do its reads and posts in the background; while
// it reports an incident itself, it keeps the watcher's Resolved quiet
// for it (cmd/bot's bridge marks it in flight).
func WithFixResume(f func(ctx context.Context, fixing []Incident)) Option {
	return func(w *Watcher) { w.resume = f }
}

// resumeFixes hands the incidents left fixing to the resume hook.
func (w *Watcher) resumeFixes(ctx context.Context) {
	if w.resume == nil {
		return
	}
	var fixing []Incident
	for _, inc := range w.Incidents() {
		if inc.State == StateFixing && inc.Fix != nil {
			fixing = append(fixing, inc)
		}
	}
	if len(fixing) > 0 {
		w.log.Info("resuming fixes a previous leader left under way", "count", len(fixing))
		w.resume(ctx, fixing)
	}
}

// FixCheck is what a workload shows of an approved fix after a restart.
type FixCheck struct {
	// Applied: the workload has the fix (the image, or the pull secret).
	Applied bool
	// ByPullfix: its change-cause names this fix's approver and target, so
	// it was pullfix's patch (not someone's kubectl) that applied it.
	ByPullfix bool
	// Current is the container's image now.
	Current string
	// EventRecorded: the audit Event was missing and is now recorded.
	EventRecorded bool
}

// CheckFix reads the workload and says whether fix reached it. When it did
// through pullfix's patch, it makes sure the audit Event exists (a crash
// may have come between the patch and the Event): listed by the
// workload's UID and reason, created when none names this fix.
func (p *Patcher) CheckFix(ctx context.Context, k Key, fix FixIntent, approver string) (FixCheck, error) {
	lw, err := p.read(ctx, k.Namespace, k.Workload)
	if err != nil {
		return FixCheck{}, err
	}
	c, ok := lw.container(k.Container)
	if !ok {
		return FixCheck{}, &StaleError{Workload: k.Workload, Container: k.Container, Want: k.Image}
	}
	out := FixCheck{Current: c.image}
	reason := ReasonImageUpdated
	if fix.AddsSecret() {
		reason = ReasonPullSecretAdded
		out.Applied = slices.ContainsFunc(lw.spec.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == fix.Target })
	} else {
		out.Applied = c.image == fix.Target
	}
	cause := lw.obj.GetAnnotations()[ChangeCauseAnnotation]
	out.ByPullfix = out.Applied && strings.HasPrefix(cause, "pullfix: ") && strings.Contains(cause, fix.Target) && strings.Contains(cause, approver)
	if !out.ByPullfix {
		return out, nil
	}
	evs, err := p.cs.CoreV1().Events(k.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.SelectorFromSet(fields.Set{"involvedObject.uid": string(lw.obj.GetUID()), "reason": reason}).String(),
	})
	if err != nil {
		return out, fmt.Errorf("looking for the audit Event of %s: %w", k.Workload, err)
	}
	for _, ev := range evs.Items {
		if strings.Contains(ev.Message, fix.Target) && strings.Contains(ev.Message, approver) {
			return out, nil
		}
	}
	msg := fmt.Sprintf("Container %q image changed from %s to %s, approved by %s", k.Container, k.Image, fix.Target, approver)
	if vol, ok := ImageVolumeName(k.Container); ok {
		msg = fmt.Sprintf("Image volume %q reference changed from %s to %s, approved by %s", vol, k.Image, fix.Target, approver)
	}
	if fix.AddsSecret() {
		msg = fmt.Sprintf("imagePullSecret %q added so container %q can pull %s, approved by %s", fix.Target, k.Container, k.Image, approver)
	}
	if err := p.recordEvent(ctx, lw, lw.obj, reason, msg); err != nil {
		return out, fmt.Errorf("recording the audit Event of %s: %w", k.Workload, err)
	}
	p.log.Info("audit Event recorded after a restart (the patch was applied before it)", "namespace", k.Namespace, "workload", k.Workload)
	out.EventRecorded = true
	return out, nil
}
