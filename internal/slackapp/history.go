package slackapp

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/slack-go/slack"
)

// IncidentEventType is the event_type of the metadata on every incident
// root message. Its event_payload names the cluster, the incident and the
// post (see incidentMetadata): chat.postMessage has no idempotency key,
// so after a crash between a post and the state write that records it, the
// bot finds its own message by these in the channel's history
// (FindPosted) instead of posting it again.
const IncidentEventType = "pullfix_incident"

// historyPage and historyPages bound how far back FindPosted reads: the
// message it looks for was posted after the incident opened (the oldest
// bound), so about a hundred messages of a busy channel are plenty.
// conversations.history is Tier 3, and for apps outside the Slack
// Marketplace (since 2025-05-29) one call a minute of at most 15 messages
// (https://api.slack-gov.com/changelog/2025-05-terms-rate-limit-update-and-faq):
// pages of 15 work for both, the queue waiting out a 429's Retry-After.
const (
	historyPage  = 15
	historyPages = 7
)

// incidentMetadata is the metadata of an incident's root message.
func (a *App) incidentMetadata(inc Incident) *slack.SlackMetadata {
	return &slack.SlackMetadata{EventType: IncidentEventType, EventPayload: map[string]any{
		"cluster": a.cfg.Cluster, "incident_id": inc.ID, "post_id": inc.PostID,
	}}
}

// FindPosted looks in the incident's channel for the root message posted
// for inc with post id inc.PostID — only messages since opened (a minute's
// slack for clocks) — and returns its reference, or "" when there is none.
// It is called only for an incident whose post may have gone out before a
// crash, so it costs nothing in the common case.
func (a *App) FindPosted(ctx context.Context, inc Incident, opened time.Time) (string, error) {
	if inc.PostID == "" {
		return "", nil
	}
	channel := a.cfg.ChannelFor(inc.Namespace)
	params := &slack.GetConversationHistoryParameters{ChannelID: channel, Limit: historyPage, IncludeAllMetadata: true}
	if !opened.IsZero() {
		params.Oldest = strconv.FormatInt(opened.Add(-time.Minute).Unix(), 10) + ".000000"
	}
	for range historyPages {
		var resp *slack.GetConversationHistoryResponse
		err := a.queue.Do(ctx, KindEphemeral, "", "", "conversations.history", func(ctx context.Context) error {
			r, err := a.api.GetConversationHistoryContext(ctx, params)
			resp = r
			return err
		})
		if err != nil {
			return "", fmt.Errorf("slackapp: reading %s's history: %s", channel, redact(err))
		}
		for _, m := range resp.Messages {
			md := m.Metadata
			if md.EventType != IncidentEventType || m.ThreadTimestamp != "" && m.ThreadTimestamp != m.Timestamp {
				continue
			}
			if md.EventPayload["cluster"] == a.cfg.Cluster && md.EventPayload["incident_id"] == inc.ID && md.EventPayload["post_id"] == inc.PostID {
				ref := Ref(channel, m.Timestamp)
				if m.ReplyCount > 0 {
					// Its details reply went out too: a refresh edits
					// the root only (see Adopt).
					a.detailsMu.Lock()
					if _, ok := a.details[ref]; !ok {
						a.details[ref] = ""
					}
					a.detailsMu.Unlock()
				}
				a.log.Info("found the incident's root message in the channel's history", "incident", inc.ID, "ref", ref)
				return ref, nil
			}
		}
		if !resp.HasMore || resp.ResponseMetaData.NextCursor == "" {
			return "", nil
		}
		params.Cursor = resp.ResponseMetaData.NextCursor
	}
	return "", nil
}

// Adopt brings a root message found by FindPosted (inc.Ref) up to date
// with the incident's current diagnosis, as Refresh does, posting its
// details reply only when the message has none.
func (a *App) Adopt(ctx context.Context, inc Incident) error {
	if _, _, ok := ParseRef(inc.Ref); !ok {
		return fmt.Errorf("slackapp: incident %s has no message reference", inc.ID)
	}
	in := a.messageInput(inc, StateOpen)
	if err := a.EditRoot(ctx, inc.Ref, Render(in)); err != nil {
		return err
	}
	a.detailsMu.Lock()
	_, has := a.details[inc.Ref]
	a.detailsMu.Unlock()
	if !has {
		a.postDetails(ctx, inc.Ref, RenderDetails(in))
	}
	return nil
}
