package admission

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
)

// EventReason is the reason of the Event a heads-up leaves on the
// workload (`kubectl describe` shows it). The Event is also how the
// replica that opens an incident later — the leader, which may not be the
// replica that reviewed the apply — finds the heads-up to thread.
const EventReason = "PullfixImageWarning"

// Annotations of that Event.
const (
	annImages = "pullfix.dev/images"     // JSON list of the images warned about
	annRef    = "pullfix.dev/notify-ref" // the heads-up's Slack message ("channel:ts"), if posted
)

var workloadAPIVersion = map[string]string{
	"Deployment": "apps/v1", "StatefulSet": "apps/v1", "DaemonSet": "apps/v1",
	"CronJob": "batch/v1", "Job": "batch/v1", "Pod": "v1",
}

// RecordEvent leaves a Warning Event on h's workload with the warnings and
// ref (the heads-up's message, "" when none was posted).
func RecordEvent(ctx context.Context, cs kubernetes.Interface, h HeadsUp, ref string) error {
	var images, texts []string
	for _, f := range h.Findings {
		images = append(images, f.Image)
		texts = append(texts, f.Text)
	}
	imgs, _ := json.Marshal(images)
	now := metav1.NewTime(h.At)
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{GenerateName: h.Name + ".pullfix-", Namespace: h.Namespace,
			Annotations: map[string]string{annImages: string(imgs)}},
		InvolvedObject: corev1.ObjectReference{Kind: h.Kind, APIVersion: workloadAPIVersion[h.Kind], Namespace: h.Namespace, Name: h.Name},
		Reason:         EventReason,
		Message:        fmt.Sprintf("applied by %s with warnings: %s", orUnknown(h.User), strings.Join(texts, "; ")),
		Type:           corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "pullfix"},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "pullfix.dev/admission",
	}
	if ref != "" {
		ev.Annotations[annRef] = ref
	}
	_, err := cs.CoreV1().Events(h.Namespace).Create(ctx, ev, metav1.CreateOptions{})
	return err
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown user"
	}
	return s
}

// Recorded is a heads-up found again through its Event.
type Recorded struct {
	// Text is the Event's message: who applied it, and the warnings.
	Text string
	// Ref is the heads-up's Slack message, "" when none was posted.
	Ref string
	At  time.Time
}

// FindHeadsUp returns the newest heads-up recorded for the workload
// namespace/kind/name about image (within the API server's event TTL,
// an hour by default).
func FindHeadsUp(ctx context.Context, cs kubernetes.Interface, namespace, kind, name, image string) (Recorded, bool, error) {
	sel := fields.Set{"involvedObject.kind": kind, "involvedObject.name": name, "reason": EventReason}.AsSelector().String()
	l, err := cs.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return Recorded{}, false, err
	}
	var best *corev1.Event
	for i := range l.Items {
		ev := &l.Items[i]
		var images []string
		if json.Unmarshal([]byte(ev.Annotations[annImages]), &images) != nil || !slices.Contains(images, image) {
			continue
		}
		if best == nil || ev.FirstTimestamp.After(best.FirstTimestamp.Time) {
			best = ev
		}
	}
	if best == nil {
		return Recorded{}, false, nil
	}
	return Recorded{Text: best.Message, Ref: best.Annotations[annRef], At: best.FirstTimestamp.Time}, true, nil
}
