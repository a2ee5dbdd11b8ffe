package slackapp

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// Block Kit construction: the builder every renderer uses, and the checker
// that holds each message to Slack's limits before it is sent.

// Slack's Block Kit limits (facts/slack.md §6), counted in characters.
const (
	maxBlocks        = 50
	maxText          = 3000 // section / context text object
	maxHeader        = 150
	maxField         = 2000
	maxFields        = 10
	maxButtonText    = 75
	maxConfirmTitle  = 100
	maxConfirmText   = 300
	maxConfirmButton = 30
	maxActionsElems  = 25
	maxBlockID       = 255
	maxMessageText   = 40000
)

// builder accumulates blocks. Block ids carry a short hash of the input,
// so every iteration of a message gets new ids (Slack asks for that) while
// the same input always renders the same JSON (golden files).
type builder struct {
	prefix string
	blocks []slack.Block
	// buttonNote is set when buttons had to be left out.
	buttonNote string
}

func newBuilder(prefix, seed string) *builder {
	h := fnv.New32a()
	_, _ = h.Write([]byte(seed))
	return &builder{prefix: fmt.Sprintf("%s-%08x", prefix, h.Sum32())}
}

func (b *builder) id(name string) string { return shorten(b.prefix+"-"+name, maxBlockID) }

func (b *builder) add(blk slack.Block) {
	if len(b.blocks) < maxBlocks {
		b.blocks = append(b.blocks, blk)
	}
}

func (b *builder) header(text string) {
	b.add(&slack.HeaderBlock{Type: slack.MBTHeader, BlockID: b.id("head"),
		Text: slack.NewTextBlockObject(slack.PlainTextType, truncate(text, maxHeader), true, false)})
}

func (b *builder) section(name, mrkdwn string) {
	if mrkdwn == "" {
		return
	}
	b.add(&slack.SectionBlock{Type: slack.MBTSection, BlockID: b.id(name),
		Text: mrkdwnText(truncate(mrkdwn, maxText))})
}

func (b *builder) fields(name string, fs []string) {
	var objs []*slack.TextBlockObject
	for _, f := range fs {
		if len(objs) == maxFields {
			break
		}
		objs = append(objs, mrkdwnText(truncate(f, maxField)))
	}
	b.add(&slack.SectionBlock{Type: slack.MBTSection, BlockID: b.id(name), Fields: objs})
}

func (b *builder) context(name, mrkdwn string) {
	b.add(&slack.ContextBlock{Type: slack.MBTContext, BlockID: b.id(name),
		ContextElements: slack.ContextElements{Elements: []slack.MixedElement{mrkdwnText(truncate(mrkdwn, maxText))}}})
}

func (b *builder) facts(in MessageInput) {
	fs := []string{
		"*Workload*\n" + esc(in.Kind) + " " + code(in.Name),
		"*Namespace*\n" + code(in.Namespace),
		"*Cluster*\n" + code(in.Cluster),
	}
	if in.Container != "" {
		fs = append(fs, "*Container*\n"+code(in.Container))
	}
	if in.PodCount > 0 {
		fs = append(fs, fmt.Sprintf("*Failing pods*\n%d", in.PodCount))
	}
	if in.Image != "" {
		fs = append(fs, "*Image*\n"+code(shorten(in.Image, maxField-20)))
	}
	b.fields("facts", fs)
}

// evidence renders the kubelet's words and the probe's result as code,
// fitted into one section: when they are too long each item is cut to a
// fair share and a visible note says how much was left out.
func (b *builder) evidence(d diagnose.Diagnosis) {
	type item struct{ label, text string }
	var items []item
	for _, e := range d.Evidence {
		label := "Evidence"
		switch e.Source {
		case diagnose.FromKubelet:
			label = "Kubelet said"
		case diagnose.FromProbe:
			label = "Registry said"
		}
		items = append(items, item{label, e.Text})
	}
	if len(d.Probes) > 0 {
		var lines []string
		for i, p := range d.Probes {
			if i == maxProbeLines {
				lines = append(lines, fmt.Sprintf("… %d more requests", len(d.Probes)-i))
				break
			}
			lines = append(lines, fmt.Sprintf("%s → %s (%s)", p.Request, stepMeaning(p), p.Duration.Round(time.Millisecond)))
		}
		label := "Requests pullfix made to the registry"
		if d.ProbeDuration > 0 {
			label += " (" + d.ProbeDuration.Round(time.Millisecond).String() + ")"
		}
		items = append(items, item{label, strings.Join(lines, "\n")})
	}
	if len(items) == 0 {
		return
	}
	// Overhead per item: "*label:*\n```" + "```\n"; plus the note.
	const note = "\n_✂️ Evidence truncated: %d characters not shown. `kubectl describe pod` shows the kubelet's full message._"
	overhead := 0
	lens := make([]int, len(items))
	total := 0
	for i, it := range items {
		overhead += utf8.RuneCountInString(it.label) + 12
		lens[i] = utf8.RuneCountInString(codeSafe(it.text))
		total += lens[i]
	}
	budget := maxText - overhead - utf8.RuneCountInString(note) - 10
	caps := fairShares(lens, budget)
	var sb strings.Builder
	cut := 0
	for i, it := range items {
		t := codeSafe(it.text)
		if lens[i] > caps[i] {
			cut += lens[i] - caps[i]
			t = truncate(t, caps[i])
		}
		if i > 0 {
			sb.WriteString("\n")
		}
		sb.WriteString("*" + it.label + ":*\n```" + t + "```")
	}
	if cut > 0 {
		sb.WriteString(fmt.Sprintf(note, cut))
	}
	b.section("evidence", sb.String())
}

// fairShares divides budget among items of the given lengths: short items
// keep all their text, long ones share what is left equally (max-min fair).
func fairShares(lens []int, budget int) []int {
	caps := make([]int, len(lens))
	left, open := budget, len(lens)
	done := make([]bool, len(lens))
	for open > 0 {
		share := max(left/open, 40)
		progressed := false
		for i, l := range lens {
			if !done[i] && l <= share {
				caps[i], done[i] = l, true
				left -= l
				open--
				progressed = true
			}
		}
		if !progressed {
			for i := range lens {
				if !done[i] {
					caps[i], done[i] = share, true
				}
			}
			break
		}
	}
	return caps
}

// fixButtons: the verified fix as the primary button, its one-line reason
// just above it. The first candidate (diagnose orders them, safest first)
// or, without one, the first proven pull secret is the primary; the others
// become plain buttons in the controls row (their reasons are in the
// details reply).
func (b *builder) fixButtons(in MessageInput) {
	if in.GitOps != nil && !isEphemeralContainer(in.Container) {
		b.gitopsFix(in) // render_gitops.go: the Git change, no live patch
		return
	}
	if isEphemeralContainer(in.Container) {
		b.ephemeralCandidates(in)
		return
	}
	d := in.Diagnosis
	switch {
	case len(d.Candidates) > 0:
		p := primaryCandidate(d)
		reason := fixReason(in, d.Candidates[p])
		line := "✅ *Verified fix*"
		if reason != "" {
			line += ": " + esc(reason)
		}
		b.section("fix-why", line)
		b.actions("fix", b.candidateButton(in, p, true))
	case len(in.ProvenSecrets) > 0:
		b.section("fix-why", "✅ *Verified fix*: the registry accepted the credentials of "+code(in.ProvenSecrets[0])+" for this image")
		b.actions("fix", b.secretButton(in, 0, true))
	}
}

// primaryCandidate is the index of the fix offered first: the first
// candidate that sets the image the workload asked for (a typo fixed, the
// nearest tag), else the first (a rollback). Going back to the last
// healthy revision undoes the change someone meant to make, so it is the
// second choice, one button away.
func primaryCandidate(d diagnose.Diagnosis) int {
	for i, c := range d.Candidates {
		if i == maxCandidatesShown {
			break
		}
		if c.Kind != diagnose.CandidateLastHealthy {
			return i
		}
	}
	return 0
}

// secondaryFixes are the fix buttons after the primary one.
func (b *builder) secondaryFixes(in MessageInput) []slack.BlockElement {
	if isEphemeralContainer(in.Container) || in.GitOps != nil {
		return nil
	}
	var els []slack.BlockElement
	d := in.Diagnosis
	p := primaryCandidate(d)
	for i := 0; i < len(d.Candidates) && i < maxCandidatesShown; i++ {
		if i != p {
			els = append(els, b.candidateButton(in, i, false))
		}
	}
	first := 0
	if len(d.Candidates) == 0 {
		first = 1
	}
	for i := first; i < len(in.ProvenSecrets) && i < maxSecretsShown; i++ {
		els = append(els, b.secretButton(in, i, false))
	}
	return slicesDeleteNil(els)
}

func slicesDeleteNil(els []slack.BlockElement) []slack.BlockElement {
	out := els[:0]
	for _, e := range els {
		if btn, ok := e.(*slack.ButtonBlockElement); ok && btn != nil {
			out = append(out, e)
		}
	}
	return out
}

// candidateButton is the button for candidate i ("Set image to …", or
// "Roll back to …" for the last healthy revision) with its confirm dialog;
// nil (and a note in the footer) when its value cannot be encoded.
func (b *builder) candidateButton(in MessageInput, i int, primary bool) *slack.ButtonBlockElement {
	c := in.Diagnosis.Candidates[i]
	act, verb := ActionSetImage, "Set image to"
	if c.Kind == diagnose.CandidateLastHealthy {
		act, verb = ActionRollback, "Roll back to"
	}
	wl := fmt.Sprintf("%s %s/%s, container %s, cluster %s", in.Kind, in.Namespace, in.Name, in.Container, in.Cluster)
	v := ActionValue{Cluster: in.Cluster, IncidentID: in.IncidentID, Action: act, Arg: c.ID}
	confirm := confirmDialog(
		strings.TrimSuffix(verb, " to")+"?",
		code(shorten(in.Image, 110))+" → "+code(shorten(c.Image, 110))+"\n"+esc(wl),
		strings.TrimSuffix(verb, " to"),
	)
	return b.button(v, verb+" "+imageForButton(c.Image, maxButtonText-len(verb)-1), primary, confirm)
}

func (b *builder) secretButton(in MessageInput, i int, primary bool) *slack.ButtonBlockElement {
	s := in.ProvenSecrets[i]
	wl := fmt.Sprintf("%s %s/%s, container %s, cluster %s", in.Kind, in.Namespace, in.Name, in.Container, in.Cluster)
	v := ActionValue{Cluster: in.Cluster, IncidentID: in.IncidentID, Action: ActionAddSecret, Arg: s}
	confirm := confirmDialog("Add imagePullSecret?", "Add "+code(shorten(s, 100))+" to the pod template of "+esc(wl), "Add secret")
	return b.button(v, shorten("Add imagePullSecret "+s, maxButtonText), primary, confirm)
}

// button encodes v into a button; a value that cannot be encoded leaves
// the button out (nil) and the footer says so.
func (b *builder) button(v ActionValue, label string, primary bool, confirm *slack.ConfirmationBlockObject) *slack.ButtonBlockElement {
	if err := v.Validate(); err != nil {
		b.buttonNote = err.Error()
		return nil
	}
	btn := slack.NewButtonBlockElement(v.Action.ActionID(), EncodeAction(v),
		slack.NewTextBlockObject(slack.PlainTextType, truncate(label, maxButtonText), true, false))
	if primary {
		btn.Style = slack.StylePrimary
	}
	btn.Confirm = confirm
	return btn
}

// actions adds an actions block of the non-nil buttons (none: no block).
func (b *builder) actions(name string, btns ...*slack.ButtonBlockElement) {
	var els []slack.BlockElement
	for _, btn := range btns {
		if btn != nil {
			els = append(els, btn)
		}
	}
	if len(els) == 0 {
		return
	}
	if len(els) > maxActionsElems {
		els = els[:maxActionsElems]
	}
	b.add(&slack.ActionBlock{Type: slack.MBTAction, BlockID: b.id(name), Elements: &slack.BlockElements{ElementSet: els}})
}

// controlButtons: the secondary fixes, then Re-check, Snooze 1h, Dismiss,
// in one actions block. Slack wants action ids unique within a block, so a
// second fix of the same kind (two "Set image" candidates) goes to a row
// of its own below.
func (b *builder) controlButtons(in MessageInput, acts []Action) {
	var rows [][]slack.BlockElement
	for _, el := range b.secondaryFixes(in) {
		id := el.(*slack.ButtonBlockElement).ActionID
		placed := false
		for r := range rows {
			if !slices.ContainsFunc(rows[r], func(x slack.BlockElement) bool { return x.(*slack.ButtonBlockElement).ActionID == id }) {
				rows[r] = append(rows[r], el)
				placed = true
				break
			}
		}
		if !placed {
			rows = append(rows, []slack.BlockElement{el})
		}
	}
	if len(rows) == 0 {
		rows = append(rows, nil)
	}
	for _, a := range acts {
		v := ActionValue{Cluster: in.Cluster, IncidentID: in.IncidentID, Action: a}
		if err := v.Validate(); err != nil {
			b.buttonNote = err.Error()
			break
		}
		label := map[Action]string{ActionRecheck: "Re-check", ActionSnooze: "Snooze 1h", ActionDismiss: "Dismiss"}[a]
		rows[0] = append(rows[0], slack.NewButtonBlockElement(a.ActionID(), EncodeAction(v),
			slack.NewTextBlockObject(slack.PlainTextType, label, true, false)))
	}
	for i, els := range rows {
		if len(els) == 0 {
			continue
		}
		if len(els) > maxActionsElems {
			els = els[:maxActionsElems]
		}
		name := "actions"
		if i > 0 {
			name = fmt.Sprintf("actions-%d", i+1)
		}
		b.add(&slack.ActionBlock{Type: slack.MBTAction, BlockID: b.id(name), Elements: &slack.BlockElements{ElementSet: els}})
	}
}

// footer is the one context line: cluster · namespace · incident ·
// who decided the cause.
func (b *builder) footer(cluster, namespace, incident string, d diagnose.Diagnosis) {
	parts := []string{"cluster " + code(cluster)}
	if namespace != "" {
		parts = append(parts, "namespace "+code(namespace))
	}
	if incident != "" {
		parts = append(parts, "incident "+code(shorten(incident, 80)))
	}
	switch d.Certainty {
	case diagnose.CertaintyRegistry:
		parts = append(parts, "certainty: the registry answered")
	case diagnose.CertaintyWords:
		parts = append(parts, "certainty: the kubelet's words only")
	}
	if b.buttonNote != "" {
		parts = append(parts, "⚠️ buttons unavailable: "+esc(b.buttonNote))
	}
	b.context("ctx", strings.Join(parts, " · "))
}

func (b *builder) message(text string) Message {
	if strings.TrimSpace(text) == "" {
		text = "pullfix"
	}
	return Message{Text: truncate(text, maxMessageText), Blocks: b.blocks}
}

func mrkdwnText(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}

func confirmDialog(title, text, confirm string) *slack.ConfirmationBlockObject {
	return slack.NewConfirmationBlockObject(
		slack.NewTextBlockObject(slack.PlainTextType, truncate(title, maxConfirmTitle), false, false),
		mrkdwnText(truncate(text, maxConfirmText)),
		slack.NewTextBlockObject(slack.PlainTextType, truncate(confirm, maxConfirmButton), false, false),
		slack.NewTextBlockObject(slack.PlainTextType, "Cancel", false, false),
	)
}

// LimitError lists every way a message breaks Slack's Block Kit limits,
// each problem with a JSON pointer into the blocks.
type LimitError struct{ Problems []string }

func (e *LimitError) Error() string {
	return "message breaks Slack limits: " + strings.Join(e.Problems, "; ")
}

// Validate checks m against Slack's limits (facts/slack.md §6) — what
// Slack would answer invalid_blocks or msg_too_long for, plus the fallback
// text that must always be set. Every Render* output passes it; a test
// holds them to that, and the connection side may check before sending.
func (m Message) Validate() error {
	var probs []string
	add := func(ptr, format string, args ...any) {
		probs = append(probs, ptr+": "+fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(m.Text) == "" {
		add("/text", "fallback text is empty")
	}
	if n := utf8.RuneCountInString(m.Text); n > maxMessageText {
		add("/text", "%d characters, limit %d", n, maxMessageText)
	}
	if len(m.Blocks) > maxBlocks {
		add("/blocks", "%d blocks, limit %d", len(m.Blocks), maxBlocks)
	}
	text := func(ptr string, t *slack.TextBlockObject, limit int, plainOnly bool) {
		switch {
		case t == nil:
			add(ptr, "missing text object")
			return
		case t.Type != slack.PlainTextType && (plainOnly || t.Type != slack.MarkdownType):
			add(ptr+"/type", "type %q not allowed here", t.Type)
		case t.Text == "":
			add(ptr+"/text", "empty")
		}
		if n := utf8.RuneCountInString(t.Text); n > limit {
			add(ptr+"/text", "%d characters, limit %d", n, limit)
		}
	}
	button := func(ptr string, btn *slack.ButtonBlockElement) {
		text(ptr+"/text", btn.Text, maxButtonText, true)
		if n := utf8.RuneCountInString(btn.ActionID); n == 0 || n > 255 {
			add(ptr+"/action_id", "%d characters, want 1..255", n)
		}
		if n := utf8.RuneCountInString(btn.Value); n > MaxButtonValue {
			add(ptr+"/value", "%d characters, limit %d", n, MaxButtonValue)
		}
		if btn.Style != "" && btn.Style != slack.StylePrimary && btn.Style != slack.StyleDanger {
			add(ptr+"/style", "style %q", btn.Style)
		}
		if c := btn.Confirm; c != nil {
			text(ptr+"/confirm/title", c.Title, maxConfirmTitle, true)
			text(ptr+"/confirm/text", c.Text, maxConfirmText, false)
			text(ptr+"/confirm/confirm", c.Confirm, maxConfirmButton, true)
			text(ptr+"/confirm/deny", c.Deny, maxConfirmButton, true)
		}
	}
	ids := map[string]bool{}
	for i, blk := range m.Blocks {
		ptr := fmt.Sprintf("/blocks/%d", i)
		if id := blk.ID(); id != "" {
			if utf8.RuneCountInString(id) > maxBlockID {
				add(ptr+"/block_id", "longer than %d", maxBlockID)
			}
			if ids[id] {
				add(ptr+"/block_id", "duplicate %q", id)
			}
			ids[id] = true
		}
		switch b := blk.(type) {
		case *slack.HeaderBlock:
			text(ptr+"/text", b.Text, maxHeader, true)
		case *slack.SectionBlock:
			if b.Text == nil && len(b.Fields) == 0 {
				add(ptr, "section without text or fields")
			}
			if b.Text != nil {
				text(ptr+"/text", b.Text, maxText, false)
			}
			if len(b.Fields) > maxFields {
				add(ptr+"/fields", "%d fields, limit %d", len(b.Fields), maxFields)
			}
			for j, f := range b.Fields {
				text(fmt.Sprintf("%s/fields/%d", ptr, j), f, maxField, false)
			}
			if b.Accessory != nil && b.Accessory.ButtonElement != nil {
				button(ptr+"/accessory", b.Accessory.ButtonElement)
			}
		case *slack.ActionBlock:
			if b.Elements == nil || len(b.Elements.ElementSet) == 0 {
				add(ptr+"/elements", "empty actions block")
				continue
			}
			if len(b.Elements.ElementSet) > maxActionsElems {
				add(ptr+"/elements", "%d elements, limit %d", len(b.Elements.ElementSet), maxActionsElems)
			}
			seen := map[string]bool{}
			for j, el := range b.Elements.ElementSet {
				btn, ok := el.(*slack.ButtonBlockElement)
				if !ok {
					continue
				}
				p := fmt.Sprintf("%s/elements/%d", ptr, j)
				if seen[btn.ActionID] {
					add(p+"/action_id", "duplicate %q in one block", btn.ActionID)
				}
				seen[btn.ActionID] = true
				button(p, btn)
			}
		case *slack.ContextBlock:
			if n := len(b.ContextElements.Elements); n == 0 || n > 10 {
				add(ptr+"/elements", "%d elements, want 1..10", n)
			}
			for j, el := range b.ContextElements.Elements {
				if t, ok := el.(*slack.TextBlockObject); ok {
					text(fmt.Sprintf("%s/elements/%d", ptr, j), t, maxText, false)
				}
			}
		}
	}
	if len(probs) > 0 {
		return &LimitError{Problems: probs}
	}
	return nil
}
