package workload

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/sync/singleflight"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
)

// OwnerResolver maps a pod to the workload a person would name: the
// Deployment behind its ReplicaSet, the CronJob behind its Job. It reads
// owners on demand with a small bounded cache instead of informers on every
// ReplicaSet and Job in the cluster, because memory must scale with what
// fails, not with the cluster (design §5).
type OwnerResolver struct {
	cs  kubernetes.Interface
	max int

	mu       sync.Mutex
	cache    map[string]Workload // "namespace/Kind/name" of an intermediate owner → workload
	inflight singleflight.Group
}

// deploymentByName resolves a Deployment's pod without a request: the
// Deployment controller names each ReplicaSet "<deployment>-<hash>" and
// labels it and its pods pod-template-hash=<hash> (generateReplicaSetName
// in pkg/controller/deployment/sync.go, v1.37). In a storm every new
// workload's first pods would otherwise wait for a ReplicaSet read from a
// loaded API server. A ReplicaSet adopted under another name, a bare one,
// or one at the name-length limit (where the controller truncates the
// Deployment's name) takes the read.
func deploymentByName(pod *corev1.Pod, ref *metav1.OwnerReference) (Workload, bool) {
	hash := pod.Labels[appsv1.DefaultDeploymentUniqueLabelKey]
	if ref.Kind != "ReplicaSet" || hash == "" || !strings.HasPrefix(ref.APIVersion, "apps/") ||
		len(ref.Name) >= validation.DNS1123SubdomainMaxLength {
		return Workload{}, false
	}
	name, ok := strings.CutSuffix(ref.Name, "-"+hash)
	if !ok || name == "" {
		return Workload{}, false
	}
	return Workload{Kind: "Deployment", Name: name}, true
}

// NewOwnerResolver returns a resolver reading through cs that caches at
// most max owners (4096 when max ≤ 0).
func NewOwnerResolver(cs kubernetes.Interface, max int) *OwnerResolver {
	if max <= 0 {
		max = 4096
	}
	return &OwnerResolver{cs: cs, max: max, cache: map[string]Workload{}}
}

// Resolve returns the workload that owns pod. A pod whose owner is gone or
// unreadable resolves to its nearest known owner, never to an error that
// loses the incident.
func (r *OwnerResolver) Resolve(ctx context.Context, pod *corev1.Pod) (Workload, error) {
	ref := metav1.GetControllerOf(pod)
	if ref == nil {
		return Workload{Kind: "Pod", Name: pod.Name}, nil
	}
	switch ref.Kind {
	case "ReplicaSet", "Job":
		if w, ok := deploymentByName(pod, ref); ok {
			return w, nil
		}
		key := pod.Namespace + "/" + ref.Kind + "/" + ref.Name
		r.mu.Lock()
		w, ok := r.cache[key]
		r.mu.Unlock()
		if ok {
			return w, nil
		}
		// The pods of one new owner arrive together: one read for all.
		v, err, _ := r.inflight.Do(key, func() (any, error) { return r.lookup(ctx, pod.Namespace, ref.Kind, ref.Name) })
		if err != nil {
			return Workload{Kind: ref.Kind, Name: ref.Name}, err
		}
		w = v.(Workload)
		r.mu.Lock()
		if len(r.cache) >= r.max {
			// Owners change rarely; dropping everything is simpler than LRU and
			// costs one GET per live owner.
			clear(r.cache)
		}
		r.cache[key] = w
		r.mu.Unlock()
		return w, nil
	default:
		return Workload{Kind: ref.Kind, Name: ref.Name}, nil
	}
}

func (r *OwnerResolver) lookup(ctx context.Context, ns, kind, name string) (Workload, error) {
	meta, err := KindOf(kind).get(ctx, r.cs, ns, name)
	if apierrors.IsNotFound(err) {
		return Workload{Kind: kind, Name: name}, nil
	}
	if err != nil {
		return Workload{}, fmt.Errorf("resolve owner %s %s/%s: %w", kind, ns, name, err)
	}
	if ref := metav1.GetControllerOf(meta); ref != nil {
		switch {
		case kind == "ReplicaSet" && ref.Kind == "Deployment", kind == "Job" && ref.Kind == "CronJob":
			return Workload{Kind: ref.Kind, Name: ref.Name}, nil
		}
	}
	return Workload{Kind: kind, Name: name}, nil
}
