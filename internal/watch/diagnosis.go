package watch

import (
	"context"
	"errors"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// diagnoseIncident builds the target from one of the incident's pods and runs
// the diagnoser with that pod's own pull credentials.
func (w *Watcher) diagnoseIncident(ctx context.Context, inc Incident) (diagnose.Diagnosis, error) {
	t, kc, pod, err := w.targetOf(ctx, inc)
	if err != nil {
		return diagnose.Diagnosis{}, err
	}
	d := w.diag.Diagnose(ctx, t, kc)
	adaptToSource(inc.Key, pod, &d)
	return d, nil
}

// targetOf builds the diagnosis target and keychain from one of the
// incident's pods, and returns that pod.
func (w *Watcher) targetOf(ctx context.Context, inc Incident) (diagnose.Target, authn.Keychain, *corev1.Pod, error) {
	pod, err := w.getPod(ctx, inc.Key.Namespace, inc.Pods[0])
	if err != nil {
		return diagnose.Target{}, nil, nil, err
	}
	if pod == nil {
		return diagnose.Target{}, nil, nil, errPodVanished
	}
	t, kc := w.inputs.target(ctx, w.log, inc.Key, pod)
	w.kubeletWords(&t, pod)
	return t, kc, pod, nil
}

var errPodVanished = errors.New("pod vanished before diagnosis")

// quickTarget is the part of the target the caches hold — the image and
// the kubelet's words — for a first message that sends no request.
func (w *Watcher) quickTarget(inc Incident) (diagnose.Target, error) {
	k := inc.Key
	pod, err := w.cachedPod(k.Namespace, inc.Pods[0])
	if err != nil {
		return diagnose.Target{}, err
	}
	if pod == nil {
		// A Running pod whose new image fails is outside the Pending
		// cache; its events say what the kubelet said.
		t := diagnose.Target{Cluster: k.Cluster, Namespace: k.Namespace, Kind: k.Kind, Name: k.Name, Container: k.Container, Image: k.Image}
		if ev := eventFor(k, w.recentPullFailures(k.Namespace, inc.Pods[0])); ev != nil {
			t.Reason, t.Message = ev.Reason, ev.Message
			return t, nil
		}
		return t, errPodVanished
	}
	t := podTarget(k, pod)
	w.kubeletWords(&t, pod)
	return t, nil
}

// kubeletWords fills in the kubelet's event when the status holds no
// error text (a bare back-off line).
func (w *Watcher) kubeletWords(t *diagnose.Target, pod *corev1.Pod) {
	if t.Message == "" || isBareBackOff(t.Message) {
		if ev := eventFor(Key{Container: t.Container, Image: t.Image}, w.eventsForUID(string(pod.UID))); ev != nil {
			t.Reason, t.Message = ev.Reason, ev.Message
		}
	}
}

// isBareBackOff reports a pre-1.32 back-off message that names no error.
func isBareBackOff(msg string) bool {
	return strings.HasPrefix(msg, "Back-off pulling image") && !strings.Contains(msg, "ErrImagePull:")
}
