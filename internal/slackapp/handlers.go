package slackapp

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/slack-go/slack"
)

// ephemeral is a plain ephemeral answer.
func ephemeral(text string) slack.Msg {
	return slack.Msg{ResponseType: slack.ResponseTypeEphemeral, Text: text}
}

// ephemeralMsg turns a rendered message into an ephemeral answer.
func ephemeralMsg(m Message) *slack.Msg {
	msg := m.Msg()
	msg.ResponseType = slack.ResponseTypeEphemeral
	return &msg
}

// validResponseURL accepts only absolute http(s) URLs: a response_url comes
// from an authenticated payload, but a malformed one must not be dialled.
func validResponseURL(u string) bool {
	p, err := url.Parse(u)
	return err == nil && (p.Scheme == "https" || p.Scheme == "http") && p.Host != ""
}

// reply answers one person through a response_url (ephemeral, or replacing
// the message they clicked when msg.ReplaceOriginal is set). It goes through
// the queue (retried, not paced per channel).
func (a *App) reply(ctx context.Context, responseURL string, msg slack.Msg) {
	if !validResponseURL(responseURL) {
		a.log.Warn("slackapp: no usable response_url; answer not sent")
		return
	}
	opts := []slack.MsgOption{slack.MsgOptionText(msg.Text, false)}
	if msg.ReplaceOriginal {
		opts = append(opts, slack.MsgOptionReplaceOriginal(responseURL))
	} else {
		rt := msg.ResponseType
		if rt == "" {
			rt = slack.ResponseTypeEphemeral
		}
		opts = append(opts, slack.MsgOptionResponseURL(responseURL, rt))
	}
	if len(msg.Blocks.BlockSet) > 0 {
		opts = append(opts, slack.MsgOptionBlocks(msg.Blocks.BlockSet...))
	}
	err := a.queue.Do(ctx, KindEphemeral, "", "", "response_url", func(ctx context.Context) error {
		_, _, err := a.web.PostMessageContext(ctx, "", opts...)
		return err
	})
	if err != nil {
		a.log.Warn("slackapp: answer via response_url failed", "err", redact(err))
	}
}

// replyError answers one person with an ephemeral error.
func (a *App) replyError(ctx context.Context, responseURL, text string) {
	a.reply(ctx, responseURL, *ephemeralMsg(RenderError(text)))
}

// busy tells a person the bot is overloaded (the worker backlog is full).
func (a *App) busy(responseURL string) {
	ctx, cancel := context.WithTimeout(a.ctx, DefaultAttemptTimeout)
	defer cancel()
	a.replyError(ctx, responseURL, "pullfix is busy right now; nothing was done. Please try again in a minute.")
}

// ---- slash commands ------------------------------------------------------

// onCommand decides the immediate acknowledgement of a slash command (fast
// and pure: it runs before the ack, within Slack's 3 s) and the work to do
// after it.
func (a *App) onCommand(cmd slack.SlashCommand) (*slack.Msg, func(context.Context)) {
	if cmd.Command != a.cfg.Command {
		a.log.Warn("slackapp: unexpected slash command", "command", shorten(cmd.Command, 40))
		return ephemeralMsg(RenderError(fmt.Sprintf("pullfix answers %s, not %s.", a.cfg.Command, shorten(cmd.Command, 40)))), nil
	}
	c, err := ParseCommand(cmd.Text)
	if err != nil {
		return ephemeralMsg(RenderError(fmt.Sprintf("%v\nUsage: %s %s", err, a.cfg.Command, CommandUsage))), nil
	}
	switch c.Kind {
	case CommandHelp:
		return ephemeralMsg(RenderHelp()), nil
	case CommandList:
		return nil, func(ctx context.Context) { a.runList(ctx, cmd, c) }
	case CommandDiagnose:
		if a.deps.OnDemand == nil {
			return ephemeralMsg(RenderError("On-demand diagnosis is not enabled in this pullfix.")), nil
		}
		where := "the watched namespaces"
		if c.Namespace != "" {
			where = "namespace " + c.Namespace
		}
		ack := ephemeral(fmt.Sprintf(":mag: Diagnosing `%s` in %s (cluster `%s`)…", c.Workload(), where, a.cfg.Cluster))
		return &ack, func(ctx context.Context) { a.runDiagnose(ctx, cmd, c) }
	}
	return ephemeralMsg(RenderError("Unknown command; try " + a.cfg.Command + " help")), nil
}

func (a *App) runList(ctx context.Context, cmd slack.SlashCommand, c Command) {
	incs, err := a.deps.Incidents.List(ctx, c.Namespace)
	if err != nil {
		a.log.Error("slackapp: list incidents", "err", err)
		a.replyError(ctx, cmd.ResponseURL, "Could not list incidents: "+err.Error())
		return
	}
	in := ListInput{Cluster: a.cfg.Cluster, Namespace: c.Namespace}
	for _, inc := range incs {
		it := ListItem{IncidentID: inc.ID, Namespace: inc.Namespace, Kind: inc.Kind, Name: inc.Name,
			Container: inc.Container, Image: inc.Image, State: inc.messageState(), PodCount: len(inc.Pods)}
		if inc.Diagnosis != nil {
			it.Cause = inc.Diagnosis.Cause
		}
		in.Items = append(in.Items, it)
	}
	a.reply(ctx, cmd.ResponseURL, *ephemeralMsg(RenderList(in)))
}

func (a *App) runDiagnose(ctx context.Context, cmd slack.SlashCommand, c Command) {
	inc, healthy, err := a.deps.OnDemand.Diagnose(ctx, c.Namespace, c.WorkloadKind, c.Name)
	switch {
	case err != nil:
		a.log.Info("slackapp: on-demand diagnosis refused", "workload", c.Workload(), "err", err)
		a.replyError(ctx, cmd.ResponseURL, err.Error())
	case healthy:
		in := HealthyInput{Cluster: a.cfg.Cluster, Namespace: inc.Namespace, Kind: inc.Kind, Name: inc.Name}
		if in.Namespace == "" {
			in.Namespace = c.Namespace
		}
		if in.Name == "" {
			in.Name = c.Name
		}
		if inc.Image != "" {
			in.Images = []string{inc.Image}
		}
		in.Ready, in.Desired = len(inc.Pods), len(inc.Pods)
		a.reply(ctx, cmd.ResponseURL, *ephemeralMsg(RenderHealthy(in)))
	default:
		// An ephemeral answer has no thread: its details follow the
		// message itself, below a divider.
		in := a.messageInput(inc, StateOpen)
		a.reply(ctx, cmd.ResponseURL, *ephemeralMsg(WithDetails(Render(in), RenderDetails(in))))
	}
}

// ---- interactions --------------------------------------------------------

// onInteraction returns the work for one interaction; everything happens
// after the ack.
func (a *App) onInteraction(cb slack.InteractionCallback) func(context.Context) {
	if cb.Type != slack.InteractionTypeBlockActions || len(cb.ActionCallback.BlockActions) == 0 {
		a.log.Warn("slackapp: interaction ignored", "type", string(cb.Type))
		if cb.ResponseURL == "" {
			return nil
		}
		return func(ctx context.Context) {
			a.replyError(ctx, cb.ResponseURL, "pullfix does not handle this kind of interaction; nothing was changed.")
		}
	}
	return func(ctx context.Context) {
		for _, act := range cb.ActionCallback.BlockActions {
			if act == nil {
				continue
			}
			a.onAction(ctx, cb, *act, nil)
		}
	}
}

// onInteractionAcked is onInteraction for a transport that acknowledges
// when told: ack is called once a fix's approval is durable (or at once
// for anything else), and in any case when the work ends. A bot that dies
// between receiving a fix click and recording it therefore never
// acknowledged it, and Slack tells the clicker it failed: a click is
// carried out, answered, or visibly not received — never silently lost.
func (a *App) onInteractionAcked(cb slack.InteractionCallback, ack func()) func(context.Context) {
	if cb.Type != slack.InteractionTypeBlockActions || len(cb.ActionCallback.BlockActions) == 0 {
		work := a.onInteraction(cb)
		ack()
		return work
	}
	return func(ctx context.Context) {
		defer ack()
		for _, act := range cb.ActionCallback.BlockActions {
			if act == nil {
				continue
			}
			a.onAction(ctx, cb, *act, ack)
		}
	}
}

// click is one decoded, authorised button press.
type click struct {
	cb     slack.InteractionCallback
	user   string
	value  ActionValue
	inc    Incident
	ref    string // root message "channel:ts", "" when the click came from an ephemeral answer
	action Action
	// recorded acknowledges the click to Slack (see onInteractionAcked); a
	// fix calls it once its approval is durable.
	recorded func()
}

func (a *App) onAction(ctx context.Context, cb slack.InteractionCallback, act slack.BlockAction, ack func()) {
	if ack == nil {
		ack = func() {}
	}
	user := cb.User.ID
	log := a.log.With("user", user, "action_id", shorten(act.ActionID, 60))
	if user == "" {
		log.Warn("slackapp: click without a user; ignored")
		return
	}
	action, ok := ActionForID(act.ActionID)
	if !ok {
		log.Warn("slackapp: unknown button")
		a.replyError(ctx, cb.ResponseURL, "This button is not one pullfix knows; nothing was changed.")
		return
	}
	v, err := DecodeClick(a.cfg.Cluster, act.ActionID, act.Value)
	if err != nil {
		var ve *ValueError
		switch {
		case errors.Is(err, ErrOtherCluster) && errors.As(err, &ve):
			log.Warn("slackapp: click for another cluster refused", "reason", ve.Reason)
			a.replyError(ctx, cb.ResponseURL, "Refused: "+ve.Reason+". Each cluster's pullfix acts only on its own messages; nothing was changed.")
		default:
			log.Warn("slackapp: malformed button value refused", "err", err)
			a.replyError(ctx, cb.ResponseURL, "This button's value is not one pullfix produced; nothing was changed.")
		}
		return
	}
	inc, err := a.deps.Incidents.Incident(ctx, v.IncidentID)
	if err != nil {
		if errors.Is(err, ErrUnknownIncident) {
			a.replyError(ctx, cb.ResponseURL, "This incident is no longer open in pullfix; nothing was changed. `/pullfix list` shows the open ones.")
		} else {
			log.Error("slackapp: incident lookup failed", "incident", v.IncidentID, "err", err)
			a.replyError(ctx, cb.ResponseURL, "Could not look the incident up; nothing was changed. Please try again.")
		}
		return
	}
	allowed, why, err := a.deps.Approvers.AllowedTo(ctx, v.Action, inc.Namespace, user)
	if err != nil {
		log.Warn("slackapp: approver check failed", "err", err)
	}
	if !allowed {
		log.Info("slackapp: click by non-approver refused", "incident", inc.ID, "action", string(v.Action))
		a.replyError(ctx, cb.ResponseURL, "You can't do that: "+why+". Nothing was changed.")
		return
	}
	if !v.Action.IsFix() {
		ack()
	}
	c := click{cb: cb, user: user, value: v, inc: inc, action: action, ref: inc.Ref, recorded: ack}
	// A storm digest member's own message is its card in the digest's
	// thread: the message clicked.
	if (c.ref == "" || IsDigestRef(c.ref)) && !cb.Container.IsEphemeral && cb.Container.ChannelID != "" && cb.Container.MessageTs != "" {
		c.ref = Ref(cb.Container.ChannelID, cb.Container.MessageTs)
	}
	switch v.Action {
	case ActionSetImage, ActionRollback, ActionTempImage:
		cand, ok := inc.Candidate(v.Arg)
		if !ok {
			log.Warn("slackapp: click names no candidate of the incident", "candidate", v.Arg)
			a.replyError(ctx, cb.ResponseURL, "That image is not one of this incident's verified candidates (a newer diagnosis may have replaced them); nothing was changed.")
			return
		}
		a.fix(ctx, c, cand.Image)
	case ActionAddSecret:
		if !contains(inc.ProvenSecrets, v.Arg) {
			a.replyError(ctx, cb.ResponseURL, "That pull secret is not one pullfix proved for this image; nothing was changed.")
			return
		}
		a.fix(ctx, c, v.Arg)
	case ActionRecheck:
		a.recheck(ctx, c)
	case ActionSnooze:
		until := a.now().Add(a.snooze)
		if err := a.deps.Incidents.Snooze(ctx, inc.ID, user, until); err != nil {
			a.actionFailed(ctx, c, "snooze", err)
			return
		}
		in := a.messageInput(inc, StateSnoozed)
		in.Actor, in.Until = user, until
		a.editRoot(ctx, c, Render(in))
		a.thread(ctx, c.ref, KindReply, RenderThreadUpdate(a.threadUpdate(inc, UpdateSnoozed, user, func(u *ThreadUpdate) { u.Until = until })))
	case ActionDismiss:
		if err := a.deps.Incidents.Dismiss(ctx, inc.ID, user); err != nil {
			a.actionFailed(ctx, c, "dismiss", err)
			return
		}
		in := a.messageInput(inc, StateDismissed)
		in.Actor = user
		a.editRoot(ctx, c, Render(in))
		a.thread(ctx, c.ref, KindReply, RenderThreadUpdate(a.threadUpdate(inc, UpdateDismissed, user, nil)))
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (a *App) actionFailed(ctx context.Context, c click, what string, err error) {
	a.log.Error("slackapp: action failed", "action", what, "incident", c.inc.ID, "err", err)
	if errors.Is(err, ErrUnknownIncident) {
		a.replyError(ctx, c.cb.ResponseURL, "This incident is no longer open in pullfix; nothing was changed.")
		return
	}
	a.replyError(ctx, c.cb.ResponseURL, fmt.Sprintf("Could not %s: %v", what, err))
}

// fix applies an approved fix: guard against a second click, say who
// approved in the thread, patch through the Fixer, then follow the rollout
// and show the end in the thread and on the root message.
func (a *App) fix(ctx context.Context, c click, target string) {
	inc, user := c.inc, c.user
	if !a.authorizeFix(ctx, c) { // authorize.go: refusals are private
		return
	}
	err := a.markFixing(ctx, c, target)
	if c.recorded != nil {
		c.recorded() // the approval is durable (or refused): Slack may now be told the click arrived
	}
	if err != nil {
		var busy *FixInProgressError
		if errors.As(err, &busy) {
			by := "someone"
			if busy.By != "" {
				by = "<@" + busy.By + ">"
			}
			a.reply(ctx, c.cb.ResponseURL, ephemeral(fmt.Sprintf(":hourglass: This incident is already being fixed (approved by %s); your click changed nothing.", by)))
			return
		}
		a.actionFailed(ctx, c, "start the fix", err)
		return
	}
	log := a.log.With("incident", inc.ID, "approver", user, "action", string(c.value.Action))
	fixing := a.messageInput(inc, StateFixing)
	fixing.Actor, fixing.FixAction, fixing.FixImage = user, c.value.Action, target
	// Say so without waiting for Slack's pacing: the patch should not
	// wait a second per channel message, and the queue keeps the order.
	a.editRootAsync(ctx, c, Render(fixing))
	a.threadAsync(c.ref, KindReply, RenderThreadUpdate(a.threadUpdate(inc, UpdateApproved, user, func(u *ThreadUpdate) {
		u.Action, u.OldImage, u.NewImage = c.value.Action, inc.Image, target
	})))

	var res FixResult
	if c.value.Action == ActionAddSecret {
		res, err = a.deps.Fixer.AddPullSecret(ctx, inc.ID, c.value.Arg, user)
	} else if c.value.Action == ActionTempImage {
		res, err = a.setImageTemporary(ctx, inc.ID, c.value.Arg, user)
	} else {
		res, err = a.deps.Fixer.SetImage(ctx, inc.ID, c.value.Arg, user)
	}
	if err != nil {
		log.Warn("slackapp: fix not applied", "err", err)
		if cerr := a.deps.Incidents.ClearFixing(ctx, inc.ID); cerr != nil {
			log.Error("slackapp: clear fixing", "err", cerr)
		}
		note := err.Error()
		if re, ok := errors.AsType[*FixRefusedError](err); ok {
			note = re.Reason
		}
		open := a.messageInput(inc, StateOpen)
		open.StateNote = "The last fix was not applied: " + note
		a.editRoot(ctx, c, Render(open))
		a.thread(ctx, c.ref, KindReply, RenderThreadUpdate(a.threadUpdate(inc, UpdateRefused, user, func(u *ThreadUpdate) {
			u.Action, u.NewImage, u.Note = c.value.Action, target, note
		})))
		if c.ref == "" {
			a.replyError(ctx, c.cb.ResponseURL, "Nothing was patched: "+note)
		}
		return
	}
	from, to := res.From, res.To
	if from == "" {
		from = inc.Image
	}
	if to == "" {
		to = target
	}
	log.Info("slackapp: fix applied", "from", from, "to", to)
	a.thread(ctx, c.ref, KindReply, RenderThreadUpdate(a.threadUpdate(inc, UpdatePatched, user, func(u *ThreadUpdate) {
		u.Action, u.OldImage, u.NewImage, u.Note = c.value.Action, from, to, res.Note
	})))
	a.followFix(ctx, c, target, to)
}

// followFix follows an applied fix's rollout and shows how it ended: the
// root message edited to the final state, the steps in its thread.
func (a *App) followFix(ctx context.Context, c click, target, to string) {
	inc, user := c.inc, c.user
	log := a.log.With("incident", inc.ID, "approver", user, "action", string(c.value.Action))
	rr, err := a.deps.Fixer.FollowRollout(ctx, inc.ID, func(p RolloutProgress) {
		a.threadAsync(c.ref, KindProgress, RenderThreadUpdate(a.threadUpdate(inc, UpdateProgress, "", func(u *ThreadUpdate) {
			u.Ready, u.Desired, u.Updated, u.Note = p.Ready, p.Desired, p.Ready, p.Message
		})))
	})
	if err == nil && rr.Ready {
		image := rr.Image
		if image == "" {
			image = to
		}
		done := a.messageInput(inc, StateResolved)
		done.Actor, done.FixAction, done.FixImage = user, c.value.Action, image
		if c.value.Action == ActionAddSecret {
			done.FixImage = target // the secret's name: the image is unchanged
		}
		done.Ready = fmt.Sprintf("%d/%d", rr.ReadyPods, rr.Desired)
		a.editRoot(ctx, c, Render(done))
		a.thread(ctx, c.ref, KindReply, RenderThreadUpdate(a.threadUpdate(inc, UpdateResolved, user, func(u *ThreadUpdate) {
			u.Action, u.NewImage, u.Ready, u.Desired, u.Updated = c.value.Action, image, rr.ReadyPods, rr.Desired, rr.ReadyPods
		})))
		return
	}
	note := rr.Message
	if err != nil {
		note = err.Error()
	}
	log.Warn("slackapp: rollout did not finish", "note", note)
	if cerr := a.deps.Incidents.ClearFixing(ctx, inc.ID); cerr != nil {
		log.Error("slackapp: clear fixing", "err", cerr)
	}
	still := a.messageInput(inc, StateStillFailing)
	still.Actor, still.FixAction, still.FixImage = user, c.value.Action, to
	if rr.Diagnosis != nil {
		still.Diagnosis = *rr.Diagnosis
	}
	still.StateNote = note
	a.editRoot(ctx, c, Render(still))
	if c.ref != "" && rr.Diagnosis != nil {
		a.postDetails(ctx, c.ref, RenderDetails(still))
	}
	a.thread(ctx, c.ref, KindReply, RenderThreadUpdate(a.threadUpdate(inc, UpdateFailed, user, func(u *ThreadUpdate) {
		u.Ready, u.Desired, u.Updated, u.Note = rr.ReadyPods, rr.Desired, rr.ReadyPods, note
	})))
}

func (a *App) recheck(ctx context.Context, c click) {
	inc, err := a.deps.Incidents.Recheck(ctx, c.inc.ID)
	if err != nil {
		a.actionFailed(ctx, c, "re-check", err)
		return
	}
	in := a.messageInput(inc, "")
	a.editRoot(ctx, c, Render(in))
	if c.ref != "" {
		// The new diagnosis's details replace the old ones.
		a.postDetails(ctx, c.ref, RenderDetails(in))
	}
	note := ""
	if inc.Diagnosis != nil {
		note = inc.Diagnosis.Summary
	}
	a.thread(ctx, c.ref, KindReply, RenderThreadUpdate(a.threadUpdate(inc, UpdateRechecked, c.user, func(u *ThreadUpdate) { u.Note = note })))
}

// editRoot shows m on the incident's root message, or, for a click in an
// ephemeral answer (/pullfix NAME), replaces that answer.
func (a *App) editRoot(ctx context.Context, c click, m Message) {
	if c.ref != "" && !IsDigestRef(c.ref) {
		if err := a.EditRoot(ctx, c.ref, m); err != nil {
			a.log.Warn("slackapp: root edit failed", "ref", c.ref, "err", redact(err))
		}
		return
	}
	msg := m.Msg()
	msg.ReplaceOriginal = true
	a.reply(ctx, c.cb.ResponseURL, msg)
}

// thread posts m in the root message's thread (nothing without a root).
func (a *App) thread(ctx context.Context, ref string, kind Kind, m Message) {
	if ref == "" {
		return
	}
	if err := a.Reply(ctx, ref, kind, m); err != nil && !errors.Is(err, ErrDropped) {
		a.log.Warn("slackapp: thread reply failed", "ref", ref, "err", redact(err))
	}
}

// threadAsync queues a thread reply without waiting (progress callbacks
// must not stall the Fixer).
// editRootAsync queues an edit of the clicked message (coalesced with later
// edits of it) without waiting; an ephemeral answer goes out at once.
func (a *App) editRootAsync(ctx context.Context, c click, m Message) {
	channel, ts, ok := ParseRef(c.ref)
	if !ok || IsDigestRef(c.ref) {
		a.editRoot(ctx, c, m)
		return
	}
	a.queue.Enqueue(KindEdit, channel, c.ref, "chat.update", func(ctx context.Context) error {
		_, _, _, err := a.web.UpdateMessageContext(ctx, channel, ts, m.MsgOptions()...)
		return err
	})
}

func (a *App) threadAsync(ref string, kind Kind, m Message) {
	channel, ts, ok := ParseRef(ref)
	if !ok {
		return
	}
	a.queue.Enqueue(kind, channel, "", "chat.postMessage", a.postReply(channel, ts, m))
}

// messageInput maps an incident to the renderer's input.
func (a *App) messageInput(inc Incident, state State) MessageInput {
	in := MessageInput{
		Cluster: a.cfg.Cluster, Namespace: inc.Namespace, Kind: inc.Kind, Name: inc.Name,
		Container: inc.Container, Image: inc.Image, PodCount: len(inc.Pods), IncidentID: inc.ID,
		ProvenSecrets: inc.ProvenSecrets, State: state, GitOps: inc.GitOps,
	}
	if in.State == "" {
		in.State = inc.messageState()
	}
	if inc.Diagnosis != nil {
		in.Diagnosis = *inc.Diagnosis
	}
	if in.State == StateFixing && inc.FixingBy != "" {
		in.Actor = inc.FixingBy
	}
	return in
}

// messageState is the state the incident's message shows: its own, open
// when it has none.
func (i Incident) messageState() State {
	if i.State == "" {
		return StateOpen
	}
	return i.State
}

func (a *App) threadUpdate(inc Incident, ev UpdateEvent, actor string, set func(*ThreadUpdate)) ThreadUpdate {
	u := ThreadUpdate{Cluster: a.cfg.Cluster, Namespace: inc.Namespace, Kind: inc.Kind, Name: inc.Name,
		Container: inc.Container, Event: ev, Actor: actor}
	if set != nil {
		set(&u)
	}
	return u
}
