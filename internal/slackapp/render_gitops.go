package slackapp

import (
	"fmt"
	"strings"
)

// GitOps is what the message says about a workload a GitOps controller
// owns (Argo CD, Flux): who owns it and where its desired state lives. For
// such a workload the message offers the change to make in Git — the
// image line, before → after, as text to copy — instead of a live patch
// the controller would revert; the default fix buttons are not shown (and
// the patcher refuses them anyway). A temporary live patch is offered only
// when TemporaryOffered (opt-in, and with Argo CD only when self-heal is
// off), marked as temporary.
type GitOps struct {
	Tool     string // "Argo CD", "Flux"
	OwnerRef string // "Application argocd/shop", "Kustomization flux-system/apps"
	Evidence string // the label or annotation that said so
	RepoURL  string
	Path     string
	Revision string
	Chart    string
	// HelmValues: the image is set in a HelmRelease's values, not in a
	// manifest's image line.
	HelmValues bool
	// Reverts says what happens to a live patch, one sentence.
	Reverts string
	// TemporaryOffered shows the "Temporary live patch" button.
	TemporaryOffered bool
	// TemporaryNote says why it is not offered, when it is not ("" hides it).
	TemporaryNote string
}

// ActionTempImage is a temporary live patch of a GitOps-owned workload to
// a verified candidate: allowed only where GitOps.TemporaryOffered, and
// the change-cause marks it temporary.
const (
	ActionTempImage   Action = "temp_image"
	ActionIDTempImage        = "pullfix_temp_image"
)

// gitopsFix replaces the fix buttons for a GitOps-owned workload: the
// owner and source, that a live patch would be reverted, the Git change
// for the verified candidate, and the temporary patch where offered.
func (b *builder) gitopsFix(in MessageInput) {
	g := in.GitOps
	owner := "🔒 *Managed by " + esc(g.Tool) + "* — " + esc(g.OwnerRef)
	if g.RepoURL != "" {
		owner += "\nSource: " + code(shorten(g.RepoURL, 200))
		if g.Path != "" {
			owner += " path " + code(shorten(g.Path, 200))
		}
		if g.Revision != "" {
			owner += " @ " + code(shorten(g.Revision, 100))
		}
	}
	if g.Reverts != "" {
		owner += "\n" + esc(g.Reverts)
	}
	b.section("gitops", owner)
	d := in.Diagnosis
	if len(d.Candidates) == 0 {
		return
	}
	c := d.Candidates[primaryCandidate(d)]
	reason := fixReason(in, c)
	line := "✅ *Fix it in Git*"
	if reason != "" {
		line += " (verified: " + esc(reason) + ")"
	}
	b.section("gitops-change", line+":\n```"+GitChangeText(in, c.Image)+"```")
	if g.TemporaryOffered {
		v := ActionValue{Cluster: in.Cluster, IncidentID: in.IncidentID, Action: ActionTempImage, Arg: c.ID}
		wl := fmt.Sprintf("%s %s/%s, container %s, cluster %s", in.Kind, in.Namespace, in.Name, in.Container, in.Cluster)
		confirm := confirmDialog("Temporary live patch?",
			code(shorten(in.Image, 90))+" → "+code(shorten(c.Image, 90))+"\n"+esc(shorten(wl, 70))+
				"\n"+esc(g.Tool)+" will put Git's image back: change Git too.", "Patch temporarily")
		label := "Temporary live patch: " + imageForButton(c.Image, maxButtonText-len("Temporary live patch: "))
		b.actions("gitops-temp", b.button(v, label, false, confirm))
	} else if g.TemporaryNote != "" {
		b.context("gitops-temp-note", "No live patch offered: "+esc(g.TemporaryNote)+".")
	}
}

// GitChangeText is the copyable change: where it is (repository, path,
// revision), then the image line before and after. Code-block text is not
// mrkdwn-escaped by Slack, so only backticks are neutralised.
func GitChangeText(in MessageInput, newImage string) string {
	g := in.GitOps
	var lines []string
	what := "manifest of " + in.Kind + " " + in.Name
	if g != nil && g.HelmValues {
		what = "values of the HelmRelease for " + in.Kind + " " + in.Name + " (wherever they set the image)"
	}
	if in.Container != "" {
		what += ", container " + in.Container
	}
	lines = append(lines, "# "+what)
	if g != nil && g.RepoURL != "" {
		l := "# repo: " + g.RepoURL
		if g.Revision != "" {
			l += " @ " + g.Revision
		}
		lines = append(lines, l)
	}
	if g != nil && g.Path != "" {
		lines = append(lines, "# path: "+g.Path)
	}
	if g != nil && g.Chart != "" && g.Chart != g.Path {
		lines = append(lines, "# chart: "+g.Chart)
	}
	lines = append(lines, "-  image: "+in.Image, "+  image: "+newImage)
	out := strings.Join(lines, "\n")
	out = strings.ReplaceAll(out, "```", "'''")
	return shorten(out, 2800)
}

// gitopsPlain is the one-line notification text of a GitOps-owned incident.
func gitopsPlain(in MessageInput) string {
	if in.GitOps == nil {
		return ""
	}
	return " — managed by " + in.GitOps.Tool + " " + in.GitOps.OwnerRef + ": fix it in Git"
}

// renderKey is an input's identity for its block ids. The GitOps part
// (a pointer, whose address must not reach the ids) is added by value and
// only when set, so every other message keeps the ids it had.
func renderKey(in MessageInput) string {
	g := in.GitOps
	in.GitOps = nil
	s := strings.Replace(fmt.Sprintf("%+v", in), " GitOps:<nil>}", "}", 1)
	if g != nil {
		s += fmt.Sprintf("%+v", *g)
	}
	return s
}
