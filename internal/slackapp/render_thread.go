package slackapp

import (
	"fmt"
	"time"
)

// Thread replies: what happened after the root message (a click, a patch,
// the rollout).

// UpdateEvent is what a thread reply reports.
type UpdateEvent string

// Thread reply events, in the order a fix usually produces them.
const (
	// UpdateApproved: Actor chose a fix (who clicked, what).
	UpdateApproved UpdateEvent = "approved"
	// UpdatePatched: the patch was applied (OldImage → NewImage, Patch).
	UpdatePatched UpdateEvent = "patched"
	// UpdateProgress: rollout progress (Updated, Ready, Desired).
	UpdateProgress UpdateEvent = "progress"
	// UpdateResolved: final — the workload runs the new image, ready.
	UpdateResolved UpdateEvent = "resolved"
	// UpdateResolvedElsewhere: fixed outside pullfix (NewImage is what runs).
	UpdateResolvedElsewhere UpdateEvent = "resolved_elsewhere"
	// UpdateFailed: final — the rollout did not become ready (Note says why).
	UpdateFailed UpdateEvent = "failed"
	// UpdateRefused: nothing was patched (stale diagnosis, dry run
	// refused, concurrent edit); Note says what changed.
	UpdateRefused UpdateEvent = "refused"
	// UpdateRechecked: diagnosed again (Note: the new summary).
	UpdateRechecked UpdateEvent = "rechecked"
	// UpdateSnoozed and UpdateDismissed: Actor silenced or closed it.
	UpdateSnoozed   UpdateEvent = "snoozed"
	UpdateDismissed UpdateEvent = "dismissed"
)

// ThreadUpdate is one reply in the incident's thread.
type ThreadUpdate struct {
	Cluster   string
	Namespace string
	Kind      string
	Name      string
	Container string

	Event  UpdateEvent
	Actor  string // Slack user id, "" for the bot itself
	Action Action // the fix (approved, patched); default set_image
	// OldImage and NewImage: the change (for add_secret NewImage is the secret).
	OldImage string
	NewImage string
	// Patch is the JSON Patch applied, shown as code.
	Patch string
	// Desired, Updated, Ready: rollout counts (progress, resolved, failed).
	Desired int
	Updated int
	Ready   int
	Until   time.Time // snoozed
	Note    string
}

// RenderThreadUpdate renders a thread reply: who clicked, the patch
// applied, rollout progress, the final state.
func RenderThreadUpdate(u ThreadUpdate) Message {
	if u.Action == "" {
		u.Action = ActionSetImage
	}
	b := newBuilder("pft", fmt.Sprintf("%+v", u))
	wl := u.Kind + " " + u.Namespace + "/" + u.Name
	var line, text string
	counts := fmt.Sprintf("%d/%d ready, %d/%d updated", u.Ready, u.Desired, u.Updated, u.Desired)
	switch u.Event {
	case UpdateApproved:
		line = "👍 " + byActor("Approved", u.Actor) + ": " + fixPhrase(u.Action, u.NewImage) + ". Re-checking, dry run, then patch…"
		text = fmt.Sprintf("Approved: %s on %s", fixPhrasePlain(u.Action, u.NewImage), wl)
	case UpdatePatched:
		if u.Action == ActionAddSecret {
			line = "🔧 *Patched* " + code(wl) + ": imagePullSecret " + code(u.NewImage) + " added"
		} else {
			line = "🔧 *Patched* " + code(wl) + " container " + code(u.Container) + ": " + code(u.OldImage) + " → " + code(u.NewImage)
		}
		text = fmt.Sprintf("Patched %s: %s", wl, fixPhrasePlain(u.Action, u.NewImage))
	case UpdateProgress:
		line = "🔄 *Rollout:* " + counts
		text = fmt.Sprintf("Rollout of %s: %s", wl, counts)
	case UpdateResolved:
		line = fmt.Sprintf("✅ *%s %d/%d Running*", esc(u.Name), u.Ready, u.Desired)
		if u.NewImage != "" {
			line += " on " + code(u.NewImage)
		}
		text = fmt.Sprintf("Resolved: %s %d/%d Running", wl, u.Ready, u.Desired)
	case UpdateResolvedElsewhere:
		line = "✅ *Resolved outside pullfix:* " + code(wl)
		if u.NewImage != "" {
			line += " now runs " + code(u.NewImage)
		}
		text = fmt.Sprintf("Resolved outside pullfix: %s", wl)
	case UpdateFailed:
		line = "❌ *Rollout did not finish:* " + counts
		text = fmt.Sprintf("Rollout of %s did not finish: %s", wl, counts)
	case UpdateRefused:
		line = "⛔ *Nothing was patched.*"
		text = fmt.Sprintf("Nothing was patched on %s", wl)
	case UpdateRechecked:
		line = "🔍 " + byActor("Re-checked", u.Actor) + "."
		text = fmt.Sprintf("Re-checked %s", wl)
	case UpdateSnoozed:
		line = "💤 " + byActor("Snoozed", u.Actor) + " until " + slackDate(u.Until) + "."
		text = fmt.Sprintf("Snoozed %s", wl)
	case UpdateDismissed:
		line = "🚫 " + byActor("Dismissed", u.Actor) + ". Nothing was changed."
		text = fmt.Sprintf("Dismissed %s", wl)
	default:
		line = "ℹ️ " + esc(string(u.Event))
		text = fmt.Sprintf("%s: %s", u.Event, wl)
	}
	if u.Note != "" {
		line += "\n" + esc(u.Note)
		text += " — " + u.Note
	}
	b.section("update", line)
	if u.Patch != "" {
		b.section("patch", "*Patch applied:*\n"+codeBlock(u.Patch, maxText-40))
	}
	b.context("ctx", "cluster "+code(u.Cluster))
	return b.message(text + " (cluster " + u.Cluster + ")")
}
