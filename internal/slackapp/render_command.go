package slackapp

import (
	"fmt"
	"strings"
	"time"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// Answers to /pullfix: a healthy workload, the list of open incidents, the
// grammar, an error.

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
