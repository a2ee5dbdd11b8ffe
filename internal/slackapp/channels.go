package slackapp

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/slack-go/slack"
)

// ParseChannels parses "team-a=C0123,team-b=#team-b": a channel per
// namespace (PULLFIX_SLACK_CHANNELS).
func ParseChannels(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("%q is not NAMESPACE=CHANNEL", part)
		}
		out[k] = v
	}
	return out, nil
}

// Dial builds the Slack client for botToken (and appToken, for Socket
// Mode; apiURL "" is Slack's own) and checks the token with auth.test, so
// a bad token is a clear start-up error. Tokens are never logged.
func Dial(ctx context.Context, botToken, appToken, apiURL string, log *slog.Logger) (*slack.Client, error) {
	var opts []slack.Option
	if appToken != "" {
		opts = append(opts, slack.OptionAppLevelToken(appToken))
	}
	if apiURL != "" {
		opts = append(opts, slack.OptionAPIURL(apiURL))
	}
	api := slack.New(botToken, opts...)
	who, err := api.AuthTestContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("Slack refused the bot token (auth.test): %s", redact(err))
	}
	log.Info("connected to Slack", "team", who.Team, "bot", who.User)
	return api, nil
}
