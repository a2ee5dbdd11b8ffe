package slackapp

import (
	"fmt"
	"strings"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// ephemeralPrefix marks an incident's container that is an ephemeral
// (debug) container; the watcher names it "ephemeral:NAME" (internal/watch
// EphemeralPrefix, not imported: the Slack side never imports the watcher).
const ephemeralPrefix = "ephemeral:"

func isEphemeralContainer(container string) bool {
	return strings.HasPrefix(container, ephemeralPrefix)
}

// ephemeralCandidates lists the verified candidates of an ephemeral
// container's incident without buttons: its image cannot be changed (the
// bot refuses such a fix), so there is nothing to click; the remedy holds
// the `kubectl debug` command that starts a new debug container with the
// first one. No pull secret can be added either: a pod's are immutable.
func (b *builder) ephemeralCandidates(in MessageInput) {
	d := in.Diagnosis
	for i, c := range d.Candidates {
		if i == maxCandidatesShown {
			b.context("cand-more", fmt.Sprintf("%d more candidates not shown.", len(d.Candidates)-i))
			break
		}
		label := "Verified image"
		if c.Kind == diagnose.CandidateLastHealthy {
			label = "Last healthy image"
		}
		text := "*" + label + ":* " + code(shorten(c.Image, 500))
		if c.Reason != "" {
			text += "\n" + esc(shorten(c.Reason, 1000))
		}
		if c.Digest != "" {
			text += "\n_verified: " + code(shortDigest(c.Digest)) + "_"
		}
		b.section("cand-"+safeID(c.ID, i), text)
	}
	b.context("ephemeral", code(in.Container)+": an ephemeral container's image cannot be changed, so there is no fix button: "+
		"start a new debug container with a verified image (`kubectl debug`, command in the remedy).")
}
