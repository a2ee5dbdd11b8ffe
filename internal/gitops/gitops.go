// Package gitops finds out whether a workload is owned by a GitOps
// controller (Argo CD or Flux), from what those controllers write on the
// objects they apply, and where its desired state lives. A live patch of
// such a workload does not stick: the controller puts Git's image back
// (Argo CD self-heal within seconds, Flux at its next reconcile), or the
// patch survives as drift nobody reviewed. pullfix therefore offers the
// change to make in Git instead, and its patcher refuses the default
// buttons' patch for these workloads.
//
// Detection reads only metadata the controllers set; the owning
// Application, Kustomization or HelmRelease (and a Flux GitRepository) is
// read with the dynamic client where the CRD exists and the bot may get it,
// to name the source repository, path and revision and, for Argo CD,
// whether self-heal is on. Everything here is plain structs; nothing
// imports Slack.
package gitops

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Tool is the GitOps controller that owns a workload.
type Tool string

// The controllers pullfix recognises.
const (
	ArgoCD Tool = "Argo CD"
	Flux   Tool = "Flux"
)

// Labels and annotations the controllers write on what they apply.
const (
	// ArgoInstanceLabel is Argo CD's label tracking (the default before
	// Argo CD 3.0, still written with "annotation+label"): the value is the
	// Application's name. "Argo CD identifies resources it manages by
	// setting the application instance label to the name of the managing
	// Application … The default label used is the well-known label
	// app.kubernetes.io/instance."
	// (https://argo-cd.readthedocs.io/en/release-2.9/user-guide/resource_tracking/)
	ArgoInstanceLabel = "app.kubernetes.io/instance"
	// ArgoCustomInstanceLabel is the custom tracking label Argo CD's docs
	// show as the example of application.instanceLabelKey.
	ArgoCustomInstanceLabel = "argocd.argoproj.io/instance"
	// ArgoTrackingAnnotation is Argo CD's annotation tracking (the default
	// since 3.0): "<app>:<group>/<kind>:<namespace>/<name>", where <app> is
	// "<app-namespace>_<app-name>" for an Application outside Argo CD's
	// own namespace. Example from the docs:
	// "argocd.argoproj.io/tracking-id: my-app:apps/Deployment:default/my-deployment"
	// (https://argo-cd.readthedocs.io/en/release-3.3/user-guide/resource_tracking/)
	ArgoTrackingAnnotation = "argocd.argoproj.io/tracking-id"

	// Flux's kustomize-controller labels every object it applies with the
	// Kustomization's name and namespace (its inventory and garbage
	// collection key); helm-controller does the same for a HelmRelease.
	// (https://fluxcd.io/flux/components/kustomize/kustomizations/)
	FluxKustomizeName      = "kustomize.toolkit.fluxcd.io/name"
	FluxKustomizeNamespace = "kustomize.toolkit.fluxcd.io/namespace"
	FluxHelmName           = "helm.toolkit.fluxcd.io/name"
	FluxHelmNamespace      = "helm.toolkit.fluxcd.io/namespace"

	helmManagedBy = "app.kubernetes.io/managed-by"
)

// DefaultArgoNamespace is where Argo CD keeps its Applications unless the
// tracking id names another namespace (apps in any namespace).
const DefaultArgoNamespace = "argocd"

// Owner is the GitOps controller object that owns a workload, and what is
// known of where the workload's desired state lives.
type Owner struct {
	Tool Tool
	// Kind of the owning object: Application, Kustomization, HelmRelease.
	Kind      string
	Name      string
	Namespace string
	// Evidence is the label or annotation that said so, "key=value".
	Evidence string
	// ByLabelOnly: only app.kubernetes.io/instance says Argo CD, and no
	// Application of that name was read; Helm charts set that label too.
	ByLabelOnly bool

	// Read says the owning object itself was read (the fields below come
	// from it); false when its CRD is absent or the bot may not get it.
	Read bool
	// RepoURL, Path and Revision are the source: Argo CD's
	// spec.source(s), Flux's GitRepository url and ref with the
	// Kustomization's path. Chart is a HelmRelease's chart.
	RepoURL  string
	Path     string
	Revision string
	Chart    string
	// SelfHeal: Argo CD's spec.syncPolicy.automated.selfHeal with
	// automated sync enabled — a live change is reverted as soon as it is
	// seen. Flux always re-applies at its interval unless suspended, so
	// SelfHeal is true for an unsuspended Kustomization or HelmRelease.
	SelfHeal bool
	// AutoSync: Argo CD syncs by itself (spec.syncPolicy.automated), so a
	// change in Git is deployed without anyone clicking Sync.
	AutoSync  bool
	Suspended bool
	Interval  string
}

// Managed reports whether o names an owner.
func (o *Owner) Managed() bool { return o != nil && o.Tool != "" }

// Ref renders "Application argocd/shop" (the namespace omitted when unknown).
func (o Owner) Ref() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// Reverts says, in one sentence, what happens to a live patch.
func (o Owner) Reverts() string {
	switch {
	case o.Tool == ArgoCD && o.Read && o.SelfHeal:
		return "Argo CD self-heal is on: a live patch is reverted to Git's image within seconds."
	case o.Tool == ArgoCD && o.Read && o.AutoSync:
		return "Argo CD auto-sync is on (self-heal off): a live patch stays as drift until the next change in Git is synced, which puts Git's image back."
	case o.Tool == ArgoCD && o.Read:
		return "Argo CD shows a live patch as OutOfSync drift, and the next sync puts Git's image back."
	case o.Tool == ArgoCD:
		return "Argo CD puts Git's image back at its next sync (at once if self-heal is on)."
	case o.Tool == Flux && o.Suspended:
		return "Flux is suspended for it: a live patch stays until Flux resumes, then its reconcile puts Git's image back."
	case o.Tool == Flux && o.Interval != "":
		return "Flux re-applies Git every " + o.Interval + ": a live patch is reverted at the next reconcile."
	}
	return "Flux re-applies Git at its next reconcile: a live patch is reverted."
}

// Detect says which GitOps controller owns an object, from its labels and
// annotations alone. The Argo CD tracking annotation wins (it names the
// exact object it tracks), then Flux's labels, then Argo CD's instance
// label. The instance label alone on an object Helm manages is not taken as
// Argo CD's: Helm charts set app.kubernetes.io/instance to the release
// name, so only a readable Application of that name settles it (Resolve).
func Detect(obj metav1.Object) (Owner, bool) {
	labels, ann := obj.GetLabels(), obj.GetAnnotations()
	if id := ann[ArgoTrackingAnnotation]; id != "" {
		if app, ns, ok := parseTrackingID(id); ok {
			return Owner{Tool: ArgoCD, Kind: "Application", Name: app, Namespace: ns, Evidence: ArgoTrackingAnnotation + "=" + id}, true
		}
	}
	if name := labels[FluxKustomizeName]; name != "" {
		return Owner{Tool: Flux, Kind: "Kustomization", Name: name, Namespace: labels[FluxKustomizeNamespace],
			Evidence: FluxKustomizeName + "=" + name, SelfHeal: true}, true
	}
	if name := labels[FluxHelmName]; name != "" {
		return Owner{Tool: Flux, Kind: "HelmRelease", Name: name, Namespace: labels[FluxHelmNamespace],
			Evidence: FluxHelmName + "=" + name, SelfHeal: true}, true
	}
	for _, key := range []string{ArgoCustomInstanceLabel, ArgoInstanceLabel} {
		if name := labels[key]; name != "" {
			return Owner{Tool: ArgoCD, Kind: "Application", Name: name, Evidence: key + "=" + name,
				ByLabelOnly: key == ArgoInstanceLabel}, true
		}
	}
	return Owner{}, false
}

// parseTrackingID splits "<app>:<group>/<kind>:<namespace>/<name>"; <app>
// is "<ns>_<name>" for an Application outside Argo CD's namespace.
func parseTrackingID(id string) (app, ns string, ok bool) {
	app, _, ok = strings.Cut(id, ":")
	if !ok || app == "" {
		return "", "", false
	}
	if n, a, found := strings.Cut(app, "_"); found && n != "" && a != "" {
		return a, n, true
	}
	return app, "", true
}

// GitChange is the change to make in Git, as text a person copies: where
// (repository, revision, path), then the image line before and after.
func GitChange(o Owner, kind, name, container, oldImage, newImage string) string {
	var b strings.Builder
	where := "the manifest"
	if o.Kind == "HelmRelease" {
		where = "the HelmRelease's values"
	}
	fmt.Fprintf(&b, "# %s of %s %s", where, kind, name)
	if container != "" {
		fmt.Fprintf(&b, ", container %s", container)
	}
	b.WriteString("\n")
	if o.RepoURL != "" {
		fmt.Fprintf(&b, "# repo: %s", o.RepoURL)
		if o.Revision != "" {
			fmt.Fprintf(&b, " @ %s", o.Revision)
		}
		b.WriteString("\n")
	}
	if o.Path != "" {
		fmt.Fprintf(&b, "# path: %s\n", o.Path)
	}
	if o.Chart != "" {
		fmt.Fprintf(&b, "# chart: %s\n", o.Chart)
	}
	fmt.Fprintf(&b, "-  image: %s\n+  image: %s", oldImage, newImage)
	return b.String()
}

// Summary is one line naming the owner and where its state lives.
func (o Owner) Summary() string {
	s := o.Tool.String() + " " + o.Ref()
	if o.RepoURL != "" {
		s += " from " + o.RepoURL
		if o.Path != "" {
			s += " path " + o.Path
		}
		if o.Revision != "" {
			s += " @ " + o.Revision
		}
	}
	return s
}

func (t Tool) String() string { return string(t) }
