package watch

import "context"

// WithOnOpened calls f after each incident's own message is posted (not
// when an incident joins a storm group's message), with the message's
// reference, in a goroutine the watcher owns: its context ends with the
// leadership, and the leadership ends only after f has returned. cmd/bot
// threads the admission webhook's heads-up into the incident there.
func WithOnOpened(f func(ctx context.Context, inc Incident, ref string)) Option {
	return func(w *Watcher) error { w.onOpened = f; return nil }
}

// afterOpened runs the WithOnOpened hook for a posted incident, off the
// worker that posted it (the hook may wait on the API server).
func (w *Watcher) afterOpened(ctx context.Context, inc Incident, ref string) {
	if w.onOpened == nil || ref == "" {
		return
	}
	inc.NotifyRef = ref
	w.bg.Go(func() { w.onOpened(ctx, inc, ref) })
}
