package main

// Issue #17 in the bot: GitOps-owned workloads are fixed in Git, not
// patched live, and approvals can be bound to the approver's own
// Kubernetes RBAC. The decisions live in internal/gitops and
// internal/approval; this file wires them into the bridge (message
// rendering, the private pre-check of a click) and into the patcher's
// write path (watch.WithWriteGuard), where they are enforced whatever a
// message showed or a client sent.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/approval"
	"github.com/pullfix/pullfix/internal/gitops"
	"github.com/pullfix/pullfix/internal/slackapp"
	"github.com/pullfix/pullfix/internal/watch"
)

// fixGuard holds the GitOps policy, the RBAC mapping and what it learned
// about each incident's owner.
type fixGuard struct {
	cs       kubernetes.Interface
	policy   gitops.Policy
	mapping  *approval.Mapping // nil: approvals are not bound to RBAC
	reviewer *approval.Reviewer
	// email looks up a Slack user's e-mail (the Slack app, once built).
	email approval.EmailLookup
	log   *slog.Logger

	mu     sync.Mutex
	owners map[string]*gitops.Owner // incident id → owner; nil value: checked, not GitOps-owned
}

func newFixGuard(cfg Config, cs kubernetes.Interface, dyn dynamic.Interface, log *slog.Logger) (*fixGuard, error) {
	m, err := approval.Parse(cfg.SlackRBACMapping)
	if err != nil {
		return nil, fmt.Errorf("PULLFIX_SLACK_RBAC_MAPPING: %w", err)
	}
	res := gitops.NewResolver(dyn)
	if cfg.ArgoCDNamespace != "" {
		res.ArgoNamespace = cfg.ArgoCDNamespace
	}
	g := &fixGuard{cs: cs, policy: gitops.Policy{Resolver: res, AllowTemporary: cfg.GitOpsTemporaryPatch},
		mapping: m, log: log, owners: map[string]*gitops.Owner{}}
	if m != nil {
		g.reviewer = approval.NewReviewer(cs)
	}
	return g, nil
}

// patcherOptions are the write guards: GitOps ownership on every write,
// the approver's RBAC when the mapping is on.
func (g *fixGuard) patcherOptions() []watch.PatcherOption {
	opts := []watch.PatcherOption{watch.WithWriteGuard(g.gitopsGuard)}
	if g.mapping != nil {
		opts = append(opts, watch.WithWriteGuard(g.rbacGuard))
	}
	return opts
}

// gitopsGuard refuses a live patch of a GitOps-owned workload, unless it
// is a temporary one the policy allows. It judges the object just read.
func (g *fixGuard) gitopsGuard(ctx context.Context, w watch.WriteIntent) error {
	_, err := g.policy.Check(ctx, w.Object, w.Temporary)
	return err
}

// rbacGuard asks the API server whether the approver's Kubernetes identity
// (carried in ctx by the bridge) may patch the workload; without one, the
// write is refused.
func (g *fixGuard) rbacGuard(ctx context.Context, w watch.WriteIntent) error {
	id, ok := approval.FromContext(ctx)
	if !ok {
		return errors.New("approvals are bound to Kubernetes RBAC and the approver has no Kubernetes identity")
	}
	write, err := approval.WorkloadWrite(w.Workload.Kind, w.Namespace, w.Workload.Name)
	if err != nil {
		return err
	}
	return g.reviewer.Check(ctx, id, write)
}

// identity maps a Slack user to their Kubernetes identity.
func (g *fixGuard) identity(ctx context.Context, slackUser string) (approval.Identity, error) {
	return g.mapping.Identity(ctx, slackUser, g.email)
}

// actAs is how the bridge calls the patcher for a Slack user: with the
// mapping on, ctx carries their Kubernetes identity and the approver text
// (change-cause, audit Event) names it beside the Slack user.
func (g *fixGuard) actAs(ctx context.Context, slackUser string) (context.Context, string, error) {
	name := approverName(slackUser)
	if g == nil || g.mapping == nil {
		return ctx, name, nil
	}
	id, err := g.identity(ctx, slackUser)
	if err != nil {
		return ctx, name, &slackapp.FixRefusedError{Reason: err.Error()}
	}
	return approval.WithIdentity(ctx, id), name + " as " + id.String(), nil
}

// detect reads the incident's workload and records its GitOps owner (or
// that it has none). A read that fails leaves what was known.
func (g *fixGuard) detect(ctx context.Context, inc watch.Incident) *gitops.Owner {
	if g == nil || inc.ID == "" {
		return nil
	}
	obj, err := readWorkload(ctx, g.cs, inc.Key.Namespace, inc.Key.Workload)
	if err != nil {
		g.log.Debug("gitops: workload not read", "incident", inc.ID, "err", err)
		return g.cached(inc.ID)
	}
	var owner *gitops.Owner
	if o, ok := g.policy.Resolver.Owner(ctx, obj); ok {
		owner = &o
	}
	g.mu.Lock()
	g.owners[inc.ID] = owner
	g.mu.Unlock()
	return owner
}

func (g *fixGuard) cached(id string) *gitops.Owner {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.owners[id]
}

// forget drops a resolved incident's owner.
func (g *fixGuard) forget(id string) {
	if g == nil {
		return
	}
	g.mu.Lock()
	delete(g.owners, id)
	g.mu.Unlock()
}

// slackGitOps is what the message shows for an owner (nil: not owned).
func (g *fixGuard) slackGitOps(o *gitops.Owner) *slackapp.GitOps {
	if o == nil {
		return nil
	}
	out := &slackapp.GitOps{
		Tool: string(o.Tool), OwnerRef: o.Ref(), Evidence: o.Evidence, RepoURL: o.RepoURL, Path: o.Path,
		Revision: o.Revision, Chart: o.Chart, HelmValues: o.Kind == "HelmRelease", Reverts: o.Reverts(),
	}
	if why := g.policy.TemporaryRefusal(*o); why == "" {
		out.TemporaryOffered = true
	} else if g.policy.AllowTemporary {
		out.TemporaryNote = why
	}
	return out
}

// readWorkload reads the object a fix would patch.
func readWorkload(ctx context.Context, cs kubernetes.Interface, ns string, wl watch.Workload) (metav1.Object, error) {
	get := metav1.GetOptions{}
	switch wl.Kind {
	case "Deployment":
		return cs.AppsV1().Deployments(ns).Get(ctx, wl.Name, get)
	case "StatefulSet":
		return cs.AppsV1().StatefulSets(ns).Get(ctx, wl.Name, get)
	case "DaemonSet":
		return cs.AppsV1().DaemonSets(ns).Get(ctx, wl.Name, get)
	case "CronJob":
		return cs.BatchV1().CronJobs(ns).Get(ctx, wl.Name, get)
	case "Pod":
		return cs.CoreV1().Pods(ns).Get(ctx, wl.Name, get)
	}
	return nil, fmt.Errorf("pullfix does not patch %s", wl.Kind)
}

// ---- the bridge's side ----

// AuthorizeFix is the private pre-check of a fix click (slackapp.FixAuthorizer):
// with the mapping on, the approver's Kubernetes identity must be allowed
// to patch the workload (a SubjectAccessReview) — the same question the
// patcher asks again at write time.
func (b *bridge) AuthorizeFix(ctx context.Context, inc slackapp.Incident, _ slackapp.Action, _, user string) error {
	g := b.guard
	if g == nil || g.mapping == nil {
		return nil
	}
	id, err := g.identity(ctx, user)
	if err != nil {
		return &slackapp.FixRefusedError{Reason: err.Error()}
	}
	write, err := approval.WorkloadWrite(inc.Kind, inc.Namespace, inc.Name)
	if err != nil {
		return &slackapp.FixRefusedError{Reason: err.Error()}
	}
	if err := g.reviewer.Check(ctx, id, write); err != nil {
		return &slackapp.FixRefusedError{Reason: err.Error()}
	}
	return nil
}

// SetImageTemporary is the opt-in temporary live patch of a GitOps-owned
// workload (slackapp.TemporaryFixer): the patcher's GitOps guard lets it
// through only where the policy allows, and the change-cause marks it.
func (b *bridge) SetImageTemporary(ctx context.Context, incidentID, candidateID, approver string) (slackapp.FixResult, error) {
	return b.setImage(ctx, incidentID, candidateID, approver, true)
}
