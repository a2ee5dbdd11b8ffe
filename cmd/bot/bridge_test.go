package main

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes/fake"

	"github.com/pullfix/pullfix/internal/slackapp"
	"github.com/pullfix/pullfix/internal/watch"
)

// TestDismissUnknownIncident: an incident resolved and forgotten between a
// click's lookup and its action is "unknown" to the watcher; the Slack side
// must recognise that as its own ErrUnknownIncident (so the person reads
// "no longer open", not a raw error), for every action the bridge passes on.
func TestDismissUnknownIncident(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	w := watch.New(fake.NewClientset(), nil, nil, watch.WithCluster("test"), watch.WithLogger(log))
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	for !w.IsLeader() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !w.IsLeader() {
		t.Fatal("the watcher did not start leading on the fake clientset")
	}
	b := newBridge(w, nil, nil, nil, nil, Config{Cluster: "test"}, log)
	const id = "0123456789"
	_, recheck := b.Recheck(ctx, id)
	for name, err := range map[string]error{
		"dismiss":      b.Dismiss(ctx, id, "U0ALICE"),
		"snooze":       b.Snooze(ctx, id, "U0ALICE", time.Now().Add(time.Hour)),
		"mark fixing":  b.MarkFixing(ctx, id, "U0ALICE"),
		"clear fixing": b.ClearFixing(ctx, id),
		"recheck":      recheck,
	} {
		if !errors.Is(err, slackapp.ErrUnknownIncident) {
			t.Errorf("%s of an unknown incident: %v, want slackapp.ErrUnknownIncident", name, err)
		}
	}
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("watcher: %v", err)
	}
}
