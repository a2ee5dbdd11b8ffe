package kubeletsim

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"
)

// TestWithoutNormalEvents: the scale option drops Normal events and keeps
// every Warning (what the bot reads).
func TestWithoutNormalEvents(t *testing.T) {
	fake := record.NewFakeRecorder(10)
	s := &Simulator{cfg: newConfig([]Option{WithoutNormalEvents()})}
	r := s.recorder(fake)
	pod := &corev1.Pod{}
	r.Event(pod, corev1.EventTypeNormal, "Pulled", "pulled")
	r.Eventf(pod, corev1.EventTypeNormal, "Started", "started %s", "app")
	r.Event(pod, corev1.EventTypeWarning, "Failed", "Error: ErrImagePull")
	r.AnnotatedEventf(pod, nil, corev1.EventTypeWarning, "BackOff", "Back-off pulling image %q", "x")
	close(fake.Events)
	var got []string
	for e := range fake.Events {
		got = append(got, e)
	}
	if len(got) != 2 || got[0] != "Warning Failed Error: ErrImagePull" {
		t.Fatalf("recorded %q, want the two Warnings", got)
	}
	if s2 := (&Simulator{cfg: newConfig(nil)}); s2.recorder(fake) != record.EventRecorder(fake) {
		t.Fatal("default recorder filtered")
	}
}
