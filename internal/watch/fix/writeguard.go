package fix

import (
	"context"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WriteIntent is a write the Patcher is about to make: handed to its
// WriteGuard after the workload was read fresh from the API server and
// before the dry run, on every compare-and-swap attempt, so a guard judges
// the object as it is now (labels a GitOps controller added a second ago
// included).
type WriteIntent struct {
	Namespace string
	Workload  Workload
	// Object is the workload as just read.
	Object    metav1.Object
	Container string
	OldImage  string
	// NewImage is the image being set; equal to OldImage when a pull
	// secret is added.
	NewImage   string
	PullSecret string
	// Temporary: the approver chose a live patch knowing a GitOps
	// controller will revert it (FixRequest.Temporary).
	Temporary bool
	Approver  string
}

// WriteGuard may refuse a write; its error reaches the caller wrapped in a
// *WriteRefusedError and nothing is written. Guards are the server side of
// a click: whatever a message showed or a client sent, the write happens
// only if they agree.
type WriteGuard func(ctx context.Context, w WriteIntent) error

// WithWriteGuard adds a guard; guards run in the order given, the first
// refusal wins.
func WithWriteGuard(g WriteGuard) PatcherOption {
	return func(p *Patcher) error {
		if g == nil {
			return errors.New("fix: WithWriteGuard: nil guard")
		}
		p.guards = append(p.guards, g)
		return nil
	}
}

// WriteRefusedError is a guard's refusal: nothing was written.
type WriteRefusedError struct {
	Namespace string
	Workload  Workload
	Err       error
}

func (e *WriteRefusedError) Error() string {
	return fmt.Sprintf("nothing was patched on %s in %s: %v", e.Workload, e.Namespace, e.Err)
}

func (e *WriteRefusedError) Unwrap() error { return e.Err }

// guard runs the guards on a fresh read.
func (p *Patcher) guard(ctx context.Context, w WriteIntent) error {
	for _, g := range p.guards {
		if err := g(ctx, w); err != nil {
			return &WriteRefusedError{Namespace: w.Namespace, Workload: w.Workload, Err: err}
		}
	}
	return nil
}

// imageCause is SetImage's change-cause; a temporary live patch of a
// GitOps-owned workload says so, so `kubectl rollout history` and the
// drift a GitOps tool shows explain themselves.
func imageCause(k Key, req FixRequest) string {
	if req.Temporary {
		return fmt.Sprintf("pullfix: TEMPORARY live patch, image %s → %s, approved by %s; Git still names the old image and its GitOps controller will revert this",
			k.Image, req.NewImage, req.Approver)
	}
	return fmt.Sprintf("pullfix: image %s → %s, approved by %s", k.Image, req.NewImage, req.Approver)
}
