package watch

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/watch/fix"
	"github.com/pullfix/pullfix/internal/watch/incident"
	"github.com/pullfix/pullfix/internal/watch/workload"
)

// The fix path of one click, in the watcher because the watcher owns the
// incident: the image or secret a fix applies is looked up here, in the
// incident, from the ids the click carried, and the fix's outcome decides
// who posts "resolved" (see MarkFixing and resolve).

// WithPatcher lets the watcher apply fixes (SetImage, AddPullSecret,
// FollowFix) through p. Default: none; those methods then fail.
func WithPatcher(p *fix.Patcher) Option {
	return func(w *Watcher) error {
		if p == nil {
			return errorf("WithPatcher: nil patcher")
		}
		w.patcher = p
		return nil
	}
}

// ClearFixing returns an incident from fixing to notified after a fix that
// was refused or did not finish, so it can be fixed again. An incident in
// any other state is left as it is.
func (w *Watcher) ClearFixing(ctx context.Context, id string) error {
	return w.change(ctx, id, "clear-fix", func(inc *Incident) (bool, error) { return incident.ClearFixing(inc) })
}

// fixable returns the incident a fix acts on.
func (w *Watcher) fixable(id string) (Incident, error) {
	if w.patcher == nil {
		return Incident{}, errorf("no patcher: this watcher applies no fixes")
	}
	inc, ok := w.Incident(id)
	if !ok {
		return Incident{}, fmt.Errorf("%w: %q", ErrUnknownIncident, id)
	}
	return inc, nil
}

// SetImage sets the incident's container to the image of its verified
// candidate candidateID, for approver (recorded in the change-cause and
// the Event). A candidate the diagnosis did not verify is refused: nothing
// a click carries can choose what is deployed.
func (w *Watcher) SetImage(ctx context.Context, id, candidateID, approver string) (fix.FixResult, error) {
	return w.setImage(ctx, id, candidateID, approver, false)
}

// SetTemporaryImage is SetImage as a temporary live patch of a GitOps-owned
// workload (issue #17): the patcher's write guard lets it through only
// where the GitOps policy allows one, and its change-cause says TEMPORARY.
func (w *Watcher) SetTemporaryImage(ctx context.Context, id, candidateID, approver string) (fix.FixResult, error) {
	return w.setImage(ctx, id, candidateID, approver, true)
}

func (w *Watcher) setImage(ctx context.Context, id, candidateID, approver string, temporary bool) (fix.FixResult, error) {
	inc, err := w.fixable(id)
	if err != nil {
		return fix.FixResult{}, err
	}
	var image string
	if inc.Diagnosis != nil {
		for _, c := range inc.Diagnosis.Candidates {
			if c.ID == candidateID {
				image = c.Image
			}
		}
	}
	if image == "" {
		return fix.FixResult{}, &fix.RefusedError{Reason: fmt.Sprintf("candidate %q is not one the diagnosis verified", candidateID)}
	}
	w.setFixInFlight(id, true)
	res, err := w.patcher.SetImage(ctx, fix.FixRequest{Key: inc.Key, NewImage: image, Approver: approver, Temporary: temporary})
	w.metrics.Patched("image", fix.Outcome(err))
	if err != nil {
		w.setFixInFlight(id, false)
	}
	return res, err
}

// AddPullSecret adds secret to the incident's workload's imagePullSecrets,
// if the secret is proven to pull the incident's image (searching now when
// the incident has not been searched).
func (w *Watcher) AddPullSecret(ctx context.Context, id, secret, approver string) (fix.FixResult, error) {
	inc, err := w.fixable(id)
	if err != nil {
		return fix.FixResult{}, err
	}
	proven, err := w.provenSecrets(ctx, id)
	if err != nil {
		return fix.FixResult{}, err
	}
	if !slices.Contains(proven, secret) {
		return fix.FixResult{}, &fix.RefusedError{Reason: fmt.Sprintf("secret %q is not proven to hold working credentials for %s", secret, inc.Key.Image)}
	}
	w.setFixInFlight(id, true)
	res, err := w.patcher.AddPullSecret(ctx, fix.PullSecretRequest{Key: inc.Key, Secret: secret, Approver: approver})
	w.metrics.Patched("pull_secret", fix.Outcome(err))
	if err != nil {
		w.setFixInFlight(id, false)
	}
	return res, err
}

// setFixInFlight marks the incident's fix as being applied and followed
// by the watcher (its outcome is the fixer's to report), or not.
func (w *Watcher) setFixInFlight(id string, on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ks, ok := w.ids[id]; ok {
		w.incidents[ks].fixInFlight = on
	}
}

// FollowFix follows the rollout of the incident's fix (fix.Patcher's
// FollowRollout) and ends the fix: when the rollout is ready the caller
// reports it and the watcher posts no "resolved" of its own. When pods
// still fail, it returns the diagnosis of the image they fail on, made as
// the watcher makes every diagnosis — with the failing pod's own pull
// credentials, its node's platform and the workload's hints — so a private
// registry does not read as unauthorized.
func (w *Watcher) FollowFix(ctx context.Context, id string, progress func(fix.RolloutStatus)) (fix.RolloutStatus, *diagnose.Diagnosis, error) {
	inc, err := w.fixable(id)
	if err != nil {
		return fix.RolloutStatus{}, nil, err
	}
	st, err := w.patcher.FollowRollout(ctx, inc.Key, progress)
	w.mu.Lock()
	if ks, ok := w.ids[id]; ok {
		e := w.incidents[ks]
		e.fixInFlight = false
		e.fixReported = e.fixReported || st.Ready
	}
	w.mu.Unlock()
	if len(st.Failing) == 0 || inc.Diagnosis == nil {
		return st, nil, err
	}
	d := w.rediagnose(ctx, inc, st.Failing[0])
	return st, &d, err
}

// rediagnose diagnoses the image a rollout still fails on, from the
// workload's failing pods; when they cannot be read it falls back to the
// kubelet's words alone, which claim no more than they carry.
func (w *Watcher) rediagnose(ctx context.Context, inc Incident, f fix.PodFailure) diagnose.Diagnosis {
	incs, err := DiagnoseWorkload(ctx, w.cs, w.diag, w.log, w.cluster, inc.Key.Namespace, inc.Key.Workload)
	if err == nil {
		for _, got := range incs {
			if got.Key.Container == inc.Key.Container && got.Key.Image == f.Image && got.Diagnosis != nil {
				return *got.Diagnosis
			}
		}
	}
	w.log.Debug("rollout still failing; diagnosing from the kubelet's words", "incident", inc.ID, "image", f.Image, "err", err)
	t := inc.Diagnosis.Target
	t.Image, t.Reason, t.Message, t.Hints, t.Lookup = f.Image, f.Reason, f.Message, nil, nil
	return diagnose.DiagnoseOffline(t)
}

// Readiness is what the incident's workload runs now, for a "resolved"
// message ("ui-new 1/1 Running on …"): its ready and desired pods and the
// container's image; zeros when it cannot be read.
func (w *Watcher) Readiness(ctx context.Context, k Key) (ready, desired int, image string) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	r, obj, err := workload.Status(ctx, w.cs, k.Namespace, k.Workload)
	if err != nil || obj == nil {
		return 0, 0, ""
	}
	return int(r.Ready), int(r.Desired), workload.TemplateImage(workload.KindOf(k.Kind).PodSpec(obj), k.Container)
}
