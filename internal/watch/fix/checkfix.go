package fix

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"

	"github.com/pullfix/pullfix/internal/watch/incident"
	"github.com/pullfix/pullfix/internal/watch/workload"
)

// FixCheck is what a workload shows of an approved fix after a restart.
type FixCheck struct {
	// Applied: the workload has the fix (the image, or the pull secret).
	Applied bool
	// ByPullfix: its change-cause names this fix's approver and target, so
	// it was pullfix's patch (not someone's kubectl) that applied it.
	ByPullfix bool
	// Current is the container's image now.
	Current string
	// EventRecorded: the audit Event was missing and is now recorded.
	EventRecorded bool
}

// CheckFix reads the workload and says whether the approved fix (the
// intent persisted before the patch) reached it. When it did through
// pullfix's patch, it makes sure the audit Event exists (a crash may have
// come between the patch and the Event): listed by the workload's UID and
// reason, created when none names this fix.
func (p *Patcher) CheckFix(ctx context.Context, k Key, fix incident.FixIntent) (FixCheck, error) {
	approver := fix.ApproverName()
	lw, err := p.read(ctx, k.Namespace, k.Workload)
	if err != nil {
		return FixCheck{}, err
	}
	c, ok := lw.container(k.Container)
	if !ok {
		return FixCheck{}, &StaleError{Workload: k.Workload, Container: k.Container, Want: k.Image}
	}
	out := FixCheck{Current: c.image}
	reason := ReasonImageUpdated
	if fix.AddsSecret() {
		reason = ReasonPullSecretAdded
		out.Applied = slices.ContainsFunc(lw.spec.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == fix.Target })
	} else {
		out.Applied = c.image == fix.Target
	}
	cause := lw.obj.GetAnnotations()[ChangeCauseAnnotation]
	out.ByPullfix = out.Applied && strings.HasPrefix(cause, "pullfix: ") && strings.Contains(cause, fix.Target) && strings.Contains(cause, approver)
	if !out.ByPullfix {
		return out, nil
	}
	evs, err := p.cs.CoreV1().Events(k.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.SelectorFromSet(fields.Set{"involvedObject.uid": string(lw.obj.GetUID()), "reason": reason}).String(),
	})
	if err != nil {
		return out, fmt.Errorf("looking for the audit Event of %s: %w", k.Workload, err)
	}
	for _, ev := range evs.Items {
		if strings.Contains(ev.Message, fix.Target) && strings.Contains(ev.Message, approver) {
			return out, nil
		}
	}
	msg := fmt.Sprintf("Container %q image changed from %s to %s, approved by %s", k.Container, k.Image, fix.Target, approver)
	if vol, ok := workload.ImageVolumeName(k.Container); ok {
		msg = fmt.Sprintf("Image volume %q reference changed from %s to %s, approved by %s", vol, k.Image, fix.Target, approver)
	}
	if fix.AddsSecret() {
		msg = fmt.Sprintf("imagePullSecret %q added so container %q can pull %s, approved by %s", fix.Target, k.Container, k.Image, approver)
	}
	if err := p.recordEvent(ctx, lw, lw.obj, reason, msg); err != nil {
		return out, fmt.Errorf("recording the audit Event of %s: %w", k.Workload, err)
	}
	p.log.Info("audit Event recorded after a restart (the patch was applied before it)", "namespace", k.Namespace, "workload", k.Workload)
	out.EventRecorded = true
	return out, nil
}
