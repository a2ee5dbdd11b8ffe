package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
)

// ErrWorkloadNotFound is returned by DiagnoseWorkload when the named
// workload does not exist; the message names what was looked for.
var ErrWorkloadNotFound = errors.New("workload not found")

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
	switch kind {
	case "deployment", "deployments", "deploy":
		kind = "Deployment"
	case "statefulset", "statefulsets", "sts":
		kind = "StatefulSet"
	case "daemonset", "daemonsets", "ds":
		kind = "DaemonSet"
	case "cronjob", "cronjobs", "cj":
		kind = "CronJob"
	case "job", "jobs":
		kind = "Job"
	case "pod", "pods", "po":
		kind = "Pod"
	default:
		return Workload{}, fmt.Errorf("unknown workload kind %q: use deployment, statefulset, daemonset, cronjob, job or pod", kind)
	}
	return Workload{Kind: kind, Name: name}, nil
}

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
	owners := newOwnerResolver(cs, 64)
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
		for _, fc := range FailingContainers(pod) {
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
	var ls *metav1.LabelSelector
	var err error
	switch wl.Kind {
	case "Deployment":
		d, e := cs.AppsV1().Deployments(ns).Get(ctx, wl.Name, metav1.GetOptions{})
		err = e
		if e == nil {
			ls = d.Spec.Selector
		}
	case "StatefulSet":
		s, e := cs.AppsV1().StatefulSets(ns).Get(ctx, wl.Name, metav1.GetOptions{})
		err = e
		if e == nil {
			ls = s.Spec.Selector
		}
	case "DaemonSet":
		s, e := cs.AppsV1().DaemonSets(ns).Get(ctx, wl.Name, metav1.GetOptions{})
		err = e
		if e == nil {
			ls = s.Spec.Selector
		}
	case "Job":
		j, e := cs.BatchV1().Jobs(ns).Get(ctx, wl.Name, metav1.GetOptions{})
		err = e
		if e == nil {
			ls = j.Spec.Selector
		}
	case "CronJob":
		_, err = cs.BatchV1().CronJobs(ns).Get(ctx, wl.Name, metav1.GetOptions{})
		if err == nil {
			// A CronJob's pods carry no label of their own, so match any pod
			// and let owner resolution keep the CronJob's.
			return labels.Everything(), nil
		}
	case "Pod":
		return labels.Everything(), nil
	}
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%w: %s %q in namespace %q", ErrWorkloadNotFound, wl.Kind, wl.Name, ns)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s %s/%s: %w", wl.Kind, ns, wl.Name, err)
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil, fmt.Errorf("%s %s/%s has an invalid selector: %w", wl.Kind, ns, wl.Name, err)
	}
	return sel, nil
}
