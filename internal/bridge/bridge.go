// Package bridge is the adapter between the two edges that never import
// each other, the watcher (internal/watch) and the Slack app
// (internal/slackapp); cmd/bot builds one and hands it to both.
package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/pullfix/pullfix/internal/approval"
	"github.com/pullfix/pullfix/internal/gitops"
	"github.com/pullfix/pullfix/internal/slackapp"
	"github.com/pullfix/pullfix/internal/watch"
	"github.com/pullfix/pullfix/internal/watch/fix"
)

// Bridge joins the two edges that never import each other: it is the
// watcher's Notifier (posting through the Slack app) and the Slack app's
// Incidents, Fixer and OnDemand (acting through the watcher). It holds no
// state and makes no decision: it converts types and errors. Every rule —
// the double-click guard, which image a button deploys, proven pull
// secrets, who posts "resolved" — is the watcher's.
type Bridge struct {
	w       *watch.Watcher
	app     *slackapp.App
	cluster string
	log     *slog.Logger
	gitops  *gitops.Guard     // GitOps owners and their write guard (issue #17); nil: off
	rbac    *approval.Binding // approvals bound to Kubernetes RBAC (issue #17); nil: off
}

// New is a bridge for cluster, with the GitOps guard and the RBAC binding
// of issue #17 (either nil: off). SetApp and SetWatcher complete it before
// the watcher runs, so before any call.
func New(cluster string, log *slog.Logger, guard *gitops.Guard, rbac *approval.Binding) *Bridge {
	return &Bridge{cluster: cluster, log: log, gitops: guard, rbac: rbac}
}

// SetApp is the Slack app the bridge posts through.
func (b *Bridge) SetApp(app *slackapp.App) { b.app = app }

// App is the Slack app set by SetApp (nil on the console).
func (b *Bridge) App() *slackapp.App { return b.app }

// SetWatcher is the watcher the bridge acts through.
func (b *Bridge) SetWatcher(w *watch.Watcher) { b.w = w }

// ---- watch.Notifier ----

func (b *Bridge) Opened(ctx context.Context, inc watch.Incident) (string, error) {
	b.gitops.Detect(ctx, inc.ID, inc.Key.Namespace, inc.Key.Workload)
	return b.app.Opened(ctx, b.toSlack(inc))
}

// Refined edits the message: the registry answered late, or secrets were proven.
func (b *Bridge) Refined(ctx context.Context, inc watch.Incident) error {
	if inc.NotifyRef == "" {
		return nil
	}
	return b.app.Refresh(ctx, b.toSlack(inc))
}

// Updated: a click's change; the Slack app edits its message and any storm digest.
func (b *Bridge) Updated(ctx context.Context, inc watch.Incident) error {
	return b.app.Updated(ctx, b.toSlack(inc))
}

// Detected and Forgotten (watch.Detector) name a new incident in its
// channel's storm digest, and take one that closed unnotified out of it.
func (b *Bridge) Detected(ctx context.Context, inc watch.Incident) {
	b.app.Detected(ctx, b.toSlack(inc))
}
func (b *Bridge) Forgotten(ctx context.Context, inc watch.Incident) { b.app.Forget(ctx, inc.ID) }

// Resolved edits the message to its end; the watcher calls it only when no
// fix of pullfix's reported the outcome already.
func (b *Bridge) Resolved(ctx context.Context, inc watch.Incident) error {
	defer b.gitops.Forget(inc.ID)
	if inc.NotifyRef == "" {
		return nil
	}
	r := slackapp.Resolution{}
	if inc.State == watch.StateFixing {
		r.Actor = inc.By
	}
	r.ReadyPods, r.Desired, r.Image = b.w.Readiness(ctx, inc.Key)
	return b.app.Resolved(ctx, b.toSlack(inc), r)
}

func (b *Bridge) UpdatedGroup(ctx context.Context, g watch.Group) error {
	if g.NotifyRef == "" || g.Diagnosis == nil {
		return nil
	}
	in := slackapp.GroupInput{Cluster: b.cluster, GroupID: g.ID, Diagnosis: *g.Diagnosis}
	st := g.Summary()
	in.State, in.Until, in.Actor = messageState(st.State), st.Until, st.By
	members := make([]slackapp.Incident, len(g.Members))
	for i, m := range g.Members {
		members[i] = b.toSlack(m)
	}
	return b.app.UpdatedGroup(ctx, g.NotifyRef, in, members)
}

// ---- crash safety: watch.PostFinder, watch.FixResumer (watch's reconcile.go) ----
func (b *Bridge) FindPosted(ctx context.Context, inc watch.Incident) (string, error) {
	return b.app.FindPosted(ctx, b.toSlack(inc), inc.Opened)
}
func (b *Bridge) Adopted(ctx context.Context, inc watch.Incident) error {
	return b.app.Adopt(ctx, b.toSlack(inc))
}
func (b *Bridge) ResumeFix(ctx context.Context, inc watch.Incident, applied bool) {
	b.app.ResumeFix(ctx, b.toSlack(inc), slackapp.PendingFix{Action: slackapp.Action(inc.Fix.Action), Arg: inc.Fix.Arg, Target: inc.Fix.Target, By: inc.Fix.By, Applied: applied})
}

// ---- slackapp.Incidents ----

func (b *Bridge) Incident(ctx context.Context, id string) (slackapp.Incident, error) {
	if g, ok := b.w.Group(id); ok && len(g.Members) > 0 {
		inc := b.toSlack(g.Members[0])
		inc.ID, inc.Ref = g.ID, g.NotifyRef
		return inc, nil
	}
	inc, ok := b.w.Incident(id)
	if !ok {
		return slackapp.Incident{}, slackErr(fmt.Errorf("%w: %q", watch.ErrUnknownIncident, id))
	}
	b.gitops.Detect(ctx, inc.ID, inc.Key.Namespace, inc.Key.Workload) // a click judges the workload as it is now
	return b.toSlack(inc), nil
}

func (b *Bridge) List(_ context.Context, namespace string) ([]slackapp.Incident, error) {
	var out []slackapp.Incident
	for _, inc := range b.w.Incidents() {
		if namespace == "" || inc.Key.Namespace == namespace {
			out = append(out, b.toSlack(inc))
		}
	}
	return out, nil
}

func (b *Bridge) MarkFixing(ctx context.Context, id string, f slackapp.PendingFix) error {
	return slackErr(b.w.MarkFixingFor(ctx, id, watch.FixIntent{Action: string(f.Action), Arg: f.Arg, Target: f.Target, By: f.By, Approver: approval.Approver(f.By)}))
}

func (b *Bridge) ClearFixing(ctx context.Context, id string) error {
	return slackErr(b.w.ClearFixing(ctx, id))
}

func (b *Bridge) Dismiss(ctx context.Context, id, user string) error {
	return slackErr(b.w.Dismiss(ctx, id, user))
}

func (b *Bridge) Snooze(ctx context.Context, id, user string, until time.Time) error {
	return slackErr(b.w.Snooze(ctx, id, until, user))
}

func (b *Bridge) Recheck(ctx context.Context, id string) (slackapp.Incident, error) {
	inc, err := b.w.Recheck(ctx, id)
	if err != nil {
		return slackapp.Incident{}, slackErr(err)
	}
	return b.toSlack(inc), nil
}

// ---- slackapp.Fixer ----

func (b *Bridge) SetImage(ctx context.Context, id, candidateID, approver string) (slackapp.FixResult, error) {
	return b.setImage(ctx, id, candidateID, approver, b.w.SetImage)
}

// SetImageTemporary is the opt-in temporary live patch of a GitOps-owned workload (slackapp.TemporaryFixer).
func (b *Bridge) SetImageTemporary(ctx context.Context, id, candidateID, approver string) (slackapp.FixResult, error) {
	return b.setImage(ctx, id, candidateID, approver, b.w.SetTemporaryImage)
}

// setImage acts as the approver (their Kubernetes identity, with RBAC-bound approvals).
func (b *Bridge) setImage(ctx context.Context, id, candidateID, approver string, set func(context.Context, string, string, string) (fix.FixResult, error)) (slackapp.FixResult, error) {
	ctx, who, err := b.rbac.ActAs(ctx, approver)
	if err != nil {
		return slackapp.FixResult{}, slackErr(err)
	}
	res, err := set(ctx, id, candidateID, who)
	if err != nil {
		return slackapp.FixResult{}, slackErr(err)
	}
	return slackapp.FixResult{From: res.OldImage, To: res.NewImage, Note: strings.Join(res.Warnings, "; ")}, nil
}

func (b *Bridge) AddPullSecret(ctx context.Context, id, secret, approver string) (slackapp.FixResult, error) {
	ctx, who, err := b.rbac.ActAs(ctx, approver)
	if err != nil {
		return slackapp.FixResult{}, slackErr(err)
	}
	res, err := b.w.AddPullSecret(ctx, id, secret, who)
	if err != nil {
		return slackapp.FixResult{}, slackErr(err)
	}
	return slackapp.FixResult{To: res.PullSecret, Note: strings.Join(res.Warnings, "; ")}, nil
}

func (b *Bridge) FollowRollout(ctx context.Context, id string, progress func(slackapp.RolloutProgress)) (slackapp.RolloutResult, error) {
	st, d, err := b.w.FollowFix(ctx, id, func(s fix.RolloutStatus) {
		progress(slackapp.RolloutProgress{Ready: int(s.ReadyPods), Desired: int(s.Desired), Message: s.Summary})
	})
	rr := slackapp.RolloutResult{Ready: st.Ready, ReadyPods: int(st.ReadyPods), Desired: int(st.Desired), Image: st.Image, Message: st.Summary, Diagnosis: d}
	if errors.Is(err, watch.ErrUnknownIncident) {
		return rr, slackErr(err)
	}
	return rr, err
}

// ---- slackapp.OnDemand ----

func (b *Bridge) Diagnose(ctx context.Context, namespace, kind, name string) (slackapp.Incident, bool, error) {
	inc, healthy, err := b.w.DiagnoseNow(ctx, namespace, kind, name)
	if err != nil {
		return slackapp.Incident{}, false, err
	}
	if healthy {
		return slackapp.Incident{Namespace: inc.Key.Namespace, Kind: inc.Key.Kind, Name: inc.Key.Name}, true, nil
	}
	b.gitops.Detect(ctx, inc.ID, inc.Key.Namespace, inc.Key.Workload)
	return b.toSlack(inc), false, nil
}

// ---- conversions ----

// toSlack converts a watcher incident into what the Slack app renders,
// with what the GitOps guard knows of its owner.
func (b *Bridge) toSlack(inc watch.Incident) slackapp.Incident {
	out := slackapp.Incident{
		ID: inc.ID, Namespace: inc.Key.Namespace, Kind: inc.Key.Kind, Name: inc.Key.Name,
		Container: inc.Key.Container, Image: inc.Key.Image, Pods: inc.Pods, State: messageState(inc.State),
		Diagnosis: inc.Diagnosis, Ref: inc.NotifyRef, ProvenSecrets: inc.ProvenSecrets, PostID: inc.Posting,
	}
	if inc.State == watch.StateFixing {
		out.FixingBy = inc.By
	}
	if v := b.gitops.View(inc.ID); v != nil {
		out.GitOps = (*slackapp.GitOps)(v)
	}
	return out
}

// messageState is the message state of a lifecycle state: open until it
// is being fixed or has ended.
func messageState(s watch.State) slackapp.State {
	if m, ok := map[watch.State]slackapp.State{watch.StateFixing: slackapp.StateFixing, watch.StateResolved: slackapp.StateResolved,
		watch.StateDismissed: slackapp.StateDismissed, watch.StateSnoozed: slackapp.StateSnoozed}[s]; ok {
		return m
	}
	return slackapp.StateOpen
}

// slackErr turns the watcher's errors into the ones the Slack app answers
// people by, keeping the watcher's words: an unknown incident (resolved and
// forgotten between a click's lookup and its action) is "no longer open",
// a fix under way names its approver, a refused fix says why.
func slackErr(err error) error {
	var busy *watch.FixInProgressError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, watch.ErrUnknownIncident):
		return unknownIncidentError{err}
	case errors.As(err, &busy):
		return &slackapp.FixInProgressError{By: busy.By}
	case fix.IsRefusal(err):
		return &slackapp.FixRefusedError{Reason: err.Error()}
	}
	return err
}

type unknownIncidentError struct{ error }

func (e unknownIncidentError) Is(target error) bool { return target == slackapp.ErrUnknownIncident }
func (e unknownIncidentError) Unwrap() error        { return e.error }
