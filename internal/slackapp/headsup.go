package slackapp

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/slack-go/slack"
)

// HeadsUpInput is a workload admitted with image warnings (the admission
// webhook's heads-up): nothing fails yet, but the registry showed the
// image cannot be pulled.
type HeadsUpInput struct {
	Cluster, Namespace, Kind, Name string
	// User applied it (the API request's user name; "" when unknown).
	User string
	// Warnings are the webhook's words, as `kubectl apply` printed them.
	Warnings []string
}

// RenderHeadsUp is the heads-up message: one short root message, no
// buttons (there is no incident yet; if the pods fail, the incident's
// message carries the fix, and this heads-up is threaded into it).
func RenderHeadsUp(in HeadsUpInput) Message {
	who := "someone"
	if in.User != "" {
		who = "`" + in.User + "`"
	}
	title := fmt.Sprintf("Heads-up: %s %s was applied with an image that cannot be pulled", in.Kind, in.Name)
	var b strings.Builder
	fmt.Fprintf(&b, "*%s* `%s/%s` was applied by %s despite this warning:", in.Kind, in.Namespace, in.Name, who)
	for _, w := range in.Warnings {
		b.WriteString("\n• " + w)
	}
	return Message{
		Text: title,
		Blocks: []slack.Block{
			slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, ":warning: *"+title+"*", false, false), nil, nil),
			slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, b.String(), false, false), nil, nil),
			slack.NewContextBlock("", slack.NewTextBlockObject(slack.MarkdownType,
				fmt.Sprintf("%s · %s · checked at admission, before any pod existed", in.Cluster, in.Namespace), false, false)),
		},
	}
}

// PostHeadsUp posts a heads-up to the namespace's channel and returns its
// reference ("channel:ts").
func (a *App) PostHeadsUp(ctx context.Context, in HeadsUpInput) (string, error) {
	if in.Cluster == "" {
		in.Cluster = a.cfg.Cluster
	}
	return a.postRoot(ctx, a.cfg.ChannelFor(in.Namespace), RenderHeadsUp(in), nil)
}

// RenderHeadsUpReply is the reply that threads an earlier heads-up into
// the incident its pods then opened.
func RenderHeadsUpReply(text string, at time.Time) Message {
	line := fmt.Sprintf(":warning: pullfix warned at apply (%s UTC): %s", at.UTC().Format("15:04"), text)
	return Message{Text: line, Blocks: []slack.Block{
		slack.NewSectionBlock(slack.NewTextBlockObject(slack.MarkdownType, line, false, false), nil, nil),
	}}
}
