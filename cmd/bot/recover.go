package main

import (
	"context"
	"errors"
	"time"

	"github.com/pullfix/pullfix/internal/slackapp"
	"github.com/pullfix/pullfix/internal/watch"
)

// Crash safety on the bridge: the watcher persists a post id before each
// root post and the approved fix before each patch (internal/watch's
// reconcile.go); the bridge finds a post in Slack's history and answers a
// fix a previous process left under way.

// MarkFixingFor is MarkFixing with the approved fix recorded in the
// watcher's state (slackapp.FixRecorder).
func (b *bridge) MarkFixingFor(ctx context.Context, id string, fix slackapp.PendingFix) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	inc, ok := b.w.Incident(id)
	if !ok {
		return unknownIncidentError{watch.ErrUnknownIncident}
	}
	if inc.State == watch.StateFixing {
		return &slackapp.FixInProgressError{By: inc.By}
	}
	if err := b.w.MarkFixingFor(ctx, id, watch.FixIntent{Action: string(fix.Action), Arg: fix.Arg, Target: fix.Target, By: fix.By}); err != nil {
		return slackErr(err)
	}
	b.inflight[id] = true
	return nil
}

// FindPosted looks in Slack for the root message of a post that may have
// gone out before a crash (watch.PostFinder).
func (b *bridge) FindPosted(ctx context.Context, inc watch.Incident) (string, error) {
	return b.app.FindPosted(ctx, b.toSlack(ctx, inc), inc.Opened)
}

// Adopted brings a found root message up to date (watch.PostFinder).
func (b *bridge) Adopted(ctx context.Context, inc watch.Incident) error {
	if err := b.app.Adopt(ctx, b.toSlack(ctx, inc)); err != nil {
		return err
	}
	b.findSecretsLater(ctx, inc, inc.NotifyRef)
	return nil
}

// resumeFixes is the watcher's fix-resume hook: it runs before the
// watcher's workers, so it only marks the fixes in flight (the watcher's
// Resolved then stays quiet for them) and reads and reports in the
// background.
func (b *bridge) resumeFixes(ctx context.Context, fixing []watch.Incident) {
	b.mu.Lock()
	for _, inc := range fixing {
		b.inflight[inc.ID] = true
	}
	b.mu.Unlock()
	for _, inc := range fixing {
		go b.resumeFix(ctx, inc)
	}
}

// resumeFix reads whether inc's recorded fix reached the workload (the
// audit Event made sure of when it did) and has the Slack app say so:
// follow the rollout, or ask the approver to click again.
func (b *bridge) resumeFix(ctx context.Context, inc watch.Incident) {
	fix := *inc.Fix
	var chk watch.FixCheck
	delay := 500 * time.Millisecond
	for {
		var err error
		chk, err = b.p.CheckFix(ctx, inc.Key, fix, approverName(fix.By))
		var stale *watch.StaleError
		if err == nil || errors.Is(err, watch.ErrWorkloadNotFound) || errors.As(err, &stale) {
			break
		}
		b.log.Warn("reading whether an approved fix was applied before the restart; retrying", "incident", inc.ID, "err", err, "retry_in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(2*delay, 10*time.Second)
	}
	b.log.Info("resuming a fix left under way by a previous process", "incident", inc.ID, "approver", fix.By,
		"target", fix.Target, "applied", chk.Applied, "by_pullfix", chk.ByPullfix, "audit_event_recorded", chk.EventRecorded)
	if !chk.Applied && fix.Action == string(slackapp.ActionAddSecret) {
		b.provenSecrets(ctx, inc) // the re-rendered message offers the secret again
	}
	b.app.ResumeFix(ctx, b.toSlack(ctx, inc), slackapp.PendingFix{
		Action: slackapp.Action(fix.Action), Arg: fix.Arg, Target: fix.Target, By: fix.By, Applied: chk.Applied,
	})
	if !chk.Applied {
		b.mu.Lock()
		delete(b.inflight, inc.ID)
		b.mu.Unlock()
	}
}
