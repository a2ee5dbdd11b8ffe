package watch

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestOnOpenedIsOwned: the WithOnOpened hook runs once for a posted
// incident, with the message's reference, and is the watcher's own: Run
// does not return before the hook has (the admission heads-up threading
// lives there, so no goroutine of it outlives the bot).
func TestOnOpenedIsOwned(t *testing.T) {
	e := newCluster(t)
	var (
		mu       sync.Mutex
		calls    []Incident
		refs     []string
		returned atomic.Bool
	)
	hook := func(ctx context.Context, inc Incident, ref string) {
		mu.Lock()
		calls, refs = append(calls, inc), append(refs, ref)
		mu.Unlock()
		// Hold on until the leadership ends, as a slow Slack reply would.
		<-ctx.Done()
		returned.Store(true)
	}
	r := e.start(e.rec, WithOnOpened(hook))
	e.deployment("ui-new", badImage, 1)
	poll(t, 60*time.Second, "the hook called for ui-new", func(context.Context) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return len(calls) > 0, nil
	})
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}
	if !returned.Load() {
		t.Fatal("Run returned before the WithOnOpened hook did: the hook's goroutine is not owned")
	}
	opened := e.rec.openedFor("ui-new")
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 || len(opened) != 1 {
		t.Fatalf("hook calls %d, messages %d; want one each", len(calls), len(opened))
	}
	if calls[0].ID != opened[0].ID || refs[0] != "ref-1" || calls[0].NotifyRef != refs[0] {
		t.Errorf("hook got incident %s ref %q (NotifyRef %q); want %s with ref-1", calls[0].ID, refs[0], calls[0].NotifyRef, opened[0].ID)
	}
}
