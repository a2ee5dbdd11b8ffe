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
	b := newBuilder("pf", fmt.Sprintf("%+v", in))
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
		text = fmt.Sprintf("%s — %s in %s (cluster %s)", title, workload, in.Namespace, in.Cluster)
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
	b := newBuilder("pfd", fmt.Sprintf("%+v", in))
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
// how it was found and what verified it.
func (b *builder) candidatesFound(in MessageInput) {
	d := in.Diagnosis
	var lines []string
	for i, c := range d.Candidates {
		if i == maxCandidatesShown {
			lines = append(lines, fmt.Sprintf("_%d more candidates not shown._", len(d.Candidates)-i))
			break
		}
		// The reason of a catalog or tag candidate says how it was
		// found; a revision's or another workload's needs its origin.
		how := candidateOrigin(c.Kind)
		switch {
		case c.Reason == "":
		case c.Kind == diagnose.CandidateTag || c.Kind == diagnose.CandidateRepository:
			how = esc(shorten(c.Reason, 400))
		default:
			how += ": " + esc(shorten(c.Reason, 400))
		}
		l := "• " + code(shorten(c.Image, 300)) + " — " + how
		if c.Digest != "" && !strings.Contains(c.Reason, "verified") {
			l += "; verified " + code(shortDigest(c.Digest)) + " for " + esc(platformOf(d))
		}
		lines = append(lines, l)
	}
	for i, s := range in.ProvenSecrets {
		if i == maxSecretsShown {
			lines = append(lines, fmt.Sprintf("_%d more pull secrets not shown._", len(in.ProvenSecrets)-i))
			break
		}
		lines = append(lines, "• pull secret "+code(s)+" — the registry accepted its credentials for this image")
	}
	if len(lines) == 0 {
		return
	}
	b.section("found", "*How the fix was found:*\n"+joinCapped(lines, maxCandidatesShown+maxSecretsShown+2, maxText-40, func(more int) string {
		return fmt.Sprintf("_…and %d more not shown_", more)
	}))
}

// candidateOrigin is where a candidate came from, in plain words.
func candidateOrigin(k diagnose.CandidateKind) string {
	switch k {
	case diagnose.CandidateLastHealthy:
		return "the workload's last healthy revision"
	case diagnose.CandidateInCluster:
		return "runs elsewhere in the cluster"
	case diagnose.CandidateTag:
		return "the nearest existing tag in the registry"
	case diagnose.CandidateRepository:
		return "the closest existing repository in the registry"
	}
	return "found by pullfix"
}

func platformOf(d diagnose.Diagnosis) string {
	p := d.Target.Platform
	if p.OS == "" || p.Architecture == "" {
		return "linux/amd64"
	}
	return p.String()
}

// fixReason is the one line beside the primary button: "same tag,
// repository 3 letters away, verified for linux/amd64".
func fixReason(in MessageInput, c diagnose.Candidate) string {
	var parts []string
	oldName, oldTag := splitRef(in.Image)
	newName, newTag := splitRef(c.Image)
	switch c.Kind {
	case diagnose.CandidateLastHealthy:
		if c.Reason != "" {
			parts = append(parts, shorten(c.Reason, 80))
		} else {
			parts = append(parts, "the last healthy revision")
		}
	case diagnose.CandidateInCluster:
		parts = append(parts, "runs elsewhere in the cluster")
	default:
		if oldTag != "" && oldTag == newTag {
			parts = append(parts, "same tag")
		} else if oldName == newName && newTag != "" {
			parts = append(parts, "nearest existing tag")
		}
		if oldName != newName && oldName != "" {
			// A few letters away reads as a typo fixed; further away,
			// the distance says nothing to a person.
			if n := editDistance(oldName, newName); n <= 5 {
				parts = append(parts, fmt.Sprintf("repository %d %s away", n, plural(n, "letter", "letters")))
			} else {
				parts = append(parts, "closest existing repository")
			}
		}
	}
	if c.Digest != "" {
		parts = append(parts, "verified for "+platformOf(in.Diagnosis))
	}
	return strings.Join(parts, ", ")
}

// splitRef splits "host/path:tag@digest" into "host/path" and "tag".
func splitRef(ref string) (name, tag string) {
	ref, _, _ = strings.Cut(ref, "@")
	i := strings.LastIndex(ref, ":")
	if i > strings.LastIndex(ref, "/") {
		return ref[:i], ref[i+1:]
	}
	return ref, ""
}

// editDistance is the Levenshtein distance in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// evidenceLine is the root message's one line of evidence: the registry's
// own answer when it gave one ("public.ecr.aws: NAME_UNKNOWN for
// aws-containers/retailing-store-sample-ui"), else the kubelet's words.
func evidenceLine(d diagnose.Diagnosis, image string) string {
	if d.Certainty == diagnose.CertaintyRegistry {
		for _, p := range d.Probes {
			host, repo, ping := stepTarget(p.Request)
			if reg := registryOf(image); reg != "" {
				// A mirror answers for the registry: name the one in
				// the image (the details show the mirror's requests).
				host = reg
			}
			status, codes := stepStatus(p.Result)
			if status < 400 || (ping && status == 401) {
				continue
			}
			said := codes
			if said == "" {
				said = fmt.Sprintf("HTTP %d", status)
			}
			line := "*Registry said:* " + code(said)
			if host != "" {
				line = "*Registry said:* " + esc(host) + ": " + code(said)
			}
			if repo != "" {
				line += " for " + code(repo)
			}
			return line
		}
	}
	for _, e := range d.Evidence {
		if e.Source == diagnose.FromKubelet && e.Text != "" {
			return "*Kubelet said:* " + code(keyWords(e.Text, 200))
		}
	}
	if d.Target.Message != "" {
		return "*Kubelet said:* " + code(keyWords(d.Target.Message, 200))
	}
	for _, e := range d.Evidence {
		if e.Text != "" {
			return "*Registry said:* " + code(shorten(oneLine(e.Text), 200))
		}
	}
	return ""
}

// keyWords is the end of the kubelet's message, at most n characters: the
// runtime wraps the cause in layers of context ("failed to pull and unpack
// image …: failed to resolve reference …: dial tcp …: i/o timeout"), so
// the last layers are the words that say what failed. The cut falls on a
// ": " boundary where one is near, and is marked with "…".
func keyWords(s string, n int) string {
	s = oneLine(s)
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	tail := string(r[len(r)-(n-1):])
	if i := strings.Index(tail, ": "); i >= 0 && i < len(tail)/2 {
		tail = tail[i+2:]
	}
	return "…" + tail
}

// registryOf is the registry host of an image reference ("docker.io"
// when the reference names none), "" for an empty one.
func registryOf(image string) string {
	if image == "" {
		return ""
	}
	first, _, ok := strings.Cut(image, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return first
	}
	return "docker.io"
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// stepTarget reads a probe request ("GET host/v2/repo/manifests/tag",
// "GET host/token?scope=repository:repo:pull") into its host and
// repository; ping is the version check "GET host/v2/".
func stepTarget(req string) (host, repo string, ping bool) {
	_, rest, _ := strings.Cut(req, " ")
	rest, query, _ := strings.Cut(rest, "?")
	host, path, ok := strings.Cut(rest, "/")
	if !ok { // "GET nginx:1.27.9": a reference, no host named
		name, _ := splitRef(rest)
		return "", name, false
	}
	if path == "v2/" || path == "v2" {
		return host, "", true
	}
	if s, ok := strings.CutPrefix(query, "scope=repository:"); ok {
		if i := strings.LastIndex(s, ":"); i > 0 {
			s = s[:i]
		}
		return host, s, false
	}
	if p, ok := strings.CutPrefix(path, "v2/"); ok {
		for _, sep := range []string{"/manifests/", "/blobs/", "/tags/list"} {
			if i := strings.Index(p, sep); i >= 0 {
				return host, p[:i], false
			}
		}
		return host, p, false
	}
	name, _ := splitRef(path)
	return host, name, false
}

// stepStatus reads a probe result ("404 NAME_UNKNOWN", "200 sha256:…",
// "error: …") into its HTTP status (0 for none) and registry error codes.
func stepStatus(res string) (status int, codes string) {
	head, rest, _ := strings.Cut(res, " ")
	if _, err := fmt.Sscanf(head, "%d", &status); err != nil || len(head) != 3 {
		return 0, ""
	}
	if !strings.HasPrefix(rest, "sha256:") {
		codes = rest
	}
	return status, codes
}

// stepMeaning says what one probe request established, in plain words:
// an HTTPS attempt answered by a plain-HTTP registry is the probe's normal
// fallback, not a fault, and the version check's 401 asks for the token
// that follows.
func stepMeaning(p diagnose.ProbeStep) string {
	if e, ok := strings.CutPrefix(p.Result, "error: "); ok {
		switch {
		case strings.Contains(e, "does not look like a TLS handshake"), strings.Contains(e, "HTTP response to HTTPS client"):
			return "registry speaks plain HTTP (as configured)"
		case strings.Contains(e, "no such host"):
			return "host name does not resolve: " + e
		case strings.Contains(e, "timeout"), strings.Contains(e, "deadline exceeded"):
			return "no answer in time: " + e
		case strings.Contains(e, "connection refused"):
			return "connection refused: " + e
		case strings.Contains(e, "x509"), strings.Contains(e, "certificate"):
			return "certificate not trusted: " + e
		}
		return "failed: " + e
	}
	if rest, ok := strings.CutPrefix(p.Result, "ok"); ok {
		return "ok" + rest
	}
	_, _, ping := stepTarget(p.Request)
	status, codes := stepStatus(p.Result)
	with := func(s string) string {
		if codes != "" {
			return fmt.Sprintf("%s (%d %s)", s, status, codes)
		}
		return fmt.Sprintf("%s (%d)", s, status)
	}
	switch {
	case status == 0:
		return p.Result
	case status < 300:
		if ping {
			return "registry answers"
		}
		if d, ok := strings.CutPrefix(p.Result, fmt.Sprintf("%d ", status)); ok && strings.HasPrefix(d, "sha256:") {
			return "exists: " + shortDigest(d)
		}
		return fmt.Sprintf("ok (%d)", status)
	case ping && status == 401:
		return "registry asks for a token (normal; the token request follows)"
	case strings.Contains(codes, "NAME_UNKNOWN"):
		return with("repository does not exist")
	case strings.Contains(codes, "MANIFEST_UNKNOWN"):
		return with("tag or manifest does not exist")
	case status == 404:
		return with("not found")
	case status == 401:
		return with("credentials missing or refused")
	case status == 403:
		return with("access denied")
	case status == 429:
		return with("rate limited")
	case status >= 500:
		return with("registry error")
	}
	return with("refused")
}

// GroupWorkload is one workload of a grouped storm.
type GroupWorkload struct {
	Namespace string
	Kind      string
	Name      string
	Container string
	Image     string
	PodCount  int
}

// GroupInput is a storm: many workloads failing for one cause at one
// registry (an outage, expired credentials), shown as one message.
type GroupInput struct {
	Cluster string
	// GroupID is the incident id the group's buttons carry.
	GroupID string
	// Diagnosis is a representative diagnosis (the first workload's).
	Diagnosis diagnose.Diagnosis
	Workloads []GroupWorkload
	State     State // open, dismissed, snoozed, resolved
	Actor     string
	Until     time.Time
}

// maxGroupLines caps the listed workloads; the rest become "and N more".
const maxGroupLines = 25

// RenderGroup renders one message for a storm, by the root message's
// rule: a title, one line per workload, the evidence line, what to do,
// the buttons and one context line. RenderGroupDetails holds the rest.
func RenderGroup(in GroupInput) Message {
	if in.State == "" {
		in.State = StateOpen
	}
	if in.Cluster == "" {
		in.Cluster = in.Diagnosis.Target.Cluster
	}
	d := in.Diagnosis
	b := newBuilder("pfg", fmt.Sprintf("%+v", in))
	n := len(in.Workloads)
	title := d.Cause.Title()
	b.header(fmt.Sprintf("%d %s: %s", n, plural(n, "workload", "workloads"), lowerFirst(title)))
	switch in.State {
	case StateDismissed:
		b.section("state", "🚫 *Dismissed* "+byActor("", in.Actor)+". Nothing was changed.")
	case StateSnoozed:
		b.section("state", "💤 *Snoozed* until "+slackDate(in.Until)+" "+byActor("", in.Actor)+".")
	case StateResolved:
		b.section("state", "✅ *Resolved:* every listed workload runs again.")
	}

	var lines []string
	names := make([]string, 0, n)
	for _, w := range in.Workloads {
		names = append(names, w.Name)
		l := "• " + code(w.Namespace+"/"+w.Name)
		if w.PodCount > 0 {
			l += fmt.Sprintf(" · %d %s", w.PodCount, plural(w.PodCount, "pod", "pods"))
		}
		if w.Image != "" {
			l += " · " + code(shorten(shortImage(w.Image), 80))
		}
		lines = append(lines, l)
	}
	b.section("workloads", joinCapped(lines, maxGroupLines, maxText-200, func(more int) string {
		return fmt.Sprintf("_…and %d more_", more)
	}))
	if in.State == StateOpen || in.State == StateSnoozed {
		if line := evidenceLine(d, d.Target.Image); line != "" {
			b.section("evidence", line)
		}
		if d.Remedy != "" {
			b.section("remedy", "*What to do:* "+esc(d.Remedy))
		}
		acts := []Action{ActionRecheck}
		if in.State == StateOpen {
			acts = append(acts, ActionSnooze)
		}
		acts = append(acts, ActionDismiss)
		b.controlButtons(MessageInput{Cluster: in.Cluster, IncidentID: in.GroupID}, acts)
	}
	b.footer(in.Cluster, "", in.GroupID, d)
	text := fmt.Sprintf("%s: %d %s in cluster %s (%s)", title, n, plural(n, "workload", "workloads"), in.Cluster, joinNames(names, 5))
	if in.State != StateOpen {
		text = string(in.State) + ": " + text
	}
	return b.message(text)
}

// RenderGroupDetails is a storm's first thread reply: every workload with
// its kind, container and full image, the summary, the kubelet's words and
// the registry requests.
func RenderGroupDetails(in GroupInput) Message {
	if in.Cluster == "" {
		in.Cluster = in.Diagnosis.Target.Cluster
	}
	d := in.Diagnosis
	b := newBuilder("pfgd", fmt.Sprintf("%+v", in))
	var lines []string
	for _, w := range in.Workloads {
		l := "• " + esc(w.Kind) + " " + code(w.Namespace+"/"+w.Name)
		if w.Container != "" {
			l += " · container " + code(w.Container)
		}
		if w.PodCount > 0 {
			l += fmt.Sprintf(" · %d failing %s", w.PodCount, plural(w.PodCount, "pod", "pods"))
		}
		if w.Image != "" {
			l += " · " + code(shorten(w.Image, 120))
		}
		lines = append(lines, l)
	}
	head := "*Details*"
	if d.Summary != "" {
		head += " — " + esc(d.Summary)
	}
	b.section("facts", head)
	b.section("workloads", joinCapped(lines, maxGroupLines, maxText-200, func(more int) string {
		return fmt.Sprintf("_…and %d more_", more)
	}))
	b.evidence(d)
	b.footer(in.Cluster, "", in.GroupID, d)
	return b.message(fmt.Sprintf("Details: %s — %d %s", d.Cause.Title(), len(in.Workloads), plural(len(in.Workloads), "workload", "workloads")))
}

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

// HealthyInput is what /pullfix shows for a workload that pulls fine.
type HealthyInput struct {
	Cluster   string
	Namespace string
	Kind      string
	Name      string
	Ready     int
	Desired   int
	Images    []string
	Note      string
}

// RenderHealthy answers /pullfix for a workload with no pull problem.
func RenderHealthy(in HealthyInput) Message {
	b := newBuilder("pfh", fmt.Sprintf("%+v", in))
	head := fmt.Sprintf("✅ *%s* %s is healthy: %d/%d ready, no image-pull problem.", esc(in.Kind), code(in.Namespace+"/"+in.Name), in.Ready, in.Desired)
	var imgs []string
	for _, i := range in.Images {
		imgs = append(imgs, "• "+code(shorten(i, 200)))
	}
	if len(imgs) > 0 {
		head += "\n" + joinCapped(imgs, 10, 2000, func(more int) string { return fmt.Sprintf("_…and %d more images_", more) })
	}
	if in.Note != "" {
		head += "\n" + esc(in.Note)
	}
	b.section("healthy", head)
	b.context("ctx", "cluster "+code(in.Cluster))
	return b.message(fmt.Sprintf("%s %s/%s is healthy (%d/%d ready, cluster %s)", in.Kind, in.Namespace, in.Name, in.Ready, in.Desired, in.Cluster))
}

// ListItem is one open incident in /pullfix list.
type ListItem struct {
	IncidentID string
	Namespace  string
	Kind       string
	Name       string
	Container  string
	Image      string
	Cause      diagnose.Cause
	State      State
	PodCount   int
	Since      time.Time
	// Permalink to the incident's message, if known.
	Permalink string
}

// ListInput is /pullfix list's content.
type ListInput struct {
	Cluster   string
	Namespace string // the -n filter, "" for all
	Items     []ListItem
}

// maxListItems caps the listed incidents; the rest become "and N more".
const maxListItems = 40

// RenderList answers /pullfix list.
func RenderList(in ListInput) Message {
	b := newBuilder("pfl", fmt.Sprintf("%+v", in))
	scope := "cluster " + in.Cluster
	if in.Namespace != "" {
		scope = "namespace " + in.Namespace + " of " + scope
	}
	if len(in.Items) == 0 {
		b.section("empty", "🎉 No open image-pull incidents in "+esc(scope)+".")
		return b.message("No open image-pull incidents in " + scope)
	}
	n := len(in.Items)
	b.header(fmt.Sprintf("%d open %s in %s", n, plural(n, "incident", "incidents"), scope))
	var lines []string
	for _, it := range in.Items {
		l := "• *" + esc(it.Cause.Title()) + "* — " + esc(it.Kind) + " " + code(it.Namespace+"/"+it.Name)
		if it.Container != "" {
			l += " · " + code(it.Container)
		}
		if it.PodCount > 0 {
			l += fmt.Sprintf(" · %d %s", it.PodCount, plural(it.PodCount, "pod", "pods"))
		}
		if it.State != "" && it.State != StateOpen {
			l += " · _" + esc(string(it.State)) + "_"
		}
		if !it.Since.IsZero() {
			l += " · since " + slackDate(it.Since)
		}
		if it.Permalink != "" && !strings.ContainsAny(it.Permalink, "<>|") {
			l += " · <" + it.Permalink + "|message>"
		}
		lines = append(lines, l)
	}
	b.section("items", joinCapped(lines, maxListItems, maxText-100, func(more int) string {
		return fmt.Sprintf("_…and %d more_", more)
	}))
	b.context("ctx", "cluster "+code(in.Cluster)+" · `/pullfix NAME -n NAMESPACE` diagnoses one workload now")
	return b.message(fmt.Sprintf("%d open image-pull %s in %s", n, plural(n, "incident", "incidents"), scope))
}

// RenderHelp is /pullfix help: the grammar.
func RenderHelp() Message {
	b := newBuilder("pfhelp", "")
	b.section("help", strings.Join([]string{
		"*pullfix* finds out why a workload cannot pull its image and offers a verified fix.",
		"• `/pullfix NAME [-n NAMESPACE]` — diagnose a Deployment now (only you see the answer)",
		"• `/pullfix KIND/NAME [-n NAMESPACE]` — other workloads: `statefulset/db`, `ds/agent`, `cronjob/report`, `job/x`, `pod/x`",
		"• `/pullfix list [-n NAMESPACE]` — open incidents",
		"• `/pullfix help` — this text",
		"`-n` also reads as `--namespace NS`, `--namespace=NS` or `-n=NS`. Without it, pullfix looks in every namespace it watches.",
		"Fix buttons apply only for approvers; Re-check, Snooze and Dismiss may be open to everyone (the bot's configuration says).",
	}, "\n"))
	return b.message("pullfix: /pullfix [KIND/]NAME [-n NAMESPACE] | list | help")
}

// RenderError is an ephemeral answer saying what went wrong (a bad
// command, an unknown or ambiguous workload, a refused click).
func RenderError(text string) Message {
	b := newBuilder("pferr", text)
	b.section("error", "⚠️ "+esc(text))
	return b.message("⚠️ " + text)
}

// ---- builder ----------------------------------------------------------

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
	if isEphemeralContainer(in.Container) {
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

// ---- text helpers -----------------------------------------------------

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

// mrkdwnEscaper escapes the three characters Slack's mrkdwn reserves
// (built once: a Replacer's tables are costly to build).
var mrkdwnEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// esc escapes the three characters Slack's mrkdwn reserves.
func esc(s string) string { return mrkdwnEscaper.Replace(s) }

// code is inline code; a backtick inside would end it early.
func code(s string) string {
	if s == "" {
		return "—"
	}
	return "`" + strings.ReplaceAll(esc(s), "`", "'") + "`"
}

// codeSafe escapes text for a ``` block (a ``` inside would end it).
func codeSafe(s string) string {
	return strings.ReplaceAll(esc(s), "```", "'''")
}

func codeBlock(s string, limit int) string {
	return "```" + truncate(codeSafe(s), limit-6) + "```"
}

// truncate cuts s to at most n characters, marking the cut with "…".
func truncate(s string, n int) string { return shorten(s, n) }

// shortImage is the last path element: "retail-store-sample-ui:1.2.1" for
// "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1", with a
// digest shortened to 12 hex digits.
func shortImage(ref string) string {
	name, digest, hasDigest := strings.Cut(ref, "@")
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	if hasDigest {
		name += "@" + shortDigest(digest)
	}
	return name
}

func shortDigest(d string) string {
	algo, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return algo + ":" + hex[:12]
}

// imageForButton fits an image reference into a button label: the full
// reference when it fits, else its last path element, else cut.
func imageForButton(ref string, room int) string {
	if utf8.RuneCountInString(ref) <= room {
		return ref
	}
	s := shortImage(ref)
	if utf8.RuneCountInString(s) <= room {
		return s
	}
	return shorten(s, room)
}

func fixPhrase(a Action, target string) string {
	switch a {
	case ActionRollback:
		return "roll back to " + code(target)
	case ActionAddSecret:
		return "add imagePullSecret " + code(target)
	}
	return "set image to " + code(target)
}

func fixPhrasePlain(a Action, target string) string {
	switch a {
	case ActionRollback:
		return "roll back to " + target
	case ActionAddSecret:
		return "add imagePullSecret " + target
	}
	return "set image to " + target
}

// byActor: "approved by <@U1>" / "by <@U1>"; without an actor, "outside
// Slack".
func byActor(verb, actor string) string {
	s := "by <@" + actor + ">"
	if actor == "" {
		s = "outside Slack"
	}
	if verb != "" {
		return verb + " " + s
	}
	return s
}

// slackDate renders t in each reader's own time zone, with a UTC fallback
// for clients that cannot.
func slackDate(t time.Time) string {
	if t.IsZero() {
		return "later"
	}
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", t.Unix(), t.UTC().Format("2006-01-02 15:04 UTC"))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func sumPods(ws []GroupWorkload) int {
	n := 0
	for _, w := range ws {
		n += w.PodCount
	}
	return n
}

// joinCapped joins lines with "\n", at most maxLines of them and at most
// limit characters, then a "more" line for the rest.
func joinCapped(lines []string, maxLines, limit int, more func(int) string) string {
	var sb strings.Builder
	n := 0
	for i, l := range lines {
		tail := more(len(lines) - i)
		if i == maxLines || utf8.RuneCountInString(sb.String())+utf8.RuneCountInString(l)+utf8.RuneCountInString(tail)+2 > limit {
			sb.WriteString(tail)
			return sb.String()
		}
		sb.WriteString(l + "\n")
		n++
	}
	return strings.TrimSuffix(sb.String(), "\n")
}

func joinNames(names []string, n int) string {
	if len(names) <= n {
		return strings.Join(names, ", ")
	}
	return strings.Join(names[:n], ", ") + fmt.Sprintf(" and %d more", len(names)-n)
}

// safeID keeps block ids to a tame alphabet whatever a candidate id holds.
func safeID(id string, i int) string {
	if isDNS1123Label(id) {
		return id
	}
	return fmt.Sprint(i + 1)
}

// ---- limit checker ------------------------------------------------------

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
