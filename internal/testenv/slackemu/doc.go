// Package slackemu is a local Slack emulator for tests and demos.
//
// It listens on 127.0.0.1 only and speaks Slack's wire protocols closely enough
// that the real github.com/slack-go/slack client (and its socketmode package)
// can be pointed at it with slack.OptionAPIURL(emu.APIURL()):
//
//   - the Web API methods pullfix calls (auth.test, chat.postMessage,
//     chat.update, chat.postEphemeral, chat.getPermalink, conversations.info,
//     usergroups.users.list, apps.connections.open), with token checks,
//     Block Kit limits, per-channel pacing (HTTP 429 + Retry-After) and
//     fault injection;
//   - Socket Mode over a real websocket: hello, server pings, envelopes
//     delivered to exactly one of the open connections, acks with latency,
//     disconnect messages and hard drops;
//   - HTTP mode: slash commands and interactions POSTed to the app with a
//     valid v0 signature (or a forged, expired or replayed one);
//   - response_url endpoints (ephemeral, in_channel, replace_original,
//     delete_original).
//
// A test acts as a Slack user with SlashCommand and Click, and inspects what
// the bot did with Messages, Thread, Ephemerals, Calls and WaitFor. Every
// wait is event-driven: the emulator signals each recorded change, so tests
// never need to sleep.
//
// slack-go's own slacktest server lacks most of this (no chat.update, no
// usergroups, second-resolution ts, no Socket Mode hello or pings, no limits),
// which is why this package exists; see /work/shared/facts/slack.md §9.
package slackemu
