package slackapp

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// A storm digest: one message per channel that names every workload of a
// storm, grouped by cause and registry, edited as workloads join and
// recover. Each workload's own diagnosis and buttons are its card in the
// digest's thread (Render, posted there).

// DigestWorkload is one workload a storm digest names.
type DigestWorkload struct {
	IncidentID string
	Namespace  string
	Kind       string
	Name       string
	Container  string
	Image      string
	// Cause and Registry group the workload: the kubelet's words at first,
	// the registry's answer once the full diagnosis arrives.
	Cause    diagnose.Cause
	Registry string
	// State is the workload's state; resolved and dismissed workloads are
	// counted, no longer listed: the digest shrinks as the storm passes.
	State State
	// Own is true for a workload posted in a message of its own before the
	// storm began (the digest names it too).
	Own bool
}

// DigestInput is a storm digest's content.
type DigestInput struct {
	Cluster   string
	Workloads []DigestWorkload // in the order they joined
}

// closedState reports a workload the digest no longer lists.
func closedState(s State) bool { return s == StateResolved || s == StateDismissed }

// digestGroup is one (cause, registry) section of a digest.
type digestGroup struct {
	cause    diagnose.Cause
	registry string
	ws       []DigestWorkload
}

// RenderDigest renders a storm digest. Every open workload is named, by
// section of cause and registry (the largest first), as `namespace/name`,
// comma-separated so that a section of Slack's 3,000 characters names a
// hundred workloads; sections that do not fit in Slack's 50 blocks end in
// "…and N more" (a storm of thousands of workloads; `/pullfix list` has
// them all). The fallback text names them too, for notifications.
func RenderDigest(in DigestInput) Message {
	var open []DigestWorkload
	recovered, dismissed := 0, 0
	for _, w := range in.Workloads {
		switch {
		case w.State == StateResolved:
			recovered++
		case w.State == StateDismissed:
			dismissed++
		default:
			open = append(open, w)
		}
	}
	total := len(in.Workloads)
	b := newBuilder("pfs", fmt.Sprintf("%+v", in))
	if len(open) == 0 {
		b.header(fmt.Sprintf("✅ Storm over: %d %s recovered", recovered, plural(recovered, "workload", "workloads")))
		note := fmt.Sprintf("Every workload of this image-pull storm in cluster %s runs again", code(in.Cluster))
		if dismissed > 0 {
			note += fmt.Sprintf(" or was dismissed (%d)", dismissed)
		}
		b.section("over", note+". Each one's story is in this thread.")
		b.context("ctx", "cluster "+code(in.Cluster)+fmt.Sprintf(" · %d %s in the storm", total, plural(total, "workload", "workloads")))
		return b.message(fmt.Sprintf("Storm over in cluster %s: %d of %d workloads recovered", in.Cluster, recovered, total))
	}

	var groups []*digestGroup
	idx := map[string]*digestGroup{}
	for _, w := range open {
		k := string(w.Cause) + "\x00" + w.Registry
		g := idx[k]
		if g == nil {
			g = &digestGroup{cause: w.Cause, registry: w.Registry}
			idx[k] = g
			groups = append(groups, g)
		}
		g.ws = append(g.ws, w)
	}
	slices.SortStableFunc(groups, func(a, b *digestGroup) int { return cmp.Compare(len(b.ws), len(a.ws)) })

	n := len(open)
	b.header(fmt.Sprintf("⚠️ %d %s cannot pull their images", n, plural(n, "workload", "workloads")))
	// Blocks: header, the sections, the note and the context line.
	room := maxBlocks - 3
	var names []string
	for i, g := range groups {
		title := g.cause.Title()
		if title == "" {
			title = string(g.cause)
		}
		line := fmt.Sprintf("*%s* at %s — %d", esc(title), code(g.registry), len(g.ws))
		if i == room-1 && len(groups) > room {
			// The last section that fits lists what is left.
			rest := 0
			for _, g := range groups[i:] {
				rest += len(g.ws)
			}
			b.section(fmt.Sprint("g", i), fmt.Sprintf("_…and %d more workloads of %d other causes_", rest, len(groups)-i))
			break
		}
		var items []string
		for _, w := range g.ws {
			item := code(w.Namespace + "/" + w.Name)
			switch w.State {
			case StateFixing:
				item += " 🔧"
			case StateSnoozed:
				item += " 💤"
			}
			if w.Own {
				item += " (its own message, above)"
			}
			items = append(items, item)
			names = append(names, w.Namespace+"/"+w.Name)
		}
		b.section(fmt.Sprint("g", i), line+"\n"+joinComma(items, maxText-utf8.RuneCountInString(line)-2))
	}
	note := "Each workload's diagnosis and fix buttons follow in this thread"
	if recovered+dismissed > 0 {
		note += fmt.Sprintf(" · %d of %d recovered", recovered, total)
		if dismissed > 0 {
			note += fmt.Sprintf(", %d dismissed", dismissed)
		}
	}
	b.context("note", note+" · `/pullfix list` lists them all.")
	b.context("ctx", "cluster "+code(in.Cluster)+" · one message for the storm, edited as workloads fail and recover")
	text := fmt.Sprintf("Image-pull storm in cluster %s: %d %s failing: %s", in.Cluster, n, plural(n, "workload", "workloads"), strings.Join(names, ", "))
	return b.message(text)
}

// joinComma joins items with ", " within limit characters, ending in
// "…and N more" when they do not all fit.
func joinComma(items []string, limit int) string {
	var sb strings.Builder
	used := 0
	for i, it := range items {
		tail := fmt.Sprintf(" _…and %d more_", len(items)-i)
		l := utf8.RuneCountInString(it) + 2
		if used+l+utf8.RuneCountInString(tail) > limit {
			sb.WriteString(tail)
			return sb.String()
		}
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.WriteString(it)
		used += l
	}
	return sb.String()
}
