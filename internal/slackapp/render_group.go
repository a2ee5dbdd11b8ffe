package slackapp

import (
	"fmt"
	"time"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// A storm that shares one cause and one registry: one message listing the
// workloads, and its details reply.

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
