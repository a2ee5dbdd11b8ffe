package slackapp

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// Rendering: pure functions from plain structs to Block Kit. Nothing here
// talks to Slack or Kubernetes, so every message pullfix can send is pinned
// by a golden file (testdata/golden) and checked against Slack's limits.

// State is where an incident stands, as the root message shows it.
type State string

// Message states. The root message is edited in place as the state moves.
const (
	// StateOpen: diagnosed, waiting for someone (all buttons).
	StateOpen State = "open"
	// StateFixing: an approver chose a fix; buttons removed, "Fixing: …".
	StateFixing State = "fixing"
	// StateResolved: the workload runs and is ready; "✅ ui-new 1/1 Running
	// on retail-store-sample-ui:1.2.1", no buttons.
	StateResolved State = "resolved"
	// StateStillFailing: a fix was applied but the pods still cannot pull;
	// shows the new diagnosis with fresh buttons.
	StateStillFailing State = "still_failing"
	// StateDismissed: closed without a change; no buttons.
	StateDismissed State = "dismissed"
	// StateSnoozed: silenced until Until; fix buttons stay.
	StateSnoozed State = "snoozed"
)

// Message is a rendered Slack message: blocks plus the notification
// fallback text (always set; Slack shows it in notifications and screen
// readers, and shows it instead of blocks where blocks cannot be drawn).
type Message struct {
	Text   string
	Blocks []slack.Block
}

// MsgOptions are the chat.postMessage / chat.update / chat.postEphemeral
// options for m. Blocks are always sent, so an update replaces the old
// buttons even when m has none (slack-go sends blocks=[] then).
func (m Message) MsgOptions() []slack.MsgOption {
	return []slack.MsgOption{slack.MsgOptionText(m.Text, false), slack.MsgOptionBlocks(m.Blocks...)}
}

// Msg is m as a response payload (Socket Mode ack payload, response_url,
// HTTP-mode slash command answer); the caller sets ResponseType or
// ReplaceOriginal.
func (m Message) Msg() slack.Msg {
	return slack.Msg{Text: m.Text, Blocks: slack.Blocks{BlockSet: m.Blocks}}
}

// MessageInput is everything the incident message shows. Cluster, Namespace,
// Kind, Name, Container and Image fall back to Diagnosis.Target when empty.
type MessageInput struct {
	Cluster   string
	Namespace string
	Kind      string // Deployment, StatefulSet, …
	Name      string
	Container string
	Image     string // the failing image (the pod spec's reference)
	PodCount  int    // failing pods; 0 hides the line
	// IncidentID is the bot's id for the incident; buttons carry it.
	IncidentID string
	Diagnosis  diagnose.Diagnosis
	// ProvenSecrets are imagePullSecrets in the namespace whose credentials
	// the registry accepted for this image: one "Add imagePullSecret" button
	// each.
	ProvenSecrets []string

	State State // "" means StateOpen
	// Actor is the Slack user id of whoever approved, dismissed or
	// snoozed; "" when the change happened outside Slack (someone ran
	// kubectl): the message then says so.
	Actor string
	// FixAction and FixImage describe the fix being applied (fixing), the
	// one that was applied (still failing) or the image now running
	// (resolved). For add_secret FixImage is the secret name.
	FixAction Action
	FixImage  string
	// Ready is the ready count shown when resolved, e.g. "1/1".
	Ready string
	// Until is when a snooze ends.
	Until time.Time
	// StateNote is one more line under the state (free text, escaped).
	StateNote string
	// GitOps is set when a GitOps controller owns the workload: the
	// message offers the Git change instead of a live patch (render_gitops.go).
	GitOps *GitOps
}

func (in *MessageInput) fill() {
	t := in.Diagnosis.Target
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&in.Cluster, t.Cluster)
	def(&in.Namespace, t.Namespace)
	def(&in.Kind, t.Kind)
	def(&in.Name, t.Name)
	def(&in.Container, t.Container)
	def(&in.Image, t.Image)
	def(&in.Kind, "Workload")
	if in.State == "" {
		in.State = StateOpen
	}
	if in.FixAction == "" {
		in.FixAction = ActionSetImage
	}
}

// Limits of what one message shows. Design §4 offers at most three
// candidates; the caps keep a malformed input inside Slack's 50 blocks.
const (
	maxCandidatesShown = 5
	maxSecretsShown    = 5
	maxProbeLines      = 8
)

// Render renders the incident message (the channel's root message, or the
// ephemeral answer to /pullfix) for any state. It is what a person paged
// at night reads first, on a phone: a title naming the workload and the
// cause, one line of evidence in the registry's or the kubelet's own
// words, the verified fix as the primary button with its one-line reason,
// the other buttons, and one context line. Everything else (the kubelet's
// whole message, the registry requests, how each candidate was found) is
// in RenderDetails, posted as the thread's first reply.
func Render(in MessageInput) Message {
	in.fill()
	d := in.Diagnosis
	b := newBuilder("pf", renderKey(in))
	title := d.Cause.Title()
	workload := in.Kind + " " + in.Name

	switch in.State {
	case StateResolved:
		return renderResolved(in, b)
	case StateStillFailing:
		b.header("Still failing — " + headline(in.Name, d.Cause))
	default:
		b.header(headline(in.Name, d.Cause))
	}

	var text string
	switch in.State {
	case StateFixing:
		b.section("state", "⏳ *Fixing:* "+fixPhrase(in.FixAction, in.FixImage)+" — "+byActor("approved", in.Actor))
		text = fmt.Sprintf("Fixing %s — %s (cluster %s): %s", title, workload, in.Cluster, fixPhrasePlain(in.FixAction, in.FixImage))
	case StateStillFailing:
		line := "⚠️ *Still failing"
		if in.FixImage != "" {
			line += " after " + fixPhrase(in.FixAction, in.FixImage)
		}
		b.section("state", line+".* The pods still cannot pull.")
		text = fmt.Sprintf("Still failing: %s — %s (cluster %s)", title, workload, in.Cluster)
	case StateDismissed:
		b.section("state", "🚫 *Dismissed* "+byActor("", in.Actor)+". Nothing was changed.")
		text = fmt.Sprintf("Dismissed: %s — %s (cluster %s)", title, workload, in.Cluster)
	case StateSnoozed:
		b.section("state", "💤 *Snoozed* until "+slackDate(in.Until)+" "+byActor("", in.Actor)+".")
		text = fmt.Sprintf("Snoozed: %s — %s (cluster %s)", title, workload, in.Cluster)
	default:
		text = fmt.Sprintf("%s — %s in %s (cluster %s)", title, workload, in.Namespace, in.Cluster) + gitopsPlain(in)
	}
	if in.StateNote != "" {
		b.context("note", esc(in.StateNote))
	}

	short := in.State == StateFixing || in.State == StateDismissed
	if !short {
		if line := evidenceLine(d, in.Image); line != "" {
			b.section("evidence", line)
		}
	}
	buttons := in.State == StateOpen || in.State == StateStillFailing || in.State == StateSnoozed
	fixes := buttons && !isEphemeralContainer(in.Container) && (len(d.Candidates) > 0 || len(in.ProvenSecrets) > 0)
	if !short && !fixes {
		// No button fixes it: the root says what to do instead.
		what := esc(d.Remedy)
		if d.NodeSide {
			what = strings.TrimSpace("pullfix reached the registry but the node did not: look at the nodes' network path. " + what)
		}
		if what != "" {
			b.section("remedy", "*What to do:* "+what)
		}
	}
	if buttons {
		b.fixButtons(in)
		var acts []Action
		acts = append(acts, ActionRecheck)
		if in.State != StateSnoozed {
			acts = append(acts, ActionSnooze)
		}
		acts = append(acts, ActionDismiss)
		b.controlButtons(in, acts)
	}
	b.footer(in.Cluster, in.Namespace, in.IncidentID, d)
	return b.message(text)
}

// headline is the title: "ui-new: repository not found".
func headline(name string, c diagnose.Cause) string {
	t := c.Title()
	if name == "" {
		return t
	}
	return name + ": " + lowerFirst(t)
}

// lowerFirst lowercases a title's first letter for use after a colon,
// leaving acronyms ("HTTP", "TLS") as they are.
func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 {
		return s
	}
	if r2, _ := utf8.DecodeRuneInString(s[n:]); r2 >= 'A' && r2 <= 'Z' {
		return s
	}
	return strings.ToLower(string(r)) + s[n:]
}

// renderResolved: "✅ ui-new 1/1 Running on retail-store-sample-ui:1.2.1",
// who fixed it and what it was, in two lines. No buttons.
func renderResolved(in MessageInput, b *builder) Message {
	d := in.Diagnosis
	line := in.Name
	if in.Ready != "" {
		line += " " + in.Ready
	}
	line += " Running"
	// What runs now: the new image, or for an added pull secret the same
	// image, now pulled with the secret.
	runs := in.FixImage
	if in.FixAction == ActionAddSecret {
		runs = in.Image
	}
	if runs != "" {
		line += " on " + shortImage(runs)
	}
	b.header("✅ " + line)
	who := "Resolved without a pullfix fix: the pods now pull their image and are ready."
	if in.Actor != "" {
		who = "Fixed by <@" + in.Actor + ">: " + fixPhrase(in.FixAction, in.FixImage) + "."
	}
	b.section("state", who+"\nWas: *"+esc(lowerFirst(d.Cause.Title()))+"* on "+code(in.Image))
	if in.StateNote != "" {
		b.context("note", esc(in.StateNote))
	}
	b.footer(in.Cluster, in.Namespace, in.IncidentID, d)
	return b.message(fmt.Sprintf("✅ %s %s (cluster %s) — was: %s", in.Kind, line, in.Cluster, d.Cause.Title()))
}

// RenderDetails is the thread's first reply: where people look for
// details. The workload's facts, the summary, the kubelet's words, what
// the registry said and each request the probe made (saying what it
// established), what to do, and how each candidate was found.
func RenderDetails(in MessageInput) Message {
	in.fill()
	d := in.Diagnosis
	b := newBuilder("pfd", renderKey(in))
	facts := "*Details* — " + esc(in.Kind) + " " + code(in.Namespace+"/"+in.Name)
	if in.Container != "" {
		facts += ", container " + code(in.Container)
	}
	if in.PodCount > 0 {
		facts += fmt.Sprintf(", %d failing %s", in.PodCount, plural(in.PodCount, "pod", "pods"))
	}
	if in.Image != "" {
		facts += "\nImage: " + code(shorten(in.Image, 1000))
	}
	if d.Summary != "" {
		facts += "\n" + esc(d.Summary)
	}
	if d.NodeSide {
		facts += "\n_pullfix reached the registry but the node did not: look at the nodes' network path (NAT, proxy, security groups, DNS)._"
	}
	b.section("facts", facts)
	b.evidence(d)
	if d.Remedy != "" {
		b.section("remedy", "*What to do:* "+esc(d.Remedy))
	}
	b.candidatesFound(in)
	b.footer(in.Cluster, in.Namespace, in.IncidentID, d)
	return b.message(fmt.Sprintf("Details: %s — %s %s/%s", d.Cause.Title(), in.Kind, in.Namespace, in.Name))
}

// WithDetails is m followed by a divider and the details' blocks: the
// ephemeral answer to /pullfix, which has no thread to put them in. It
// keeps m's fallback text and Slack's 50-block limit (m's blocks first).
func WithDetails(m, details Message) Message {
	out := Message{Text: m.Text, Blocks: append([]slack.Block(nil), m.Blocks...)}
	if len(out.Blocks)+1 < maxBlocks && len(details.Blocks) > 0 {
		out.Blocks = append(out.Blocks, slack.NewDividerBlock())
		for _, b := range details.Blocks {
			if len(out.Blocks) == maxBlocks {
				break
			}
			out.Blocks = append(out.Blocks, b)
		}
	}
	return out
}

// candidatesFound says, for each verified candidate and proven secret,
