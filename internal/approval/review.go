package approval

import (
	"context"
	"fmt"
	"slices"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Write is one write the bot is about to make on a person's behalf.
type Write struct {
	Verb        string // "patch"
	Group       string // "apps", "" for core
	Resource    string // "deployments"
	Subresource string
	Namespace   string
	Name        string
}

// String renders `patch deployments.apps "ui-new" in namespace "shop"`.
func (w Write) String() string {
	res := w.Resource
	if w.Group != "" {
		res += "." + w.Group
	}
	if w.Subresource != "" {
		res += "/" + w.Subresource
	}
	return fmt.Sprintf("%s %s %q in namespace %q", w.Verb, res, w.Name, w.Namespace)
}

// WorkloadWrite is the patch of a workload of kind, as RBAC names it.
func WorkloadWrite(kind, namespace, name string) (Write, error) {
	w := Write{Verb: "patch", Namespace: namespace, Name: name}
	switch kind {
	case "Deployment":
		w.Group, w.Resource = "apps", "deployments"
	case "StatefulSet":
		w.Group, w.Resource = "apps", "statefulsets"
	case "DaemonSet":
		w.Group, w.Resource = "apps", "daemonsets"
	case "CronJob":
		w.Group, w.Resource = "batch", "cronjobs"
	case "Pod":
		w.Resource = "pods"
	default:
		return Write{}, fmt.Errorf("no RBAC resource for kind %q", kind)
	}
	return w, nil
}

// Denied says the API server refused the identity the write.
type Denied struct {
	Identity Identity
	Write    Write
	Reason   string // the authorizer's reason, often empty for RBAC
}

func (e *Denied) Error() string {
	s := fmt.Sprintf("Kubernetes RBAC does not allow %s to %s", e.Identity, e.Write)
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	return s + "; pullfix acts only within the approver's own rights"
}

// Reviewer asks the API server, with a SubjectAccessReview, whether an
// identity may make a write.
type Reviewer struct {
	cs kubernetes.Interface
}

// NewReviewer uses cs (the bot's own client; it needs create on
// subjectaccessreviews.authorization.k8s.io).
func NewReviewer(cs kubernetes.Interface) *Reviewer { return &Reviewer{cs: cs} }

// authenticatedGroup is the group the API server's authenticator adds to
// every authenticated user: the person's own kubectl request would carry
// it, so bindings to it count for them too.
const authenticatedGroup = "system:authenticated"

// Check returns nil when id may make w, a *Denied when the API server says
// no, and another error when it could not be asked (the caller refuses:
// a check that cannot be made is a no).
func (r *Reviewer) Check(ctx context.Context, id Identity, w Write) error {
	groups := slices.Clone(id.Groups)
	if !slices.Contains(groups, authenticatedGroup) {
		groups = append(groups, authenticatedGroup)
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: id.User, Groups: groups,
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: w.Namespace, Verb: w.Verb, Group: w.Group, Resource: w.Resource,
			Subresource: w.Subresource, Name: w.Name,
		},
	}}
	got, err := r.cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("could not ask the API server whether %s may %s: %w", id, w, err)
	}
	if got.Status.Allowed && !got.Status.Denied {
		return nil
	}
	reason := strings.TrimSpace(got.Status.Reason)
	if got.Status.EvaluationError != "" {
		reason = strings.TrimSpace(reason + " " + got.Status.EvaluationError)
	}
	return &Denied{Identity: id, Write: w, Reason: reason}
}
