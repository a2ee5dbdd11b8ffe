package slackapp

import (
	"context"
	"errors"
	"fmt"
)

// FixAuthorizer decides, before anything is marked, edited or patched,
// whether user may fix the incident's workload (kind, namespace, name) — for example whether
// the Kubernetes identity the Slack user maps to may patch the workload
// (a SubjectAccessReview), or whether a GitOps controller owns it. A
// refusal is answered to the clicker alone (ephemeral), with its reason,
// and nothing else happens: the message and its thread stay as they were.
// The Fixer's own checks still run at write time; this one only keeps a
// refused click private.
type FixAuthorizer interface {
	AuthorizeFix(ctx context.Context, user, kind, namespace, name string) error
}

// TemporaryFixer applies a temporary live patch of a GitOps-owned
// workload (ActionTempImage); a Fixer without it refuses that action.
type TemporaryFixer interface {
	SetImageTemporary(ctx context.Context, incidentID, candidateID, approver string) (FixResult, error)
}

// authorizeFix runs the checks that end a click privately: a temporary
// patch only where the message offered it, then the FixAuthorizer.
// It reports whether the fix may go on.
func (a *App) authorizeFix(ctx context.Context, c click) bool {
	if c.value.Action == ActionTempImage && (c.inc.GitOps == nil || !c.inc.GitOps.TemporaryOffered) {
		a.replyError(ctx, c.cb.ResponseURL, "A temporary live patch is not offered for this workload; nothing was changed.")
		return false
	}
	if c.value.Action != ActionTempImage && c.inc.GitOps != nil {
		a.replyError(ctx, c.cb.ResponseURL, fmt.Sprintf("Nothing was patched: %s is managed by %s %s, which would revert a live patch. Make the change in Git (the message shows it).",
			c.inc.Workload(), c.inc.GitOps.Tool, c.inc.GitOps.OwnerRef))
		if c.ref != "" && c.inc.Diagnosis != nil {
			// The message may predate the ownership (a workload a GitOps
			// controller adopted since): show the owner and the Git change
			// in place of the live-patch buttons.
			a.editRoot(ctx, c, Render(a.messageInput(c.inc, "")))
		}
		return false
	}
	if a.deps.Authorizer == nil {
		return true
	}
	err := a.deps.Authorizer.AuthorizeFix(ctx, c.user, c.inc.Kind, c.inc.Namespace, c.inc.Name)
	if err == nil {
		return true
	}
	a.log.Info("slackapp: fix refused before it started", "incident", c.inc.ID, "user", c.user, "action", string(c.value.Action), "err", err)
	reason := err.Error()
	if re, ok := errors.AsType[*FixRefusedError](err); ok {
		reason = re.Reason
	}
	a.replyError(ctx, c.cb.ResponseURL, "You can't do that: "+reason+". Nothing was changed.")
	return false
}

// setImageTemporary applies ActionTempImage through the Fixer.
func (a *App) setImageTemporary(ctx context.Context, incidentID, candidateID, user string) (FixResult, error) {
	tf, ok := a.deps.Fixer.(TemporaryFixer)
	if !ok {
		return FixResult{}, &FixRefusedError{Reason: "this pullfix cannot make temporary live patches"}
	}
	return tf.SetImageTemporary(ctx, incidentID, candidateID, user)
}

// UserEmail is a Slack user's profile e-mail (users.info; Slack returns
// it with the users:read.email scope), for mapping approvers to
// Kubernetes users by e-mail.
func (a *App) UserEmail(ctx context.Context, user string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultAttemptTimeout)
	defer cancel()
	u, err := a.api.GetUserInfoContext(ctx, user)
	if err != nil {
		return "", errors.New(redact(err))
	}
	return u.Profile.Email, nil
}
