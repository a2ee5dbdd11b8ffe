package kubeletsim

import (
	"context"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// bindOne is the scheduler the test control plane lacks: it binds an
// unscheduled pod to one of the simulator's nodes that its nodeSelector and
// required node affinity allow (round-robin), through the Binding
// subresource, which also sets PodScheduled=True. Pods no node of ours fits
// are left alone (another simulator may take them).
func (s *Simulator) bindOne(ctx context.Context, key podKey) error {
	obj, exists, err := s.unscheduled.GetIndexer().GetByKey(key.namespace + "/" + key.name)
	if err != nil || !exists {
		return err
	}
	pod := obj.(*corev1.Pod)
	if pod.Spec.NodeName != "" || pod.DeletionTimestamp != nil ||
		(pod.Spec.SchedulerName != "" && pod.Spec.SchedulerName != corev1.DefaultSchedulerName) {
		return nil
	}
	n := s.pickNode(pod)
	if n == nil {
		return nil
	}
	err = s.cs.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: n.name},
	}, metav1.CreateOptions{})
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil // gone, or bound by someone else
	}
	if err != nil {
		return err
	}
	s.schedRec.Eventf(pod, corev1.EventTypeNormal, reasonScheduled, "Successfully assigned %v/%v to %v", pod.Namespace, pod.Name, n.name)
	return nil
}

func (s *Simulator) pickNode(pod *corev1.Pod) *node {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range s.nodes {
		n := s.nodes[s.rr%len(s.nodes)]
		s.rr++
		if fits(pod, n) {
			return n
		}
	}
	return nil
}

// fits checks spec.nodeSelector and requiredDuringScheduling node affinity
// (label expressions and the metadata.name field the DaemonSet controller
// uses). Taints and resources are not considered.
func fits(pod *corev1.Pod, n *node) bool {
	for k, v := range pod.Spec.NodeSelector {
		if n.labels[k] != v {
			return false
		}
	}
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return true
	}
	for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		if termMatches(term, n) {
			return true
		}
	}
	return false
}

func termMatches(term corev1.NodeSelectorTerm, n *node) bool {
	if len(term.MatchExpressions) == 0 && len(term.MatchFields) == 0 {
		return false
	}
	for _, e := range term.MatchExpressions {
		op := map[corev1.NodeSelectorOperator]selection.Operator{
			corev1.NodeSelectorOpIn: selection.In, corev1.NodeSelectorOpNotIn: selection.NotIn,
			corev1.NodeSelectorOpExists: selection.Exists, corev1.NodeSelectorOpDoesNotExist: selection.DoesNotExist,
			corev1.NodeSelectorOpGt: selection.GreaterThan, corev1.NodeSelectorOpLt: selection.LessThan,
		}[e.Operator]
		req, err := labels.NewRequirement(e.Key, op, e.Values)
		if err != nil || !req.Matches(labels.Set(n.labels)) {
			return false
		}
	}
	for _, f := range term.MatchFields {
		if f.Key != "metadata.name" {
			return false
		}
		in := slices.Contains(f.Values, n.name)
		if (f.Operator == corev1.NodeSelectorOpIn) != in {
			return false
		}
	}
	return true
}
