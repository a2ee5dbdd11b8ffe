package workload

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
)

// ErrNotFound is returned when the named workload does not exist; the
// message names what was looked for.
var ErrNotFound = errors.New("workload not found")

// Object is a workload as read from the API server.
type Object interface {
	metav1.Object
	runtime.Object
}

// Kind is everything pullfix does with one kind of workload, in one place:
// read, list, watch and patch it, find its pod spec and its pods, and judge
// its rollout. Every per-kind decision elsewhere goes through Kinds.
type Kind struct {
	// Name is the kind as the API names it ("Deployment").
	Name string
	// Aliases are how people type it (kubectl's names and short names).
	Aliases []string
	// APIVersion is the kind's group version ("apps/v1").
	APIVersion string
	// SpecPath is the JSON pointer of the pod spec in the object ("" for
	// kinds with no template: a ReplicaSet is never patched).
	SpecPath string
	// NotPatchable, when set, says why pullfix does not patch this kind and
	// what a person can do instead.
	NotPatchable string

	get   func(ctx context.Context, cs kubernetes.Interface, ns, name string) (Object, error)
	list  func(ctx context.Context, cs kubernetes.Interface, ns string, o metav1.ListOptions) (runtime.Object, error)
	watch func(ctx context.Context, cs kubernetes.Interface, ns string, o metav1.ListOptions) (watch.Interface, error)
	patch func(ctx context.Context, cs kubernetes.Interface, ns, name string, pt types.PatchType, data []byte, o metav1.PatchOptions) (Object, error)
	// spec returns the pod spec inside an object of this kind.
	spec func(Object) *corev1.PodSpec
	// selector returns the label selector of its pods (nil: match every pod
	// and let owner resolution keep the workload's, as for a CronJob).
	selector func(Object) *metav1.LabelSelector
	// rollout judges the object's status; nil for kinds with nothing to
	// roll out (a Pod, a CronJob, a Job).
	rollout func(Object) Rollout
}

// Kinds is the table of workload kinds, in the order people think of them.
var Kinds = []*Kind{
	{
		Name: "Deployment", Aliases: []string{"deployment", "deployments", "deploy"}, APIVersion: "apps/v1", SpecPath: "/spec/template/spec",
		get: func(ctx context.Context, cs kubernetes.Interface, ns, name string) (Object, error) {
			return cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		},
		list: func(ctx context.Context, cs kubernetes.Interface, ns string, o metav1.ListOptions) (runtime.Object, error) {
			return cs.AppsV1().Deployments(ns).List(ctx, o)
		},
		watch: func(ctx context.Context, cs kubernetes.Interface, ns string, o metav1.ListOptions) (watch.Interface, error) {
			return cs.AppsV1().Deployments(ns).Watch(ctx, o)
		},
		patch: func(ctx context.Context, cs kubernetes.Interface, ns, name string, pt types.PatchType, data []byte, o metav1.PatchOptions) (Object, error) {
			return cs.AppsV1().Deployments(ns).Patch(ctx, name, pt, data, o)
		},
		spec:     func(o Object) *corev1.PodSpec { return &o.(*appsv1.Deployment).Spec.Template.Spec },
		selector: func(o Object) *metav1.LabelSelector { return o.(*appsv1.Deployment).Spec.Selector },
		rollout: func(o Object) Rollout {
			d := o.(*appsv1.Deployment)
			st := d.Status
			r := Rollout{Desired: desired(d.Spec.Replicas), Current: st.Replicas, Updated: st.UpdatedReplicas, Ready: st.ReadyReplicas,
				Available: st.AvailableReplicas, Observed: st.ObservedGeneration >= d.Generation}
			r.Done = r.Observed && r.Updated == r.Desired && r.Current == r.Desired && r.Ready == r.Desired && r.Available == r.Desired
			r.Serving = r.Observed && r.Ready > 0 && r.Updated == r.Current
			return r
		},
	},
	{
		Name: "StatefulSet", Aliases: []string{"statefulset", "statefulsets", "sts"}, APIVersion: "apps/v1", SpecPath: "/spec/template/spec",
		get: func(ctx context.Context, cs kubernetes.Interface, ns, name string) (Object, error) {
			return cs.AppsV1().StatefulSets(ns).Get(ctx, name, metav1.GetOptions{})
		},
		list: func(ctx context.Context, cs kubernetes.Interface, ns string, o metav1.ListOptions) (runtime.Object, error) {
			return cs.AppsV1().StatefulSets(ns).List(ctx, o)
		},
		watch: func(ctx context.Context, cs kubernetes.Interface, ns string, o metav1.ListOptions) (watch.Interface, error) {
			return cs.AppsV1().StatefulSets(ns).Watch(ctx, o)
		},
		patch: func(ctx context.Context, cs kubernetes.Interface, ns, name string, pt types.PatchType, data []byte, o metav1.PatchOptions) (Object, error) {
			return cs.AppsV1().StatefulSets(ns).Patch(ctx, name, pt, data, o)
		},
		spec:     func(o Object) *corev1.PodSpec { return &o.(*appsv1.StatefulSet).Spec.Template.Spec },
		selector: func(o Object) *metav1.LabelSelector { return o.(*appsv1.StatefulSet).Spec.Selector },
		rollout: func(o Object) Rollout {
			s := o.(*appsv1.StatefulSet)
			st := s.Status
			r := Rollout{Desired: desired(s.Spec.Replicas), Current: st.Replicas, Updated: st.UpdatedReplicas, Ready: st.ReadyReplicas,
				Available: st.AvailableReplicas, Observed: st.ObservedGeneration >= s.Generation}
			sameRevision := st.CurrentRevision == st.UpdateRevision
			r.Done = r.Observed && r.Ready == r.Desired && r.Available == r.Desired && r.Current == r.Desired
			// An OnDelete StatefulSet rolls a pod only when someone deletes it.
			if s.Spec.UpdateStrategy.Type != appsv1.OnDeleteStatefulSetStrategyType {
				r.Done = r.Done && r.Updated == r.Desired && sameRevision
			}
			r.Serving = r.Observed && r.Ready > 0 && sameRevision
			return r
		},
	},
	{
		Name: "DaemonSet", Aliases: []string{"daemonset", "daemonsets", "ds"}, APIVersion: "apps/v1", SpecPath: "/spec/template/spec",
		get: func(ctx context.Context, cs kubernetes.Interface, ns, name string) (Object, error) {
			return cs.AppsV1().DaemonSets(ns).Get(ctx, name, metav1.GetOptions{})
		},
		list: func(ctx context.Context, cs kubernetes.Interface, ns string, o metav1.ListOptions) (runtime.Object, error) {
			return cs.AppsV1().DaemonSets(ns).List(ctx, o)
		},
		watch: func(ctx context.Context, cs kubernetes.Interface, ns string, o metav1.ListOptions) (watch.Interface, error) {
			return cs.AppsV1().DaemonSets(ns).Watch(ctx, o)
		},
		patch: func(ctx context.Context, cs kubernetes.Interface, ns, name string, pt types.PatchType, data []byte, o metav1.PatchOptions) (Object, error) {
			return cs.AppsV1().DaemonSets(ns).Patch(ctx, name, pt, data, o)
		},
		spec:     func(o Object) *corev1.PodSpec { return &o.(*appsv1.DaemonSet).Spec.Template.Spec },
		selector: func(o Object) *metav1.LabelSelector { return o.(*appsv1.DaemonSet).Spec.Selector },
		rollout: func(o Object) Rollout {
			d := o.(*appsv1.DaemonSet)
			st := d.Status
			r := Rollout{Desired: st.DesiredNumberScheduled, Current: st.CurrentNumberScheduled, Updated: st.UpdatedNumberScheduled,
				Ready: st.NumberReady, Available: st.NumberAvailable, Observed: st.ObservedGeneration >= d.Generation}
			r.Done = r.Observed && r.Updated == r.Desired && r.Ready == r.Desired && r.Available == r.Desired
			r.Serving = r.Observed && r.Ready > 0 && r.Updated == r.Desired
			return r
		},
	},
	{
		Name: "CronJob", Aliases: []string{"cronjob", "cronjobs", "cj"}, APIVersion: "batch/v1", SpecPath: "/spec/jobTemplate/spec/template/spec",
		get: func(ctx context.Context, cs kubernetes.Interface, ns, name string) (Object, error) {
			return cs.BatchV1().CronJobs(ns).Get(ctx, name, metav1.GetOptions{})
		},
		list: func(ctx context.Context, cs kubernetes.Interface, ns string, o metav1.ListOptions) (runtime.Object, error) {
			return cs.BatchV1().CronJobs(ns).List(ctx, o)
		},
		patch: func(ctx context.Context, cs kubernetes.Interface, ns, name string, pt types.PatchType, data []byte, o metav1.PatchOptions) (Object, error) {
			return cs.BatchV1().CronJobs(ns).Patch(ctx, name, pt, data, o)
		},
		spec: func(o Object) *corev1.PodSpec { return &o.(*batchv1.CronJob).Spec.JobTemplate.Spec.Template.Spec },
		// A CronJob's pods carry no label of their own: match any pod and
		// let owner resolution keep the CronJob's.
		selector: func(Object) *metav1.LabelSelector { return nil },
	},
	{
		Name: "Job", Aliases: []string{"job", "jobs"}, APIVersion: "batch/v1",
		NotPatchable: "a Job's pod template is immutable once created. " +
			"Delete the Job and re-create it with the fixed image (if a CronJob created it, fix the CronJob instead: its next run uses the new image)",
		get: func(ctx context.Context, cs kubernetes.Interface, ns, name string) (Object, error) {
			return cs.BatchV1().Jobs(ns).Get(ctx, name, metav1.GetOptions{})
		},
		list: func(ctx context.Context, cs kubernetes.Interface, ns string, o metav1.ListOptions) (runtime.Object, error) {
			return cs.BatchV1().Jobs(ns).List(ctx, o)
		},
		spec:     func(o Object) *corev1.PodSpec { return &o.(*batchv1.Job).Spec.Template.Spec },
		selector: func(o Object) *metav1.LabelSelector { return o.(*batchv1.Job).Spec.Selector },
	},
	{
		Name: "ReplicaSet", Aliases: []string{"replicaset", "replicasets", "rs"}, APIVersion: "apps/v1",
		NotPatchable: "a ReplicaSet does not replace its pods when its template changes. " +
			"Fix the Deployment that owns it, or patch the ReplicaSet by hand and delete its pods",
		get: func(ctx context.Context, cs kubernetes.Interface, ns, name string) (Object, error) {
			return cs.AppsV1().ReplicaSets(ns).Get(ctx, name, metav1.GetOptions{})
		},
		spec:     func(o Object) *corev1.PodSpec { return &o.(*appsv1.ReplicaSet).Spec.Template.Spec },
		selector: func(o Object) *metav1.LabelSelector { return o.(*appsv1.ReplicaSet).Spec.Selector },
	},
	{
		// A pod's container images are the one part of its spec that may
		// change in place; the kubelet restarts the container.
		Name: "Pod", Aliases: []string{"pod", "pods", "po"}, APIVersion: "v1", SpecPath: "/spec",
		get: func(ctx context.Context, cs kubernetes.Interface, ns, name string) (Object, error) {
			return cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		},
		patch: func(ctx context.Context, cs kubernetes.Interface, ns, name string, pt types.PatchType, data []byte, o metav1.PatchOptions) (Object, error) {
			return cs.CoreV1().Pods(ns).Patch(ctx, name, pt, data, o)
		},
		spec: func(o Object) *corev1.PodSpec { return &o.(*corev1.Pod).Spec },
	},
}

// KindOf returns the table entry of a kind name ("Deployment"); nil for a
// kind pullfix does not know.
func KindOf(name string) *Kind {
	for _, k := range Kinds {
		if k.Name == name {
			return k
		}
	}
	return nil
}

// Get reads the workload fresh from the API server. A missing one is an
// error wrapping ErrNotFound that names it.
func (k *Kind) Get(ctx context.Context, cs kubernetes.Interface, ns, name string) (Object, error) {
	obj, err := k.get(ctx, cs, ns, name)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %s %q in namespace %q", ErrNotFound, k.Name, name, ns)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s %s/%s: %w", k.Name, ns, name, err)
	}
	return obj, nil
}

// Listable says whether the kind can be listed and watched (a rollout can
// be followed, a namespace searched).
func (k *Kind) Listable() bool { return k.list != nil }

// List lists the kind in ns ("" for all namespaces).
func (k *Kind) List(ctx context.Context, cs kubernetes.Interface, ns string, o metav1.ListOptions) (runtime.Object, error) {
	if k.list == nil {
		return nil, fmt.Errorf("pullfix does not list %ss", k.Name)
	}
	return k.list(ctx, cs, ns, o)
}

// Watch watches the kind in ns.
func (k *Kind) Watch(ctx context.Context, cs kubernetes.Interface, ns string, o metav1.ListOptions) (watch.Interface, error) {
	if k.watch == nil {
		return nil, fmt.Errorf("pullfix does not watch %ss", k.Name)
	}
	return k.watch(ctx, cs, ns, o)
}

// Patchable says whether pullfix patches this kind.
func (k *Kind) Patchable() bool { return k.patch != nil && k.NotPatchable == "" }

// Patch sends a patch to the workload.
func (k *Kind) Patch(ctx context.Context, cs kubernetes.Interface, ns, name string, pt types.PatchType, data []byte, o metav1.PatchOptions) (Object, error) {
	if !k.Patchable() {
		return nil, fmt.Errorf("pullfix does not patch %ss", k.Name)
	}
	return k.patch(ctx, cs, ns, name, pt, data, o)
}

// PodSpec returns the pod spec inside obj.
func (k *Kind) PodSpec(obj Object) *corev1.PodSpec { return k.spec(obj) }

// Selector returns the selector of obj's pods; everything for a kind
// whose pods carry no label of their own (a CronJob's), so owner
// resolution must keep the workload's.
func (k *Kind) Selector(obj Object) (labels.Selector, error) {
	if k.selector == nil {
		return labels.Everything(), nil
	}
	ls := k.selector(obj)
	if ls == nil {
		return labels.Everything(), nil
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil, fmt.Errorf("%s %s/%s has an invalid selector: %w", k.Name, obj.GetNamespace(), obj.GetName(), err)
	}
	return sel, nil
}

// Owns says whether pod belongs to obj, a workload of this kind: a
// Deployment's pods belong to its ReplicaSets (named NAME-HASH), a Pod is
// its own, the others' pods name them as their controller. A selector may
// match other owners' pods; this is the test that keeps them out.
func (k *Kind) Owns(obj Object, pod *corev1.Pod) bool {
	ref := metav1.GetControllerOf(pod)
	switch k.Name {
	case "Pod":
		return true // followed by name: the pod is the workload
	case "Deployment":
		return ref != nil && ref.Kind == "ReplicaSet" && strings.HasPrefix(ref.Name, obj.GetName()+"-")
	}
	return ref != nil && ref.UID == obj.GetUID()
}

// HasRollout says whether the kind's status tells a rollout (Deployment,
// StatefulSet, DaemonSet).
func (k *Kind) HasRollout() bool { return k.rollout != nil }

// Rollout judges obj's status. For a kind without a rollout it is Done:
// no failing pod left is then the evidence.
func (k *Kind) Rollout(obj Object) Rollout {
	if k.rollout == nil {
		return Rollout{Done: true, Observed: true}
	}
	return k.rollout(obj)
}

// Rollout is what a workload's status says about its rollout. It is the
// one definition of "ready" in pullfix: the watcher resolves an incident,
// the patcher ends a rollout and the resolved message counts pods by it.
type Rollout struct {
	// Desired, Current, Updated, Ready and Available count pods (replicas,
	// or scheduled daemon pods).
	Desired, Current, Updated, Ready, Available int32
	// Observed: the controller has seen the latest spec.
	Observed bool
	// Done: the controller has observed the latest spec and every desired
	// pod runs it, ready and available.
	Done bool
	// Serving: the latest template is rolled out and some of its pods are
	// Ready, so its images run Ready in the cluster (a candidate's hint).
	Serving bool
}

func desired(r *int32) int32 {
	if r == nil {
		return 1
	}
	return *r
}

// Status reads the workload and judges its rollout. A workload that no
// longer exists is Done (nothing of it fails); so is a kind without a
// rollout.
func Status(ctx context.Context, cs kubernetes.Interface, ns string, wl Workload) (Rollout, Object, error) {
	k := KindOf(wl.Kind)
	if k == nil || !k.HasRollout() {
		return Rollout{Done: true, Observed: true}, nil, nil
	}
	obj, err := k.Get(ctx, cs, ns, wl.Name)
	if errors.Is(err, ErrNotFound) {
		return Rollout{Done: true, Observed: true}, nil, nil
	}
	if err != nil {
		return Rollout{}, nil, err
	}
	return k.Rollout(obj), obj, nil
}

// ParseWorkload parses "NAME", "kind/NAME" or "kind.group/NAME" as people
// type them (deployment/ui-new, deploy/ui-new, sts/db, ds/agent, cronjob/x,
// job/x, pod/x). A bare name means a Deployment.
func ParseWorkload(s string) (Workload, error) {
	s = strings.TrimSpace(s)
	kind, name, ok := strings.Cut(s, "/")
	if !ok {
		kind, name = "deployment", s
	}
	if name == "" || strings.Contains(name, "/") {
		return Workload{}, fmt.Errorf("%q is not a workload: want NAME or KIND/NAME, e.g. deployment/ui-new", s)
	}
	kind, _, _ = strings.Cut(strings.ToLower(kind), ".")
	for _, k := range Kinds {
		if k.Name != "ReplicaSet" && slices.Contains(k.Aliases, kind) {
			return Workload{Kind: k.Name, Name: name}, nil
		}
	}
	return Workload{}, fmt.Errorf("unknown workload kind %q: use deployment, statefulset, daemonset, cronjob, job or pod", kind)
}

// FindNamespace finds the one namespace of scope (every namespace when
// empty) holding a workload of that name; none or several is an error
// that says so in words for the person who asked.
func FindNamespace(ctx context.Context, cs kubernetes.Interface, scope []string, wl Workload) (string, error) {
	k := KindOf(wl.Kind)
	if k == nil || !k.HasRollout() {
		return "", fmt.Errorf("say which namespace holds %s: /pullfix %s -n NAMESPACE", wl, strings.ToLower(wl.Kind)+"/"+wl.Name)
	}
	opts := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", wl.Name).String()}
	namespaces := scope
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	var found []string
	for _, ns := range namespaces {
		list, err := k.List(ctx, cs, ns, opts)
		if err != nil {
			if apierrors.IsForbidden(err) {
				return "", fmt.Errorf("this bot may not list %ss here; add -n NAMESPACE", wl.Kind)
			}
			return "", fmt.Errorf("looking for %s: %w", wl, err)
		}
		items, err := namespacesOf(list)
		if err != nil {
			return "", err
		}
		found = append(found, items...)
	}
	switch len(found) {
	case 0:
		where := "any namespace"
		if len(scope) > 0 {
			where = "namespaces " + strings.Join(scope, ", ")
		}
		return "", fmt.Errorf("%w: no %s named %q in %s", ErrNotFound, wl.Kind, wl.Name, where)
	case 1:
		return found[0], nil
	default:
		slices.Sort(found)
		return "", fmt.Errorf("%s %q exists in several namespaces (%s): add -n NAMESPACE", wl.Kind, wl.Name, strings.Join(found, ", "))
	}
}

// namespacesOf returns the namespaces of a list's items.
func namespacesOf(list runtime.Object) ([]string, error) {
	items, err := apimeta.ExtractList(list)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(items))
	for _, o := range items {
		if m, err := apimeta.Accessor(o); err == nil {
			out = append(out, m.GetNamespace())
		}
	}
	return out, nil
}

// TemplateImage returns the image an incident's container field names in
// a pod spec: a container's (or init container's) image, or an image
// volume's reference for VolumePrefix+name; "" when there is none.
func TemplateImage(spec *corev1.PodSpec, container string) string {
	if vol, ok := ImageVolumeName(container); ok {
		for _, v := range spec.Volumes {
			if v.Name == vol && v.Image != nil {
				return v.Image.Reference
			}
		}
		return ""
	}
	for _, c := range spec.Containers {
		if c.Name == container {
			return c.Image
		}
	}
	for _, c := range spec.InitContainers {
		if c.Name == container {
			return c.Image
		}
	}
	return ""
}
