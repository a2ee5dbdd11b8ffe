package gitops

import (
	"context"
	"log/slog"
	"sync"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/watch/fix"
	"github.com/pullfix/pullfix/internal/watch/workload"
)

// Guard is GitOps ownership in the bot (issue #17): the patcher's write
// guard that refuses a live patch of a GitOps-owned workload (enforced on
// the object just read, whatever a message showed or a client sent), and
// what it learned about each incident's owner, for the message. It holds
// that state so the Slack adapter (cmd/bot's bridge) can stay stateless.
type Guard struct {
	cs     kubernetes.Interface
	policy Policy
	log    *slog.Logger

	mu     sync.Mutex
	owners map[string]*Owner // incident id → owner; nil value: checked, not GitOps-owned
}

// GuardConfig is the install's GitOps settings.
type GuardConfig struct {
	// AllowTemporary offers a temporary live patch where the policy allows
	// one (PULLFIX_GITOPS_TEMPORARY_PATCH).
	AllowTemporary bool
	// ArgoNamespace is where Applications live when the tracking id names
	// none (PULLFIX_ARGOCD_NAMESPACE); "" keeps DefaultArgoNamespace.
	ArgoNamespace string
}

// NewGuard reads workloads through cs and their owners (Applications,
// Kustomizations, HelmReleases, sources) through dyn; nil dyn detects
// owners from labels and annotations alone.
func NewGuard(cs kubernetes.Interface, dyn dynamic.Interface, cfg GuardConfig, log *slog.Logger) *Guard {
	res := NewResolver(dyn)
	if cfg.ArgoNamespace != "" {
		res.ArgoNamespace = cfg.ArgoNamespace
	}
	if log == nil {
		log = slog.Default()
	}
	return &Guard{cs: cs, policy: Policy{Resolver: res, AllowTemporary: cfg.AllowTemporary}, log: log, owners: map[string]*Owner{}}
}

// Policy is the guard's policy (its resolver included).
func (g *Guard) Policy() Policy { return g.policy }

// WriteGuard refuses a live patch of a GitOps-owned workload, unless it is
// a temporary one the policy allows (fix.WithWriteGuard). It judges the
// object just read.
func (g *Guard) WriteGuard(ctx context.Context, w fix.WriteIntent) error {
	_, err := g.policy.Check(ctx, w.Object, w.Temporary)
	return err
}

// PatcherOption installs WriteGuard in a fix.Patcher.
func (g *Guard) PatcherOption() fix.PatcherOption { return fix.WithWriteGuard(g.WriteGuard) }

// Detect reads the incident's workload and records its GitOps owner (or
// that it has none). A read that fails leaves what was known.
func (g *Guard) Detect(ctx context.Context, id, namespace string, wl workload.Workload) *Owner {
	if g == nil || id == "" {
		return nil
	}
	k := workload.KindOf(wl.Kind)
	if k == nil {
		return g.Cached(id)
	}
	obj, err := k.Get(ctx, g.cs, namespace, wl.Name)
	if err != nil {
		g.log.Debug("gitops: workload not read", "incident", id, "err", err)
		return g.Cached(id)
	}
	var owner *Owner
	if o, ok := g.policy.Resolver.Owner(ctx, obj); ok {
		owner = &o
	}
	g.mu.Lock()
	g.owners[id] = owner
	g.mu.Unlock()
	return owner
}

// Cached is the owner Detect last recorded for the incident (nil: none
// or not known).
func (g *Guard) Cached(id string) *Owner {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.owners[id]
}

// Forget drops a resolved incident's owner.
func (g *Guard) Forget(id string) {
	if g == nil {
		return
	}
	g.mu.Lock()
	delete(g.owners, id)
	g.mu.Unlock()
}

// View is what a message shows of an incident's owner. Its fields are
// slackapp.GitOps's, so the Slack adapter converts it as it is.
type View struct {
	Tool     string // "Argo CD", "Flux"
	OwnerRef string // "Application argocd/shop", "Kustomization flux-system/apps"
	Evidence string // the label or annotation that said so
	RepoURL  string
	Path     string
	Revision string
	Chart    string
	// HelmValues: the image is set in a HelmRelease's values, not in a
	// manifest's image line.
	HelmValues bool
	// Reverts says what happens to a live patch, one sentence.
	Reverts string
	// TemporaryOffered: a temporary live patch is offered.
	TemporaryOffered bool
	// TemporaryNote says why it is not offered, when the install allows
	// them ("" hides it).
	TemporaryNote string
}

// View is what the message shows of the incident's owner, as Detect last
// recorded it; nil when it is not GitOps-owned (or not known).
func (g *Guard) View(id string) *View {
	o := g.Cached(id)
	if o == nil {
		return nil
	}
	v := &View{
		Tool: string(o.Tool), OwnerRef: o.Ref(), Evidence: o.Evidence, RepoURL: o.RepoURL, Path: o.Path,
		Revision: o.Revision, Chart: o.Chart, HelmValues: o.Kind == "HelmRelease", Reverts: o.Reverts(),
	}
	v.TemporaryOffered, v.TemporaryNote = g.Temporary(*o)
	return v
}

// Temporary says whether a temporary live patch of o's workload is
// offered and, when the install allows them but not here, why not.
func (g *Guard) Temporary(o Owner) (offered bool, note string) {
	why := g.policy.TemporaryRefusal(o)
	if why == "" {
		return true, ""
	}
	if g.policy.AllowTemporary {
		return false, why
	}
	return false, ""
}
