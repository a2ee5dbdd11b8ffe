package watch

import (
	"context"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// Detector is implemented by notifiers that name an incident the moment
// it opens, before its diagnosis: the Slack app, whose storm digest must
// name every broken workload of a storm within a second, when Slack's
// pacing (one post per second per channel) leaves no room for a message
// per workload and the diagnosis budget alone may take half that second.
// Notifiers without it hear of an incident only through Opened.
type Detector interface {
	// Detected is called once when an incident opens, from the worker that
	// opened it and before Opened, with inc.Diagnosis classified from the
	// kubelet's words alone (no request was sent). It must not block.
	Detected(ctx context.Context, inc Incident)
	// Forgotten is called when an incident that was Detected closes before
	// it was notified (its pods went away).
	Forgotten(ctx context.Context, inc Incident)
}

// announce tells a Detector about an incident that just opened, with the
// kubelet's words from the pod cache.
func (w *Watcher) announce(ctx context.Context, k Key, podKey string) {
	det, ok := w.notify.(Detector)
	if !ok {
		return
	}
	w.mu.Lock()
	e := w.incidents[k.String()]
	if e == nil {
		w.mu.Unlock()
		return
	}
	inc := e.Incident
	w.mu.Unlock()
	ns, name := k.Namespace, podKey[len(k.Namespace)+1:]
	inc.Pods = []string{name}
	t, err := w.quickTarget(inc)
	if err != nil {
		// The pod left the cache already: Opened or Forgotten follows.
		t = diagnose.Target{Cluster: k.Cluster, Namespace: ns, Kind: k.Kind, Name: k.Name, Container: k.Container, Image: k.Image}
	}
	d := diagnose.DiagnoseOffline(t)
	inc.Diagnosis = &d
	det.Detected(ctx, inc)
}

// forget tells a Detector that an open incident closed unnotified.
func (w *Watcher) forget(ctx context.Context, inc Incident) {
	if det, ok := w.notify.(Detector); ok && inc.State == StateOpen {
		det.Forgotten(ctx, inc)
	}
}
