package slackapp

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/slack-go/slack"
)

// PendingFix is an approved fix as recorded before it was applied: what a
// restarted bot needs to say what became of the click.
type PendingFix struct {
	Action Action
	// Arg is the button's candidate id or secret name.
	Arg string
	// Target is the image (or pull secret) the fix sets.
	Target string
	// By is the approver's Slack user id.
	By string
	// Applied: the workload has the fix (the restarted bot read it).
	Applied bool
}

// markFixing is the double-click guard, recording the approved fix with
// the mark.
func (a *App) markFixing(ctx context.Context, c click, target string) error {
	return a.deps.Incidents.MarkFixing(ctx, c.inc.ID, PendingFix{Action: c.value.Action, Arg: c.value.Arg, Target: target, By: c.user})
}

// ResumeFix answers an approved fix that a previous process (or leader)
// left under way, once the workload has been read (fix.Applied):
//
//   - not applied: the incident is fixable again; the root message shows
//     its buttons with a line saying the click was not carried out, the
//     thread says so, and the approver is told privately to click again;
//   - applied: the thread says so, and the rollout is followed to its end
//     as after any fix, the root message edited to the final state.
func (a *App) ResumeFix(ctx context.Context, inc Incident, fix PendingFix) {
	c := click{user: fix.By, inc: inc, ref: inc.Ref, action: fix.Action,
		value: ActionValue{Cluster: a.cfg.Cluster, IncidentID: inc.ID, Action: fix.Action, Arg: fix.Arg}}
	log := a.log.With("incident", inc.ID, "approver", fix.By, "action", string(fix.Action))
	what := "set the image to " + fix.Target
	if fix.Action == ActionAddSecret {
		what = "add imagePullSecret " + fix.Target
	}
	if !fix.Applied {
		log.Info("slackapp: an approved fix was not applied before a restart; asking to click again")
		if err := a.deps.Incidents.ClearFixing(ctx, inc.ID); err != nil {
			log.Error("slackapp: clear fixing", "err", err)
		}
		note := fmt.Sprintf("pullfix restarted before it changed anything; the fix approved by <@%s> (%s) was not applied. Click it again to apply it.", fix.By, what)
		open := a.messageInput(inc, StateOpen)
		open.StateNote = "The last fix was not applied: " + note
		a.editRoot(ctx, c, Render(open))
		a.thread(ctx, c.ref, KindReply, RenderThreadUpdate(a.threadUpdate(inc, UpdateRefused, fix.By, func(u *ThreadUpdate) {
			u.Action, u.NewImage, u.Note = fix.Action, fix.Target, note
		})))
		a.tellUser(ctx, c.ref, fix.By, fmt.Sprintf(":warning: Your click to %s on %s was not carried out: %s", what, inc.Workload(), note))
		return
	}
	log.Info("slackapp: an approved fix was applied before a restart; following its rollout")
	a.thread(ctx, c.ref, KindReply, RenderThreadUpdate(a.threadUpdate(inc, UpdatePatched, fix.By, func(u *ThreadUpdate) {
		u.Action, u.OldImage, u.NewImage, u.Note = fix.Action, inc.Image, fix.Target, "found applied after pullfix restarted"
	})))
	a.followFix(ctx, c, fix.Target, fix.Target)
}

// tellUser shows text to one person in the channel of ref
// (chat.postEphemeral): the answer to a click whose response_url died
// with the process that received it.
func (a *App) tellUser(ctx context.Context, ref, user, text string) {
	channel, _, ok := ParseRef(ref)
	if !ok || user == "" {
		return
	}
	err := a.queue.Do(ctx, KindEphemeral, "", "", "chat.postEphemeral", func(ctx context.Context) error {
		_, err := a.api.PostEphemeralContext(ctx, channel, user, slack.MsgOptionText(text, false))
		return err
	})
	if err != nil {
		a.log.Warn("slackapp: private answer not sent", "user", user, "err", redact(err))
	}
}

// recordDeadline bounds how long an interaction's acknowledgement waits
// for its fix to be recorded: well inside Slack's 3 s, so a slow state
// write never turns into a timeout the clicker sees.
const recordDeadline = 2 * time.Second

// deferredAck returns the ack function onInteractionAcked calls: send runs
// once, when called or at recordDeadline, whichever comes first.
func deferredAck(send func()) func() {
	var once sync.Once
	ack := func() { once.Do(send) }
	t := time.AfterFunc(recordDeadline, ack)
	return func() { t.Stop(); ack() }
}
