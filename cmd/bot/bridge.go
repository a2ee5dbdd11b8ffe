package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/slackapp"
	"github.com/pullfix/pullfix/internal/watch"
)

// bridge joins the two edges that never import each other: it is the
// watcher's Notifier (posting through the Slack app) and the Slack app's
// Incidents, Fixer and OnDemand (acting through the watcher and patcher).
// The image a button deploys is always looked up here, in the watcher's
// state, from the incident id and candidate id the button carries.
type bridge struct {
	w       *watch.Watcher
	p       *watch.Patcher
	cs      kubernetes.Interface
	diag    watch.Diagnoser
	prober  *diagnose.Prober
	app     *slackapp.App
	cluster string
	scope   []string // watched namespaces; empty means all
	secrets bool     // pull-secret probing on
	log     *slog.Logger
	metrics *watch.Metrics // nil records nothing

	mu sync.Mutex
	// proven caches, per incident, the pull secrets shown to work.
	proven map[string][]string
	// searching holds incidents whose pull secrets are being looked for.
	searching map[string]bool
	// reported holds incidents whose fix the Slack app followed to ready
	// itself, so the watcher's later Resolved adds no second message.
	reported map[string]bool
	// inflight holds incidents whose fix the Slack app is applying or
	// following now: it reports the outcome itself.
	inflight map[string]bool
}

func newBridge(w *watch.Watcher, p *watch.Patcher, cs kubernetes.Interface, d watch.Diagnoser, prober *diagnose.Prober, cfg Config, log *slog.Logger) *bridge {
	return &bridge{
		w: w, p: p, cs: cs, diag: d, prober: prober, cluster: cfg.Cluster, scope: cfg.Namespaces,
		secrets: cfg.PullSecretProbing, log: log, proven: map[string][]string{}, reported: map[string]bool{},
		inflight: map[string]bool{}, searching: map[string]bool{},
	}
}

// ---- watch.Notifier ----

func (b *bridge) Opened(ctx context.Context, inc watch.Incident) (string, error) {
	ref, err := b.app.Opened(ctx, b.toSlack(ctx, inc))
	if err == nil {
		b.findSecretsLater(ctx, inc, ref)
	}
	return ref, err
}

// Refined edits the posted message when the registry probe answered after
// the incident was posted on the kubelet's words.
func (b *bridge) Refined(ctx context.Context, inc watch.Incident) error {
	if inc.NotifyRef == "" {
		return nil
	}
	err := b.app.Refresh(ctx, b.toSlack(ctx, inc))
	if err == nil {
		// The registry's verdict may be a credentials problem the
		// kubelet's words did not show.
		b.findSecretsLater(ctx, inc, inc.NotifyRef)
	}
	return err
}

// Updated: every lifecycle change (fixing, dismissed, snoozed) starts with a
// click, and the Slack app edits the message itself as it handles it.
func (b *bridge) Updated(context.Context, watch.Incident) error { return nil }

func (b *bridge) Resolved(ctx context.Context, inc watch.Incident) error {
	b.mu.Lock()
	done := b.reported[inc.ID] || b.inflight[inc.ID]
	delete(b.reported, inc.ID)
	delete(b.proven, inc.ID)
	b.mu.Unlock()
	if done || inc.NotifyRef == "" {
		return nil
	}
	r := slackapp.Resolution{}
	if inc.State == watch.StateFixing {
		r.Actor = inc.By
	}
	r.ReadyPods, r.Desired, r.Image = b.readiness(ctx, inc.Key)
	return b.app.Resolved(ctx, b.toSlack(ctx, inc), r)
}

// readiness reads what the workload runs now, for the resolved message
// ("ui-new 1/1 Running on …"); zeros when it cannot be read.
func (b *bridge) readiness(ctx context.Context, k watch.Key) (ready, desired int, image string) {
	get := metav1.GetOptions{}
	switch k.Kind {
	case "Deployment":
		if d, err := b.cs.AppsV1().Deployments(k.Namespace).Get(ctx, k.Name, get); err == nil {
			return int(d.Status.ReadyReplicas), int(d.Status.Replicas), containerImage(d.Spec.Template.Spec, k.Container)
		}
	case "StatefulSet":
		if s, err := b.cs.AppsV1().StatefulSets(k.Namespace).Get(ctx, k.Name, get); err == nil {
			return int(s.Status.ReadyReplicas), int(s.Status.Replicas), containerImage(s.Spec.Template.Spec, k.Container)
		}
	case "DaemonSet":
		if s, err := b.cs.AppsV1().DaemonSets(k.Namespace).Get(ctx, k.Name, get); err == nil {
			return int(s.Status.NumberReady), int(s.Status.DesiredNumberScheduled), containerImage(s.Spec.Template.Spec, k.Container)
		}
	}
	return 0, 0, ""
}

// containerImage is the image the incident's container field names now
// (an image volume's reference for "volume:NAME").
func containerImage(spec corev1.PodSpec, name string) string { return watch.TemplateImage(&spec, name) }

func (b *bridge) UpdatedGroup(ctx context.Context, g watch.Group) error {
	if g.NotifyRef == "" || g.Diagnosis == nil {
		return nil
	}
	in := slackapp.GroupInput{Cluster: b.cluster, GroupID: g.ID, Diagnosis: *g.Diagnosis, State: slackapp.StateResolved}
	for _, m := range g.Members {
		in.Workloads = append(in.Workloads, slackapp.GroupWorkload{
			Namespace: m.Key.Namespace, Kind: m.Key.Kind, Name: m.Key.Name, Container: m.Key.Container,
			Image: m.Key.Image, PodCount: len(m.Pods),
		})
		switch m.State {
		case watch.StateOpen, watch.StateNotified, watch.StateFixing:
			in.State = slackapp.StateOpen
		case watch.StateSnoozed:
			if in.State != slackapp.StateOpen {
				in.State, in.Until = slackapp.StateSnoozed, m.SnoozedUntil
			}
		case watch.StateDismissed:
			if in.State == slackapp.StateResolved {
				in.State, in.Actor = slackapp.StateDismissed, m.By
			}
		}
	}
	return b.app.EditRoot(ctx, g.NotifyRef, slackapp.RenderGroup(in))
}

// ---- slackapp.Incidents ----

// slackErr lets the Slack side recognise the watcher's "unknown incident"
// (resolved and forgotten between the click's lookup and its action) as
// its own ErrUnknownIncident, so the person is told the incident is no
// longer open instead of seeing a raw error. The message stays the
// watcher's.
func slackErr(err error) error {
	if errors.Is(err, watch.ErrUnknownIncident) {
		return unknownIncidentError{err}
	}
	return err
}

type unknownIncidentError struct{ error }

func (e unknownIncidentError) Is(target error) bool { return target == slackapp.ErrUnknownIncident }
func (e unknownIncidentError) Unwrap() error        { return e.error }

func (b *bridge) Incident(ctx context.Context, id string) (slackapp.Incident, error) {
	if g, ok := b.w.Group(id); ok && len(g.Members) > 0 {
		inc := b.toSlack(ctx, g.Members[0])
		inc.ID, inc.Ref = g.ID, g.NotifyRef
		return inc, nil
	}
	inc, ok := b.w.Incident(id)
	if !ok {
		return slackapp.Incident{}, fmt.Errorf("%w: %q", slackapp.ErrUnknownIncident, id)
	}
	return b.toSlack(ctx, inc), nil
}

func (b *bridge) List(ctx context.Context, namespace string) ([]slackapp.Incident, error) {
	var out []slackapp.Incident
	for _, inc := range b.w.Incidents() {
		if namespace == "" || inc.Key.Namespace == namespace {
			out = append(out, b.toSlack(ctx, inc))
		}
	}
	return out, nil
}

// MarkFixing is the double-click guard: the check and the mark happen
// under one lock, so of two concurrent clicks exactly one goes on.
func (b *bridge) MarkFixing(ctx context.Context, id, approver string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	inc, ok := b.w.Incident(id)
	if !ok {
		return fmt.Errorf("%w: %q", slackapp.ErrUnknownIncident, id)
	}
	if inc.State == watch.StateFixing {
		return &slackapp.FixInProgressError{By: inc.By}
	}
	if err := b.w.MarkFixing(ctx, id, approver); err != nil {
		return slackErr(err)
	}
	b.inflight[id] = true
	return nil
}

func (b *bridge) ClearFixing(ctx context.Context, id string) error {
	b.mu.Lock()
	delete(b.inflight, id)
	b.mu.Unlock()
	return slackErr(b.w.ClearFixing(ctx, id))
}

func (b *bridge) Dismiss(ctx context.Context, id, user string) error {
	return slackErr(b.w.Dismiss(ctx, id, user))
}

func (b *bridge) Snooze(ctx context.Context, id, user string, until time.Time) error {
	return slackErr(b.w.Snooze(ctx, id, until, user))
}

func (b *bridge) Recheck(ctx context.Context, id string) (slackapp.Incident, error) {
	inc, err := b.w.Recheck(ctx, id)
	if err != nil {
		return slackapp.Incident{}, slackErr(err)
	}
	b.mu.Lock()
	delete(b.proven, id)
	b.mu.Unlock()
	// The person asked and waits for the answer: look for working pull
	// secrets now.
	b.provenSecrets(ctx, inc)
	return b.toSlack(ctx, inc), nil
}

// toSlack converts a watcher incident into what the Slack app renders,
// with the pull secrets already proven to work for it. It sends no
// request: a message waits for no secret search (findSecretsLater edits
// the found ones in).
func (b *bridge) toSlack(_ context.Context, inc watch.Incident) slackapp.Incident {
	out := slackapp.Incident{
		ID: inc.ID, Namespace: inc.Key.Namespace, Kind: inc.Key.Kind, Name: inc.Key.Name,
		Container: inc.Key.Container, Image: inc.Key.Image, Pods: inc.Pods, State: string(inc.State),
		Diagnosis: inc.Diagnosis, Ref: inc.NotifyRef, PostID: inc.Posting,
	}
	if inc.State == watch.StateFixing {
		out.FixingBy = inc.By
	}
	b.mu.Lock()
	out.ProvenSecrets = b.proven[inc.ID]
	b.mu.Unlock()
	return out
}

// credentialCauses are the causes a pull secret can fix.
var credentialCauses = []diagnose.Cause{diagnose.Unauthorized, diagnose.AccessDenied, diagnose.CredentialsExpired, diagnose.NotFoundOrUnauthorized}

func (b *bridge) wantsSecrets(inc watch.Incident) bool {
	return b.secrets && b.prober != nil && inc.Diagnosis != nil && slices.Contains(credentialCauses, inc.Diagnosis.Cause)
}

// findSecretsLater looks for working pull secrets for a posted incident in
// the background — it reads ServiceAccounts, pods and Secrets and probes
// the registry with each, which in a storm takes seconds the first message
// must not wait for — and edits the message when it finds one.
func (b *bridge) findSecretsLater(ctx context.Context, inc watch.Incident, ref string) {
	if !b.wantsSecrets(inc) {
		return
	}
	b.mu.Lock()
	_, done := b.proven[inc.ID]
	busy := b.searching[inc.ID]
	if !done && !busy {
		b.searching[inc.ID] = true
	}
	b.mu.Unlock()
	if done || busy {
		return
	}
	go func() {
		defer func() {
			b.mu.Lock()
			delete(b.searching, inc.ID)
			b.mu.Unlock()
		}()
		ctx := context.WithoutCancel(ctx)
		if len(b.provenSecrets(ctx, inc)) == 0 {
			return
		}
		// Edit only a message that still offers fixes: a click since the
		// post has rendered it itself.
		cur, ok := b.w.Incident(inc.ID)
		if !ok || cur.GroupID != "" || (cur.State != watch.StateNotified && cur.State != watch.StateOpen) {
			return
		}
		if cur.NotifyRef == "" {
			cur.NotifyRef = ref
		}
		if err := b.app.Refresh(ctx, b.toSlack(ctx, cur)); err != nil {
			b.log.Warn("adding the working pull secret to the message", "incident", inc.ID, "err", err)
		}
	}()
}

// provenSecrets returns the pull secrets shown to work for the incident's
// image, searching (and caching the answer) when none is cached.
func (b *bridge) provenSecrets(ctx context.Context, inc watch.Incident) []string {
	if !b.wantsSecrets(inc) {
		return nil
	}
	b.mu.Lock()
	s, ok := b.proven[inc.ID]
	b.mu.Unlock()
	if ok {
		return s
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	found, err := watch.FindWorkingPullSecrets(ctx, b.cs, inc.Key.Namespace, inc.Key.Image, inc.Diagnosis.Target.Platform, b.prober, watch.WithFindLogger(b.log))
	if err != nil {
		b.log.Warn("looking for working pull secrets", "incident", inc.ID, "err", err)
		return nil
	}
	// Secrets the pod already names are not a fix.
	found = slices.DeleteFunc(found, func(s string) bool { return slices.Contains(inc.Diagnosis.Target.PullSecrets, s) })
	b.mu.Lock()
	b.proven[inc.ID] = found
	b.mu.Unlock()
	return found
}

// ---- slackapp.Fixer ----

func (b *bridge) SetImage(ctx context.Context, incidentID, candidateID, approver string) (slackapp.FixResult, error) {
	inc, ok := b.w.Incident(incidentID)
	if !ok {
		return slackapp.FixResult{}, fmt.Errorf("%w: %q", slackapp.ErrUnknownIncident, incidentID)
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
		return slackapp.FixResult{}, &slackapp.FixRefusedError{Reason: fmt.Sprintf("candidate %q is not one the diagnosis verified", candidateID)}
	}
	res, err := b.p.SetImage(ctx, watch.FixRequest{Key: inc.Key, NewImage: image, Approver: approverName(approver)})
	b.metrics.Patched("image", patchResult(err))
	if err != nil {
		return slackapp.FixResult{}, refused(err)
	}
	return slackapp.FixResult{From: res.OldImage, To: res.NewImage, Note: strings.Join(res.Warnings, "; ")}, nil
}

func (b *bridge) AddPullSecret(ctx context.Context, incidentID, secret, approver string) (slackapp.FixResult, error) {
	inc, ok := b.w.Incident(incidentID)
	if !ok {
		return slackapp.FixResult{}, fmt.Errorf("%w: %q", slackapp.ErrUnknownIncident, incidentID)
	}
	if !slices.Contains(b.provenSecrets(ctx, inc), secret) {
		return slackapp.FixResult{}, &slackapp.FixRefusedError{Reason: fmt.Sprintf("secret %q is not proven to hold working credentials for %s", secret, inc.Key.Image)}
	}
	res, err := b.p.AddPullSecret(ctx, watch.PullSecretRequest{Key: inc.Key, Secret: secret, Approver: approverName(approver)})
	b.metrics.Patched("pull_secret", patchResult(err))
	if err != nil {
		return slackapp.FixResult{}, refused(err)
	}
	return slackapp.FixResult{From: "", To: res.PullSecret, Note: strings.Join(res.Warnings, "; ")}, nil
}

func (b *bridge) FollowRollout(ctx context.Context, incidentID string, progress func(slackapp.RolloutProgress)) (slackapp.RolloutResult, error) {
	inc, ok := b.w.Incident(incidentID)
	if !ok {
		return slackapp.RolloutResult{}, fmt.Errorf("%w: %q", slackapp.ErrUnknownIncident, incidentID)
	}
	st, err := b.p.FollowRollout(ctx, inc.Key, func(s watch.RolloutStatus) {
		progress(slackapp.RolloutProgress{Ready: int(s.ReadyPods), Desired: int(s.Desired), Message: s.Summary})
	})
	rr := slackapp.RolloutResult{Ready: st.Ready, ReadyPods: int(st.ReadyPods), Desired: int(st.Desired), Image: st.Image, Message: st.Summary}
	b.mu.Lock()
	delete(b.inflight, incidentID)
	if st.Ready {
		b.reported[incidentID] = true
	}
	b.mu.Unlock()
	if len(st.Failing) > 0 && inc.Diagnosis != nil {
		d := b.rediagnose(ctx, inc, st.Failing[0])
		rr.Diagnosis = &d
	}
	return rr, err
}

// rediagnose diagnoses the image a rollout still fails on, from the failing
// pod as the watcher would: with the pod's own pull credentials (so a
// private registry does not read as unauthorized), its node's platform and
// the workload's hints. When that pod cannot be read it falls back to the
// kubelet's words alone, which claim no more than they carry.
func (b *bridge) rediagnose(ctx context.Context, inc watch.Incident, f watch.PodFailure) diagnose.Diagnosis {
	incs, err := watch.DiagnoseWorkload(ctx, b.cs, b.diag, b.log, b.cluster, inc.Key.Namespace, inc.Key.Workload)
	if err == nil {
		for _, got := range incs {
			if got.Key.Container == inc.Key.Container && got.Key.Image == f.Image && got.Diagnosis != nil {
				return *got.Diagnosis
			}
		}
	}
	b.log.Debug("rollout still failing; diagnosing from the kubelet's words", "incident", inc.ID, "image", f.Image, "err", err)
	t := inc.Diagnosis.Target
	t.Image, t.Reason, t.Message, t.Hints, t.Lookup = f.Image, f.Reason, f.Message, nil, nil
	return diagnose.DiagnoseOffline(t)
}

// patchResult names a patch outcome for pullfix_patches_total.
func patchResult(err error) string {
	var fr *slackapp.FixRefusedError
	switch {
	case err == nil:
		return "applied"
	case errors.Is(err, watch.ErrConflict):
		return "stale"
	case errors.As(refused(err), &fr):
		return "refused"
	}
	return "error"
}

// refused turns the patcher's refusals into words for the clicker; other
// errors stay errors.
func refused(err error) error {
	var stale *watch.StaleError
	var dry *watch.DryRunError
	var notPatchable *watch.NotPatchableError
	var ref *diagnose.ReferenceError
	switch {
	case errors.As(err, &stale), errors.As(err, &dry), errors.As(err, &notPatchable), errors.As(err, &ref),
		errors.Is(err, watch.ErrConflict), errors.Is(err, watch.ErrPullSecretPresent), errors.Is(err, watch.ErrWorkloadNotFound):
		return &slackapp.FixRefusedError{Reason: err.Error()}
	}
	return err
}

// approverName is how the approver appears in the change-cause and Event:
// the Slack user id in mention form, which Slack renders as the name.
func approverName(user string) string {
	if user == "" {
		return ""
	}
	return "<@" + user + "> (Slack)"
}

// ---- slackapp.OnDemand ----

func (b *bridge) Diagnose(ctx context.Context, namespace, kind, name string) (slackapp.Incident, bool, error) {
	wl, err := watch.ParseWorkload(strings.TrimPrefix(kind+"/"+name, "/"))
	if err != nil {
		return slackapp.Incident{}, false, err
	}
	if namespace == "" {
		if namespace, err = b.findNamespace(ctx, wl); err != nil {
			return slackapp.Incident{}, false, err
		}
	}
	if len(b.scope) > 0 && !slices.Contains(b.scope, namespace) {
		return slackapp.Incident{}, false, fmt.Errorf("namespace %q is outside what this bot watches (%s)", namespace, strings.Join(b.scope, ", "))
	}
	incs, err := watch.DiagnoseWorkload(ctx, b.cs, b.diag, b.log, b.cluster, namespace, wl)
	if err != nil {
		return slackapp.Incident{}, false, err
	}
	if len(incs) == 0 {
		return slackapp.Incident{Namespace: namespace, Kind: wl.Kind, Name: wl.Name}, true, nil
	}
	inc := incs[0]
	inc.ID = watch.IncidentID(inc.Key)
	if known, ok := b.w.Incident(inc.ID); ok {
		// The watcher tracks it: answer with its state (so the buttons
		// work) and the fresh diagnosis.
		known.Diagnosis = inc.Diagnosis
		inc = known
	}
	b.provenSecrets(ctx, inc) // asked on demand: the answer may wait for it
	return b.toSlack(ctx, inc), false, nil
}

// findNamespace finds the one namespace in scope holding a workload of
// that name; none or several is an error that says so.
func (b *bridge) findNamespace(ctx context.Context, wl watch.Workload) (string, error) {
	sel := fields.OneTermEqualSelector("metadata.name", wl.Name).String()
	var found []string
	namespaces := b.scope
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	for _, ns := range namespaces {
		opts := metav1.ListOptions{FieldSelector: sel}
		var got []string
		var err error
		switch wl.Kind {
		case "Deployment":
			got, err = namespacesOf(b.cs.AppsV1().Deployments(ns).List(ctx, opts))
		case "StatefulSet":
			got, err = namespacesOf(b.cs.AppsV1().StatefulSets(ns).List(ctx, opts))
		case "DaemonSet":
			got, err = namespacesOf(b.cs.AppsV1().DaemonSets(ns).List(ctx, opts))
		default:
			return "", fmt.Errorf("say which namespace holds %s: /pullfix %s -n NAMESPACE", wl, strings.ToLower(wl.Kind)+"/"+wl.Name)
		}
		if err != nil {
			return "", listErr(wl, err)
		}
		found = append(found, got...)
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%w: no %s named %q in %s", watch.ErrWorkloadNotFound, wl.Kind, wl.Name, scopeWords(b.scope))
	case 1:
		return found[0], nil
	default:
		slices.Sort(found)
		return "", fmt.Errorf("%s %q exists in several namespaces (%s): add -n NAMESPACE", wl.Kind, wl.Name, strings.Join(found, ", "))
	}
}

// namespacesOf returns the namespaces of a list's items.
func namespacesOf(list runtime.Object, err error) ([]string, error) {
	if err != nil {
		return nil, err
	}
	items, err := meta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(items))
	for _, o := range items {
		if m, err := meta.Accessor(o); err == nil {
			out = append(out, m.GetNamespace())
		}
	}
	return out, nil
}

func listErr(wl watch.Workload, err error) error {
	if apierrors.IsForbidden(err) {
		return fmt.Errorf("this bot may not list %ss here; add -n NAMESPACE", wl.Kind)
	}
	return fmt.Errorf("looking for %s: %w", wl, err)
}

func scopeWords(scope []string) string {
	if len(scope) == 0 {
		return "any namespace"
	}
	return "namespaces " + strings.Join(scope, ", ")
}
