package approval

import (
	"context"
	"errors"

	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/watch/fix"
)

// Binding binds approvals to the approver's own Kubernetes RBAC (issue
// #17): the Slack user is mapped to a Kubernetes identity, carried in the
// context to the patcher, whose write guard asks a SubjectAccessReview
// before it writes. A nil *Binding (no mapping) binds nothing.
type Binding struct {
	mapping  *Mapping
	reviewer *Reviewer
	// email looks up a Slack user's e-mail (the Slack app, once built).
	email EmailLookup
}

// NewBinding parses the mapping (PULLFIX_SLACK_RBAC_MAPPING); an empty one
// is a nil *Binding: approvals are not bound to RBAC.
func NewBinding(cs kubernetes.Interface, spec string) (*Binding, error) {
	m, err := Parse(spec)
	if err != nil || m == nil {
		return nil, err
	}
	return &Binding{mapping: m, reviewer: NewReviewer(cs)}, nil
}

// SetEmailLookup sets how a Slack user's e-mail is found (for a "*={email}"
// entry); call it before the first click.
func (b *Binding) SetEmailLookup(email EmailLookup) {
	if b != nil {
		b.email = email
	}
}

// identity maps a Slack user to their Kubernetes identity.
func (b *Binding) identity(ctx context.Context, slackUser string) (Identity, error) {
	return b.mapping.Identity(ctx, slackUser, b.email)
}

// Approver is how a Slack user appears as the approver in the change-cause
// and the Event: their id in mention form, which Slack renders as the name.
func Approver(slackUser string) string {
	if slackUser == "" {
		return ""
	}
	return "<@" + slackUser + "> (Slack)"
}

// ActAs is how a click calls the patcher for a Slack user (named as
// Approver names them): with the mapping on, ctx carries their Kubernetes identity and the
// approver text (change-cause, audit Event) names it beside the Slack
// user. A user with no identity is refused (*fix.RefusedError).
func (b *Binding) ActAs(ctx context.Context, slackUser string) (context.Context, string, error) {
	name := Approver(slackUser)
	if b == nil {
		return ctx, name, nil
	}
	id, err := b.identity(ctx, slackUser)
	if err != nil {
		return ctx, name, &fix.RefusedError{Reason: err.Error()}
	}
	return WithIdentity(ctx, id), name + " as " + id.String(), nil
}

// AuthorizeFix is the private pre-check of a click (slackapp.FixAuthorizer): may the Slack user's
// Kubernetes identity patch the workload (a SubjectAccessReview) — the
// same question WriteGuard asks again at write time. Nil binding: yes.
func (b *Binding) AuthorizeFix(ctx context.Context, slackUser, kind, namespace, name string) error {
	if b == nil {
		return nil
	}
	id, err := b.identity(ctx, slackUser)
	if err != nil {
		return err
	}
	write, err := WorkloadWrite(kind, namespace, name)
	if err != nil {
		return err
	}
	return b.reviewer.Check(ctx, id, write)
}

// PatcherOptions install WriteGuard in a fix.Patcher; none for a nil binding.
func (b *Binding) PatcherOptions() []fix.PatcherOption {
	if b == nil {
		return nil
	}
	return []fix.PatcherOption{fix.WithWriteGuard(b.WriteGuard)}
}

// WriteGuard asks the API server whether the approver's Kubernetes
// identity (carried in ctx by ActAs) may patch the workload; without one,
// the write is refused (fix.WithWriteGuard).
func (b *Binding) WriteGuard(ctx context.Context, w fix.WriteIntent) error {
	id, ok := FromContext(ctx)
	if !ok {
		return errors.New("approvals are bound to Kubernetes RBAC and the approver has no Kubernetes identity")
	}
	write, err := WorkloadWrite(w.Workload.Kind, w.Namespace, w.Workload.Name)
	if err != nil {
		return err
	}
	return b.reviewer.Check(ctx, id, write)
}
