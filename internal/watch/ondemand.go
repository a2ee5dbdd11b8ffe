package watch

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"

	"github.com/pullfix/pullfix/internal/watch/workload"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// ParseWorkload parses a workload as people type it; see
// workload.ParseWorkload.
func ParseWorkload(s string) (Workload, error) { return workload.ParseWorkload(s) }

// DiagnoseWorkload diagnoses one workload now, without informers: it reads
// the workload, lists its pods and diagnoses each container that cannot pull
// its image. No incident means healthy (as far as images go).
func DiagnoseWorkload(ctx context.Context, cs kubernetes.Interface, d Diagnoser, log *slog.Logger, cluster, namespace string, wl Workload) ([]Incident, error) {
	if log == nil {
		log = slog.Default()
	}
	sel, err := workloadSelector(ctx, cs, namespace, wl)
	if err != nil {
		return nil, err
	}
	var pods []corev1.Pod
	if wl.Kind == "Pod" {
		p, err := cs.CoreV1().Pods(namespace).Get(ctx, wl.Name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		pods = []corev1.Pod{*p}
	} else {
		list, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return nil, fmt.Errorf("list pods of %s in %s: %w", wl, namespace, err)
		}
		pods = list.Items
	}
	owners := workload.NewOwnerResolver(cs, 64)
	in := newInputs(cs)
	byKey := map[string]*Incident{}
	sample := map[string]*corev1.Pod{}
	for i := range pods {
		pod := &pods[i]
		if pod.DeletionTimestamp != nil {
			continue
		}
		owner, err := owners.Resolve(ctx, pod)
		if err != nil || owner != wl {
			// A label selector can match pods of other owners; keep only
			// this workload's.
			continue
		}
		for _, fc := range workload.FailingContainers(pod) {
			k := Key{Cluster: cluster, Namespace: namespace, Workload: sourceWorkload(wl, pod, fc), Container: fc.Name, Image: fc.Image}
			inc := byKey[k.String()]
			if inc == nil {
				inc = &Incident{Key: k, State: StateOpen}
				byKey[k.String()] = inc
				sample[k.String()] = pod
			}
			inc.Pods = append(inc.Pods, pod.Name)
		}
	}
	defer in.wait()
	out := make([]Incident, 0, len(byKey))
	for ks, inc := range byKey {
		t, kc := in.target(ctx, log, inc.Key, sample[ks])
		diag := d.Diagnose(ctx, t, kc)
		adaptToSource(inc.Key, sample[ks], &diag)
		inc.Diagnosis = &diag
		sort.Strings(inc.Pods)
		out = append(out, *inc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key.String() < out[j].Key.String() })
	return out, nil
}

// workloadSelector reads the workload and returns the selector of its pods.
func workloadSelector(ctx context.Context, cs kubernetes.Interface, ns string, wl Workload) (labels.Selector, error) {
	if wl.Kind == "Pod" {
		return labels.Everything(), nil
	}
	k := workload.KindOf(wl.Kind)
	if k == nil {
		return nil, fmt.Errorf("unknown workload kind %q", wl.Kind)
	}
	obj, err := k.Get(ctx, cs, ns, wl.Name)
	if err != nil {
		return nil, err
	}
	return k.Selector(obj)
}

// DiagnoseNow diagnoses a workload now, for a person who asked (/pullfix
// NAME): kind "" means a Deployment, namespace "" means the one watched
// namespace that holds a workload of that name. It returns healthy when
// no container fails to pull; otherwise the first failing container's
// incident — the watcher's own when it tracks it (so its buttons work),
// with the fresh diagnosis and the pull secrets proven for it. Errors say
// in words what is wrong: an unknown workload, an ambiguous name, a
// namespace outside the watch.
func (w *Watcher) DiagnoseNow(ctx context.Context, namespace, kind, name string) (inc Incident, healthy bool, err error) {
	wl, err := workload.ParseWorkload(strings.TrimPrefix(kind+"/"+name, "/"))
	if err != nil {
		return Incident{}, false, err
	}
	if namespace == "" {
		if namespace, err = workload.FindNamespace(ctx, w.cs, w.namespaces, wl); err != nil {
			return Incident{}, false, err
		}
	}
	if len(w.namespaces) > 0 && !slices.Contains(w.namespaces, namespace) {
		return Incident{}, false, fmt.Errorf("namespace %q is outside what this bot watches (%s)", namespace, strings.Join(w.namespaces, ", "))
	}
	incs, err := DiagnoseWorkload(ctx, w.cs, w.diag, w.log, w.cluster, namespace, wl)
	if err != nil {
		return Incident{}, false, err
	}
	if len(incs) == 0 {
		return Incident{Key: Key{Cluster: w.cluster, Namespace: namespace, Workload: wl}}, true, nil
	}
	inc = incs[0]
	inc.ID = IncidentID(inc.Key)
	if known, ok := w.Incident(inc.ID); ok {
		// The watcher tracks it: answer with its state (so the buttons
		// work) and the fresh diagnosis.
		known.Diagnosis = inc.Diagnosis
		inc = known
	}
	// Asked on demand: the answer may wait for the search.
	if proven, err := w.provenSecrets(ctx, inc.ID); err == nil {
		inc.ProvenSecrets = proven
	} else if proven, searched := w.searchSecrets(ctx, inc); searched {
		inc.ProvenSecrets = proven
	}
	return inc, false, nil
}
