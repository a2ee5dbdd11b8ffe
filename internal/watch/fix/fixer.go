// Package fix changes workloads on an approver's behalf and follows the
// change to its end: a compare-and-swap JSON Patch tried first as a
// server-side dry run, audited with kubernetes.io/change-cause and an
// Event, then the rollout watched until the pods are ready or a deadline
// passes.
package fix

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/watch/creds"
	"github.com/pullfix/pullfix/internal/watch/incident"
	"github.com/pullfix/pullfix/internal/watch/workload"
)

// Key is the incident key a fix acts on: the workload, the container and
// the diagnosed image, which must still be the container's for a patch to
// apply.
type Key = incident.Key

// Workload names a workload (kind and name).
type Workload = workload.Workload

// ErrWorkloadNotFound: the workload does not exist (any more).
var ErrWorkloadNotFound = workload.ErrNotFound

// ChangeCauseAnnotation is the annotation `kubectl rollout history` shows;
// the deployment controller copies it from a Deployment into the ReplicaSet
// of the revision, so the approver's name stays next to the revision.
const ChangeCauseAnnotation = "kubernetes.io/change-cause"

// Event reasons the Patcher records on the workload it changed.
const (
	ReasonImageUpdated    = "ImageUpdated"
	ReasonPullSecretAdded = "PullSecretAdded"
)

// Defaults of the Patcher's options.
const (
	DefaultFieldManager       = "pullfix"
	DefaultRolloutDeadline    = 5 * time.Minute
	DefaultReportingComponent = "pullfix"
)

// casAttempts bounds how often a patch is re-read and retried when its
// compare-and-swap failed for a reason other than the image (a controller
// adding an annotation between our read and our patch). Each attempt
// re-checks the image, so a retry can never overwrite someone's edit.
const casAttempts = 3

// ErrConflict means the workload changed between pullfix's read and its
// patch, so nothing was written. *StaleError unwraps to it, so
// errors.Is(err, ErrConflict) covers every failed compare-and-swap.
var ErrConflict = errors.New("the workload changed while pullfix was patching it; nothing was written")

// ErrPullSecretPresent is returned by AddPullSecret when the pod template
// already names the secret.
var ErrPullSecretPresent = errors.New("the pod template already references this pull secret")

// StaleError means the container's image is no longer the one diagnosed:
// someone (or an earlier click) changed it, so the proposed fix no longer
// applies and nothing was written. Got is empty when the container is gone.
type StaleError struct {
	Workload  Workload
	Container string
	Want      string // the diagnosed image
	Got       string // the image the workload has now
}

func (e *StaleError) Error() string {
	if vol, ok := workload.ImageVolumeName(e.Container); ok {
		if e.Got == "" {
			return fmt.Sprintf("%s has no image volume %q any more; nothing was patched", e.Workload, vol)
		}
		return fmt.Sprintf("%s image volume %q now references %q, not the diagnosed %q (changed since the diagnosis, or already fixed); nothing was patched",
			e.Workload, vol, e.Got, e.Want)
	}
	switch e.Got {
	case "":
		return fmt.Sprintf("%s has no container %q any more; nothing was patched", e.Workload, e.Container)
	default:
		return fmt.Sprintf("%s container %q now runs %q, not the diagnosed %q (changed since the diagnosis, or already fixed); nothing was patched",
			e.Workload, e.Container, e.Got, e.Want)
	}
}

// Unwrap makes errors.Is(err, ErrConflict) true for a stale image.
func (e *StaleError) Unwrap() error { return ErrConflict }

// NotPatchableError says why a workload cannot be fixed by a patch and what
// a person can do instead.
type NotPatchableError struct {
	Workload Workload
	Reason   string
}

func (e *NotPatchableError) Error() string {
	return fmt.Sprintf("cannot patch %s: %s", e.Workload, e.Reason)
}

// DryRunError means the API server refused the change in the server-side
// dry run (validation, an admission webhook or policy, a quota): nothing was
// written. Err is the server's error.
type DryRunError struct {
	Workload Workload
	Err      error
}

func (e *DryRunError) Error() string {
	return fmt.Sprintf("the API server refused the change to %s in a dry run, so nothing was written: %v", e.Workload, e.Err)
}

func (e *DryRunError) Unwrap() error { return e.Err }

// FixRequest asks to set the incident's container to NewImage. Key is the
// incident's key: Image is the diagnosed image, which must still be the
// container's image for the patch to apply.
type FixRequest struct {
	Key      Key
	NewImage string
	// Approver names who approved, for the audit trail, e.g. "@alice (U123)".
	Approver string
	// Temporary: a live patch the approver chose knowing a GitOps
	// controller will revert it; the change-cause says so (writeguard.go).
	Temporary bool
}

// PullSecretRequest asks to add the Secret named Secret to the pod
// template's imagePullSecrets of the incident's workload.
type PullSecretRequest struct {
	Key      Key
	Secret   string
	Approver string
}

// FixResult is what a patch changed. For AddPullSecret, PullSecret names the
// secret added and OldImage equals NewImage.
type FixResult struct {
	Namespace  string
	Workload   Workload
	Container  string
	OldImage   string
	NewImage   string
	PullSecret string `json:",omitempty"`
	// Generation is the workload's metadata.generation after the patch:
	// the rollout is done when the controller has observed it.
	Generation int64
	Applied    time.Time
	// Warnings are audit steps that failed after the patch was applied
	// (e.g. the Event could not be recorded); the change itself stands.
	Warnings []string `json:",omitempty"`
	// Recreated are pods deleted so their controller recreates them on
	// the new template: an OrderedReady StatefulSet never replaces a pod
	// that is not ready (Kubernetes documents deleting it by hand), and a
	// pod stuck pulling the old image never ran, so nothing is lost.
	Recreated []string `json:",omitempty"`
}

// Patcher changes workloads on an approver's behalf: the Fixer the Slack
// side calls. Every change is a compare-and-swap JSON Patch, tried first as
// a server-side dry run, annotated with kubernetes.io/change-cause and
// recorded as an Event, so `kubectl rollout history` and `kubectl describe`
// tell who approved what.
//
// RBAC it needs in the workload's namespace: get, list, watch and patch on
// the workload kinds (list/watch only to follow rollouts); get, list, watch,
// patch (bare pods) and delete (StatefulSet pods stuck on the old image) on
// pods; create on events; for pull secrets also get on secrets and list on
// serviceaccounts. Never list on secrets.
type Patcher struct {
	cs           kubernetes.Interface
	log          *slog.Logger
	fieldManager string
	deadline     time.Duration
	component    string
	instance     string
	now          func() time.Time
	// deleteStuck lets SetImage delete StatefulSet pods stuck on the old
	// image; off by default so the bot needs no delete right at all.
	deleteStuck bool

	// guards may refuse a write after the fresh read (writeguard.go).
	guards []WriteGuard

	// beforePatch runs between the dry run and the real patch; tests use
	// it to make a concurrent edit land exactly there.
	beforePatch func()
}

// PatcherOption configures a Patcher. An option given a value it cannot
// use makes NewPatcher fail with an error naming it.
type PatcherOption func(*Patcher) error

// WithPatcherLogger sets the logger; default slog.Default().
func WithPatcherLogger(l *slog.Logger) PatcherOption {
	return func(p *Patcher) error {
		if l == nil {
			return errors.New("fix: WithPatcherLogger: nil logger")
		}
		p.log = l
		return nil
	}
}

// WithFieldManager sets the field manager recorded in managedFields;
// default DefaultFieldManager ("pullfix"), so `kubectl get -o yaml
// --show-managed-fields` names the bot as the writer of the image.
func WithFieldManager(name string) PatcherOption {
	return func(p *Patcher) error {
		if name == "" {
			return errors.New("fix: WithFieldManager: empty name")
		}
		p.fieldManager = name
		return nil
	}
}

// WithRolloutDeadline bounds FollowRollout; default DefaultRolloutDeadline
// (5 minutes: kubelet image-pull back-off reaches its 5-minute cap by
// then, so a rollout that is not ready is genuinely stuck). It must be
// positive.
func WithRolloutDeadline(d time.Duration) PatcherOption {
	return func(p *Patcher) error {
		if d <= 0 {
			return fmt.Errorf("fix: WithRolloutDeadline(%s): must be positive", d)
		}
		p.deadline = d
		return nil
	}
}

// WithReportingComponent sets the Event source and reporting controller;
// default DefaultReportingComponent ("pullfix").
func WithReportingComponent(name string) PatcherOption {
	return func(p *Patcher) error {
		if name == "" {
			return errors.New("fix: WithReportingComponent: empty name")
		}
		p.component = name
		return nil
	}
}

// WithReportingInstance sets the Event's reporting instance; default the
// host name (the pod name in a cluster), so events say which replica acted.
func WithReportingInstance(name string) PatcherOption {
	return func(p *Patcher) error {
		if name == "" {
			return errors.New("fix: WithReportingInstance: empty name")
		}
		p.instance = name
		return nil
	}
}

// WithDeleteStuckStatefulSetPods lets SetImage delete a StatefulSet's pods
// that are stuck pulling the old image (the StatefulSet controller never
// replaces a pod that is not ready: kubernetes#67250). Default false: the
// bot's RBAC grants no delete, and the fix result says which pods to delete
// by hand. Turning it on needs `delete` on pods.
func WithDeleteStuckStatefulSetPods(on bool) PatcherOption {
	return func(p *Patcher) error { p.deleteStuck = on; return nil }
}

// BeforePatch sets a function run between the dry run and the real patch;
// tests use it to land a concurrent edit exactly there.
func (p *Patcher) BeforePatch(f func()) { p.beforePatch = f }

// NewPatcher returns a Patcher acting through cs, which should carry the
// bot's own RBAC-scoped identity; it fails when an option's value is
// unusable.
func NewPatcher(cs kubernetes.Interface, opts ...PatcherOption) (*Patcher, error) {
	p := &Patcher{
		cs: cs, log: slog.Default(), fieldManager: DefaultFieldManager, deadline: DefaultRolloutDeadline,
		component: DefaultReportingComponent, now: time.Now,
	}
	p.instance, _ = os.Hostname()
	for _, o := range opts {
		if err := o(p); err != nil {
			return nil, err
		}
	}
	if p.instance == "" {
		p.instance = p.component
	}
	return p, nil
}

// liveWorkload is a workload as just read, with where its pod spec lives.
type liveWorkload struct {
	wl       Workload
	kind     *workload.Kind
	obj      workload.Object
	spec     *corev1.PodSpec
	specPath string // JSON pointer of the pod spec
}

// containerAt is a container found in a pod spec.
type containerAt struct {
	image string
	path  string // JSON pointer of its image field
}

func (lw *liveWorkload) container(name string) (containerAt, bool) {
	if vol, ok := workload.ImageVolumeName(name); ok {
		// An image volume: its reference is the image (KEP-4639).
		for i, v := range lw.spec.Volumes {
			if v.Name == vol && v.Image != nil {
				return containerAt{image: v.Image.Reference, path: lw.specPath + "/volumes/" + strconv.Itoa(i) + "/image/reference"}, true
			}
		}
		return containerAt{}, false
	}
	for i, c := range lw.spec.Containers {
		if c.Name == name {
			return containerAt{image: c.Image, path: lw.specPath + "/containers/" + strconv.Itoa(i) + "/image"}, true
		}
	}
	for i, c := range lw.spec.InitContainers {
		if c.Name == name {
			return containerAt{image: c.Image, path: lw.specPath + "/initContainers/" + strconv.Itoa(i) + "/image"}, true
		}
	}
	return containerAt{}, false
}

// read gets the workload fresh from the API server (never from a cache:
// the compare-and-swap must start from what is stored now).
func (p *Patcher) read(ctx context.Context, ns string, wl Workload) (*liveWorkload, error) {
	k := workload.KindOf(wl.Kind)
	switch {
	case k == nil:
		return nil, &NotPatchableError{Workload: wl, Reason: "pullfix patches Deployments, StatefulSets, DaemonSets, CronJobs and Pods only"}
	case !k.Patchable():
		return nil, &NotPatchableError{Workload: wl, Reason: k.NotPatchable}
	}
	obj, err := k.Get(ctx, p.cs, ns, wl.Name)
	if err != nil {
		return nil, err
	}
	return &liveWorkload{wl: wl, kind: k, obj: obj, spec: k.PodSpec(obj), specPath: k.SpecPath}, nil
}

// patch sends a JSON Patch to the workload, as a dry run or for real.
func (p *Patcher) patch(ctx context.Context, ns string, lw *liveWorkload, data []byte, dryRun bool) (metav1.Object, error) {
	opts := metav1.PatchOptions{FieldManager: p.fieldManager}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	return lw.kind.Patch(ctx, p.cs, ns, lw.wl.Name, types.JSONPatchType, data, opts)
}

// jsonOp is one RFC 6902 operation. Value is always sent: a test against
// null checks that a member is absent.
type jsonOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value"`
}

// pointerEscape escapes a map key for a JSON pointer (RFC 6901): "~" as
// "~0", "/" as "~1" (kubernetes.io/change-cause → kubernetes.io~1change-cause).
func pointerEscape(s string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(s)
}

// annotationOps sets the change-cause annotation. When the object has no
// annotations at all, the map is created under a test that it is still
// absent, so a concurrent writer's annotations are never replaced.
func annotationOps(obj metav1.Object, cause string) []jsonOp {
	if obj.GetAnnotations() == nil {
		return []jsonOp{
			{Op: "test", Path: "/metadata/annotations", Value: nil},
			{Op: "add", Path: "/metadata/annotations", Value: map[string]string{ChangeCauseAnnotation: cause}},
		}
	}
	return []jsonOp{{Op: "add", Path: "/metadata/annotations/" + pointerEscape(ChangeCauseAnnotation), Value: cause}}
}

// isTestFailure reports whether the server refused a JSON Patch because a
// test operation failed or a path it names vanished: the compare half of
// the compare-and-swap. The API server turns any json-patch apply error into
// a bare 422 Invalid with a generic message and no details (the library's
// text is dropped), whereas validation failures carry the object's name and
// their causes; our paths come from a fresh read, so a bare 422 means the
// object changed under us. The caller re-reads to tell which way.
func isTestFailure(err error) bool {
	var se apierrors.APIStatus
	if !errors.As(err, &se) {
		return false
	}
	st := se.Status()
	if st.Code != http.StatusUnprocessableEntity || st.Reason != metav1.StatusReasonInvalid {
		return false
	}
	return st.Details == nil || (st.Details.Name == "" && st.Details.Kind == "" && len(st.Details.Causes) == 0) ||
		slices.ContainsFunc(st.Details.Causes, func(c metav1.StatusCause) bool {
			return strings.Contains(c.Message, "testing value") || strings.Contains(c.Message, "test operation does not apply")
		})
}

// apply runs the patch protocol shared by SetImage and AddPullSecret:
// re-read, let build check the live workload and produce the operations,
// dry-run them, then apply them; a failed compare-and-swap is re-read and
// retried (build re-checks, so a changed image becomes a *StaleError).
func (p *Patcher) apply(ctx context.Context, ns string, wl Workload, intent WriteIntent, build func(*liveWorkload) ([]jsonOp, error)) (*liveWorkload, metav1.Object, error) {
	for attempt := 1; attempt <= casAttempts; attempt++ {
		lw, err := p.read(ctx, ns, wl)
		if err != nil {
			return nil, nil, err
		}
		intent.Namespace, intent.Workload, intent.Object = ns, wl, lw.obj
		if err := p.guard(ctx, intent); err != nil {
			return nil, nil, err
		}
		ops, err := build(lw)
		if err != nil {
			return nil, nil, err
		}
		data, err := json.Marshal(ops)
		if err != nil {
			return nil, nil, fmt.Errorf("encode patch: %w", err)
		}
		if _, err := p.patch(ctx, ns, lw, data, true); err != nil {
			if isTestFailure(err) || apierrors.IsConflict(err) {
				p.log.Debug("dry run lost a race; re-reading", "workload", wl, "namespace", ns, "attempt", attempt)
				continue
			}
			return nil, nil, &DryRunError{Workload: wl, Err: err}
		}
		if p.beforePatch != nil {
			p.beforePatch()
		}
		obj, err := p.patch(ctx, ns, lw, data, false)
		if err != nil {
			if isTestFailure(err) || apierrors.IsConflict(err) {
				p.log.Info("patch compare-and-swap failed; re-reading", "workload", wl, "namespace", ns, "attempt", attempt)
				continue
			}
			return nil, nil, fmt.Errorf("patch %s in %s (the dry run passed): %w", wl, ns, err)
		}
		return lw, obj, nil
	}
	return nil, nil, fmt.Errorf("%s in %s: %w (tried %d times)", wl, ns, ErrConflict, casAttempts)
}

// NotPatchableSource refuses a fix of an ephemeral container cleanly,
// before anything is read or sent.
func NotPatchableSource(k Key) error {
	name, ok := workload.EphemeralContainerName(k.Container)
	if !ok {
		return nil
	}
	return &NotPatchableError{Workload: k.Workload, Reason: fmt.Sprintf(
		"%q is an ephemeral (debug) container: its image cannot be changed after kubectl debug added it, and pullfix never writes pods/ephemeralcontainers. "+
			"Start a new debug container with a verified image instead: %s",
		name, workload.DebugCommand(k.Namespace, k.Name, "IMAGE", ""))}
}

func checkKey(k Key) error {
	if err := NotPatchableSource(k); err != nil {
		return err
	}
	if _, ok := workload.ImageVolumeName(k.Container); ok && k.Kind == "Pod" {
		return &NotPatchableError{Workload: k.Workload, Reason: "a Pod's volumes cannot change after it is created. " +
			"Re-create the pod with the fixed image volume reference (or fix the workload that created it)"}
	}
	switch {
	case k.Namespace == "" || k.Name == "" || k.Kind == "":
		return fmt.Errorf("the request names no workload (namespace %q, %s)", k.Namespace, k.Workload)
	case k.Container == "":
		return fmt.Errorf("the request names no container of %s", k.Workload)
	case k.Image == "":
		return fmt.Errorf("the request names no diagnosed image for %s container %q", k.Workload, k.Container)
	}
	return nil
}

// SetImage sets the incident's container to req.NewImage, if and only if
// it still runs the diagnosed image req.Key.Image. The change is a JSON
// Patch whose test operation compares the exact image path, so a concurrent
// edit or a second click fails cleanly with a *StaleError (errors.Is
// ErrConflict) and writes nothing. A reference the kubelet would refuse is
// refused before anything is sent (*diagnose.ReferenceError); a change the
// API server would refuse is caught by the dry run (*DryRunError).
func (p *Patcher) SetImage(ctx context.Context, req FixRequest) (FixResult, error) {
	k := req.Key
	if err := checkKey(k); err != nil {
		return FixResult{}, err
	}
	if req.Approver == "" {
		return FixResult{}, errors.New("refusing an unattributed change: the request names no approver")
	}
	if err := diagnose.CheckReference(req.NewImage); err != nil {
		return FixResult{}, fmt.Errorf("refusing to set %s container %q: %w", k.Workload, k.Container, err)
	}
	if req.NewImage == k.Image {
		return FixResult{}, fmt.Errorf("the new image %q is the diagnosed image itself; nothing to change", req.NewImage)
	}
	cause := imageCause(k, req)
	intent := WriteIntent{Container: k.Container, OldImage: k.Image, NewImage: req.NewImage, Temporary: req.Temporary, Approver: req.Approver}
	lw, obj, err := p.apply(ctx, k.Namespace, k.Workload, intent, func(lw *liveWorkload) ([]jsonOp, error) {
		c, ok := lw.container(k.Container)
		if !ok {
			return nil, &StaleError{Workload: k.Workload, Container: k.Container, Want: k.Image}
		}
		if c.image != k.Image {
			return nil, &StaleError{Workload: k.Workload, Container: k.Container, Want: k.Image, Got: c.image}
		}
		ops := []jsonOp{
			{Op: "test", Path: c.path, Value: k.Image},
			{Op: "replace", Path: c.path, Value: req.NewImage},
		}
		return append(ops, annotationOps(lw.obj, cause)...), nil
	})
	if err != nil {
		return FixResult{}, err
	}
	res := FixResult{
		Namespace: k.Namespace, Workload: k.Workload, Container: k.Container, OldImage: k.Image, NewImage: req.NewImage,
		Generation: obj.GetGeneration(), Applied: p.now(),
	}
	p.log.Info("image updated", "namespace", k.Namespace, "workload", k.Workload, "container", k.Container,
		"old", k.Image, "new", req.NewImage, "approver", req.Approver, "generation", res.Generation)
	if sts, ok := obj.(*appsv1.StatefulSet); ok {
		res.Recreated, res.Warnings = p.unstick(ctx, sts, k)
	}
	msg := fmt.Sprintf("Container %q image changed from %s to %s, approved by %s", k.Container, k.Image, req.NewImage, req.Approver)
	if vol, ok := workload.ImageVolumeName(k.Container); ok {
		msg = fmt.Sprintf("Image volume %q reference changed from %s to %s, approved by %s", vol, k.Image, req.NewImage, req.Approver)
	}
	if len(res.Recreated) > 0 {
		msg += fmt.Sprintf("; deleted pod(s) %s stuck pulling the old image so they are recreated", strings.Join(res.Recreated, ", "))
	}
	if err := p.recordEvent(ctx, lw, obj, ReasonImageUpdated, msg); err != nil {
		p.log.Warn("image updated but the audit Event was not recorded", "workload", k.Workload, "err", err)
		res.Warnings = append(res.Warnings, "the audit Event was not recorded: "+err.Error())
	}
	return res, nil
}

// AddPullSecret appends req.Secret to the pod template's imagePullSecrets.
// It refuses when the secret is missing or not a pull secret, when the
// template already names it (ErrPullSecretPresent), and when the container
// no longer runs the diagnosed image (*StaleError). The patch tests the
// current list (and the image), so it is as atomic as SetImage.
func (p *Patcher) AddPullSecret(ctx context.Context, req PullSecretRequest) (FixResult, error) {
	k := req.Key
	if err := checkKey(k); err != nil {
		return FixResult{}, err
	}
	if req.Approver == "" {
		return FixResult{}, errors.New("refusing an unattributed change: the request names no approver")
	}
	if req.Secret == "" {
		return FixResult{}, errors.New("the request names no secret")
	}
	if k.Kind == "Pod" {
		return FixResult{}, &NotPatchableError{Workload: k.Workload, Reason: "a Pod's imagePullSecrets cannot change after it is created. " +
			"Re-create the pod with the secret, or add the secret to its ServiceAccount's imagePullSecrets for the pods that follow"}
	}
	sec, err := p.cs.CoreV1().Secrets(k.Namespace).Get(ctx, req.Secret, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return FixResult{}, fmt.Errorf("secret %q does not exist in namespace %q", req.Secret, k.Namespace)
	}
	if err != nil {
		return FixResult{}, fmt.Errorf("read secret %s/%s: %w", k.Namespace, req.Secret, err)
	}
	if _, errs := creds.KeychainFromSecrets([]*corev1.Secret{sec}); len(errs) > 0 {
		return FixResult{}, fmt.Errorf("refusing to add it as an imagePullSecret: %w", errs[0])
	}
	cause := fmt.Sprintf("pullfix: imagePullSecret %s added for image %s, approved by %s", req.Secret, k.Image, req.Approver)
	intent := WriteIntent{Container: k.Container, OldImage: k.Image, NewImage: k.Image, PullSecret: req.Secret, Approver: req.Approver}
	lw, obj, err := p.apply(ctx, k.Namespace, k.Workload, intent, func(lw *liveWorkload) ([]jsonOp, error) {
		c, ok := lw.container(k.Container)
		if !ok {
			return nil, &StaleError{Workload: k.Workload, Container: k.Container, Want: k.Image}
		}
		if c.image != k.Image {
			return nil, &StaleError{Workload: k.Workload, Container: k.Container, Want: k.Image, Got: c.image}
		}
		for _, ref := range lw.spec.ImagePullSecrets {
			if ref.Name == req.Secret {
				return nil, fmt.Errorf("%s in %s: %w %q", k.Workload, k.Namespace, ErrPullSecretPresent, req.Secret)
			}
		}
		listPath := lw.specPath + "/imagePullSecrets"
		ops := []jsonOp{{Op: "test", Path: c.path, Value: k.Image}}
		if lw.spec.ImagePullSecrets == nil {
			ops = append(ops,
				jsonOp{Op: "test", Path: listPath, Value: nil},
				jsonOp{Op: "add", Path: listPath, Value: []corev1.LocalObjectReference{{Name: req.Secret}}})
		} else {
			ops = append(ops,
				jsonOp{Op: "test", Path: listPath, Value: lw.spec.ImagePullSecrets},
				jsonOp{Op: "add", Path: listPath + "/-", Value: corev1.LocalObjectReference{Name: req.Secret}})
		}
		return append(ops, annotationOps(lw.obj, cause)...), nil
	})
	if err != nil {
		return FixResult{}, err
	}
	res := FixResult{
		Namespace: k.Namespace, Workload: k.Workload, Container: k.Container, OldImage: k.Image, NewImage: k.Image,
		PullSecret: req.Secret, Generation: obj.GetGeneration(), Applied: p.now(),
	}
	p.log.Info("pull secret added", "namespace", k.Namespace, "workload", k.Workload, "secret", req.Secret,
		"image", k.Image, "approver", req.Approver, "generation", res.Generation)
	msg := fmt.Sprintf("imagePullSecret %q added so container %q can pull %s, approved by %s", req.Secret, k.Container, k.Image, req.Approver)
	if err := p.recordEvent(ctx, lw, obj, ReasonPullSecretAdded, msg); err != nil {
		p.log.Warn("pull secret added but the audit Event was not recorded", "workload", k.Workload, "err", err)
		res.Warnings = append(res.Warnings, "the audit Event was not recorded: "+err.Error())
	}
	return res, nil
}

// unstick deletes the StatefulSet's pods that are stuck pulling the old
// image, when the StatefulSet would otherwise wait for them forever: with
// the default OrderedReady policy and a RollingUpdate strategy, the
// controller never replaces a pod that is not Running and Ready
// (kubernetes/kubernetes#67250; the StatefulSet docs say to delete such pods
// after fixing the template). Only pods whose container is waiting on an
// image-pull failure of exactly the old image are deleted, each with a UID
// precondition, so a pod that ever ran, or was already replaced, is never
// touched. Failures are returned as warnings: the patch stands.
func (p *Patcher) unstick(ctx context.Context, sts *appsv1.StatefulSet, k Key) (deleted, warnings []string) {
	if sts.Spec.PodManagementPolicy == appsv1.ParallelPodManagement || sts.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return nil, nil
	}
	sel, err := metav1.LabelSelectorAsSelector(sts.Spec.Selector)
	if err != nil {
		return nil, []string{"pods stuck on the old image were not deleted: " + err.Error()}
	}
	pods, err := p.cs.CoreV1().Pods(sts.Namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, []string{"pods stuck on the old image were not looked for: " + err.Error()}
	}
	for i := range pods.Items {
		pod := &pods.Items[i]
		ref := metav1.GetControllerOf(pod)
		if ref == nil || ref.UID != sts.UID || pod.DeletionTimestamp != nil || workload.TemplateImage(&pod.Spec, k.Container) != k.Image {
			continue
		}
		stuck := false
		for _, fc := range workload.FailingContainers(pod) {
			stuck = stuck || (fc.Name == k.Container && fc.Image == k.Image)
		}
		if !stuck {
			continue
		}
		if !p.deleteStuck {
			warnings = append(warnings, fmt.Sprintf("pod %s is stuck pulling the old image and a StatefulSet does not replace a pod that is not ready; delete it (kubectl -n %s delete pod %s) so it is recreated with the new image", pod.Name, pod.Namespace, pod.Name))
			continue
		}
		uid := pod.UID
		err := p.cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		switch {
		case err == nil:
			deleted = append(deleted, pod.Name)
		case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
			// Already gone or replaced.
		default:
			warnings = append(warnings, fmt.Sprintf("pod %s is stuck on the old image and the StatefulSet will not replace it; delete it by hand (%v)", pod.Name, err))
		}
	}
	if len(deleted) > 0 {
		p.log.Info("deleted StatefulSet pods stuck on the old image", "namespace", sts.Namespace, "statefulset", sts.Name, "pods", deleted)
	}
	return deleted, warnings
}

// recordEvent writes a Normal Event about the changed workload, so
// `kubectl describe` and `kubectl events` show the change and its approver.
// It is created directly rather than through a broadcaster: one event per
// approved change needs no aggregation, and the caller learns if it failed.
func (p *Patcher) recordEvent(ctx context.Context, lw *liveWorkload, obj metav1.Object, reason, msg string) error {
	now := p.now()
	ts := metav1.NewTime(now)
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("%s.%x", obj.GetName(), now.UnixNano()),
			Namespace: obj.GetNamespace(),
		},
		InvolvedObject: corev1.ObjectReference{
			APIVersion: lw.kind.APIVersion, Kind: lw.wl.Kind, Namespace: obj.GetNamespace(), Name: obj.GetName(),
			UID: obj.GetUID(), ResourceVersion: obj.GetResourceVersion(),
		},
		Reason: reason, Message: msg, Type: corev1.EventTypeNormal,
		Source:         corev1.EventSource{Component: p.component},
		FirstTimestamp: ts, LastTimestamp: ts, Count: 1,
		ReportingController: p.component, ReportingInstance: p.instance, Action: "Patch",
	}
	_, err := p.cs.CoreV1().Events(ev.Namespace).Create(ctx, ev, metav1.CreateOptions{})
	return err
}
