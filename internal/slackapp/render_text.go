package slackapp

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Text helpers: mrkdwn escaping, code spans, shortened image names, and the
// phrases the renderers share.

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
	case ActionTempImage:
		return "TEMPORARY live patch to " + code(target) + " (Git still names the old image)"
	}
	return "set image to " + code(target)
}

func fixPhrasePlain(a Action, target string) string {
	switch a {
	case ActionRollback:
		return "roll back to " + target
	case ActionAddSecret:
		return "add imagePullSecret " + target
	case ActionTempImage:
		return "TEMPORARY live patch to " + target + " (Git still names the old image)"
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
