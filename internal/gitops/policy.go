package gitops

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Policy decides whether pullfix may patch a live object. A workload no
// GitOps controller owns is patched as usual. A GitOps-owned one is never
// patched by the default buttons: the fix belongs in Git. A temporary live
// patch is allowed only when the install opted in (AllowTemporary), the
// approver asked for it as such, and — with Argo CD — the Application was
// read and self-heal is off (with self-heal on the patch is undone within
// seconds, so it fixes nothing).
type Policy struct {
	Resolver       *Resolver
	AllowTemporary bool
}

// OwnedError refuses a live patch of a GitOps-owned workload and says
// what to do instead.
type OwnedError struct {
	Owner     Owner
	Temporary bool   // the refused patch was a temporary one
	Why       string // why a temporary patch was refused
}

func (e *OwnedError) Error() string {
	msg := fmt.Sprintf("it is managed by %s (%s): %s Make the change in Git instead", e.Owner.Summary(), e.Owner.Evidence, e.Owner.Reverts())
	if e.Temporary {
		msg = "a temporary live patch is not allowed here: " + e.Why + ". " + msg
	}
	return msg
}

// Check returns the owner (if any) and an *OwnedError when the patch must
// not go ahead.
func (p Policy) Check(ctx context.Context, obj metav1.Object, temporary bool) (Owner, error) {
	o, ok := p.Resolver.Owner(ctx, obj)
	if !ok {
		return Owner{}, nil
	}
	if !temporary {
		return o, &OwnedError{Owner: o}
	}
	if why := p.TemporaryRefusal(o); why != "" {
		return o, &OwnedError{Owner: o, Temporary: true, Why: why}
	}
	return o, nil
}

// TemporaryRefusal says why a temporary live patch of o's workload is not
// offered, "" when it is.
func (p Policy) TemporaryRefusal(o Owner) string {
	switch {
	case !p.AllowTemporary:
		return "temporary live patches are off in this pullfix (PULLFIX_GITOPS_TEMPORARY_PATCH)"
	case o.Tool == ArgoCD && !o.Read:
		return "the Argo CD Application could not be read, so self-heal cannot be ruled out"
	case o.Tool == ArgoCD && o.SelfHeal:
		return "Argo CD self-heal is on and would revert it within seconds"
	}
	return ""
}
