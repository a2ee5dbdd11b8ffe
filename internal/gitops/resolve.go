package gitops

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

// The owning objects' API versions, newest first: the first one the API
// server serves is used.
var (
	applicationGVRs   = []schema.GroupVersionResource{{Group: "argoproj.io", Version: "v1alpha1", Resource: "applications"}}
	kustomizationGVRs = []schema.GroupVersionResource{
		{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Resource: "kustomizations"},
		{Group: "kustomize.toolkit.fluxcd.io", Version: "v1beta2", Resource: "kustomizations"},
	}
	helmReleaseGVRs = []schema.GroupVersionResource{
		{Group: "helm.toolkit.fluxcd.io", Version: "v2", Resource: "helmreleases"},
		{Group: "helm.toolkit.fluxcd.io", Version: "v2beta2", Resource: "helmreleases"},
	}
	gitRepositoryGVRs = []schema.GroupVersionResource{
		{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "gitrepositories"},
		{Group: "source.toolkit.fluxcd.io", Version: "v1beta2", Resource: "gitrepositories"},
	}
)

// Resolver reads the owning Application, Kustomization or HelmRelease (and
// a Kustomization's GitRepository) to fill in an Owner. It needs only get
// on those kinds; a kind whose CRD is absent, or that the bot may not read,
// leaves the Owner as Detect made it.
type Resolver struct {
	dyn dynamic.Interface
	// ArgoNamespace is where Applications live when the tracking id names
	// no namespace (default "argocd").
	ArgoNamespace string
}

// NewResolver returns a Resolver using dyn; nil dyn resolves nothing.
func NewResolver(dyn dynamic.Interface) *Resolver {
	return &Resolver{dyn: dyn, ArgoNamespace: DefaultArgoNamespace}
}

// Owner detects the object's owner and reads what it can of it. ok is false
// for an object no GitOps controller owns — including one that carries only
// app.kubernetes.io/instance, is managed by Helm, and has no Application of
// that name (a plain Helm release).
func (r *Resolver) Owner(ctx context.Context, obj metav1.Object) (Owner, bool) {
	o, ok := Detect(obj)
	if !ok {
		return Owner{}, false
	}
	missing := false
	if r != nil && r.dyn != nil {
		missing = r.resolve(ctx, &o)
	}
	if o.ByLabelOnly && !o.Read && (missing || obj.GetLabels()[helmManagedBy] == "Helm") {
		// Only the common instance label, and Argo CD's API says it has
		// no such Application (or Helm manages the object): not Argo CD's.
		return Owner{}, false
	}
	return o, true
}

// resolve fills o from its owning object; missing reports that the API
// serves the kind and said the object does not exist.
func (r *Resolver) resolve(ctx context.Context, o *Owner) (missing bool) {
	switch o.Kind {
	case "Application":
		ns := o.Namespace
		if ns == "" {
			ns = r.ArgoNamespace
		}
		u, err := r.get(ctx, applicationGVRs, ns, o.Name)
		if err != nil {
			return apierrors.IsNotFound(err) && !kindNotServed(err)
		}
		o.Namespace, o.Read, o.ByLabelOnly = ns, true, false
		readApplication(u, o)
	case "Kustomization":
		u, err := r.get(ctx, kustomizationGVRs, o.Namespace, o.Name)
		if err != nil {
			return
		}
		o.Read = true
		o.Path, _, _ = unstructured.NestedString(u.Object, "spec", "path")
		readFluxCommon(u, o)
		r.readSource(ctx, u, []string{"spec", "sourceRef"}, o)
	case "HelmRelease":
		u, err := r.get(ctx, helmReleaseGVRs, o.Namespace, o.Name)
		if err != nil {
			return
		}
		o.Read = true
		readFluxCommon(u, o)
		o.Chart, _, _ = unstructured.NestedString(u.Object, "spec", "chart", "spec", "chart")
		if o.Chart != "" {
			// A chart from a Git source: its path in that repository.
			o.Path = o.Chart
		}
		r.readSource(ctx, u, []string{"spec", "chart", "spec", "sourceRef"}, o)
	}
	return false
}

// readApplication reads an Argo CD Application's source and sync policy:
// spec.source (or the first of spec.sources) repoURL, path (or chart) and
// targetRevision; spec.syncPolicy.automated, whose enabled: false turns
// automated sync off even with selfHeal set, and selfHeal.
// (https://argo-cd.readthedocs.io/en/release-3.3/user-guide/auto_sync/)
func readApplication(u *unstructured.Unstructured, o *Owner) {
	src, ok, _ := unstructured.NestedMap(u.Object, "spec", "source")
	if !ok {
		if srcs, ok, _ := unstructured.NestedSlice(u.Object, "spec", "sources"); ok && len(srcs) > 0 {
			src, _ = srcs[0].(map[string]any)
		}
	}
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	o.RepoURL, o.Path, o.Revision = str(src, "repoURL"), str(src, "path"), str(src, "targetRevision")
	if o.Path == "" {
		o.Chart = str(src, "chart")
	}
	if o.RepoURL != "" && o.Revision == "" {
		o.Revision = "HEAD"
	}
	auto, ok, _ := unstructured.NestedMap(u.Object, "spec", "syncPolicy", "automated")
	if !ok {
		return
	}
	if enabled, set := auto["enabled"].(bool); set && !enabled {
		return
	}
	o.AutoSync = true
	o.SelfHeal, _ = auto["selfHeal"].(bool)
}

func readFluxCommon(u *unstructured.Unstructured, o *Owner) {
	o.Suspended, _, _ = unstructured.NestedBool(u.Object, "spec", "suspend")
	o.Interval, _, _ = unstructured.NestedString(u.Object, "spec", "interval")
	o.SelfHeal = !o.Suspended
}

// readSource follows a Flux sourceRef to a GitRepository: its url and ref
// (branch, tag, semver or commit).
func (r *Resolver) readSource(ctx context.Context, u *unstructured.Unstructured, path []string, o *Owner) {
	ref, ok, _ := unstructured.NestedStringMap(u.Object, path...)
	if !ok || ref["kind"] != "GitRepository" || ref["name"] == "" {
		return
	}
	ns := ref["namespace"]
	if ns == "" {
		ns = u.GetNamespace()
	}
	src, err := r.get(ctx, gitRepositoryGVRs, ns, ref["name"])
	if err != nil {
		return
	}
	o.RepoURL, _, _ = unstructured.NestedString(src.Object, "spec", "url")
	if gref, ok, _ := unstructured.NestedStringMap(src.Object, "spec", "ref"); ok {
		for _, k := range []string{"commit", "tag", "semver", "name", "branch"} {
			if v := gref[k]; v != "" {
				o.Revision = v
				break
			}
		}
	}
}

var errNotServed = errors.New("no served version")

// get reads name in ns at the first version the API server serves.
func (r *Resolver) get(ctx context.Context, gvrs []schema.GroupVersionResource, ns, name string) (*unstructured.Unstructured, error) {
	if ns == "" || name == "" {
		return nil, fmt.Errorf("no namespace or name for %s", gvrs[0].Resource)
	}
	last := errNotServed
	for _, gvr := range gvrs {
		u, err := r.dyn.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			return u, nil
		}
		last = err
		// A 404 for the kind (this version not served) tries the next
		// version; a 404 for the object, or a 403, ends it.
		if !apierrors.IsNotFound(err) || !kindNotServed(err) {
			return nil, err
		}
	}
	return nil, last
}

// kindNotServed tells "the server could not find the requested resource"
// (no such kind at this version) from "applications.argoproj.io "x" not
// found" (no such object): the latter names the object.
func kindNotServed(err error) bool {
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		return false
	}
	d := st.Status().Details
	return d == nil || d.Name == "" || strings.Contains(st.Status().Message, "could not find the requested resource")
}
