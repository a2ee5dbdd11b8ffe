package slackapp

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
)

// Run holds a Socket Mode connection until ctx ends, then returns nil.
// Every slash command and interaction is acknowledged at once, on the
// event loop, and its work is handed to the worker pool; reconnects (a
// `disconnect` from Slack, a dropped socket, a ping timeout) are slack-go's.
// Run returns an error only when the connection cannot be held at all
// (invalid or revoked app token).
//
// Slack gives each envelope to one of the app's open connections, so only
// the leader should call Run: cmd/bot cancels ctx when leadership is lost.
// Work started from this connection is cancelled with it.
func (a *App) Run(ctx context.Context) error {
	client := socketmode.New(a.api, socketmode.OptionLog(slogPrinter{a.log}))
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- client.RunContext(rctx) }()
	a.log.Info("socket mode: connecting")
	for {
		select {
		case <-ctx.Done():
			cancel()
			<-errc
			a.log.Info("socket mode: stopped")
			return nil
		case err := <-errc:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("slackapp: socket mode: %s", redact(err))
		case evt := <-client.Events:
			a.onSocketEvent(rctx, client, evt)
		}
	}
}

// onSocketEvent handles one event from slack-go. It must not block: slack-go
// stops reading the socket while its event channel is full.
func (a *App) onSocketEvent(ctx context.Context, c *socketmode.Client, evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeConnecting:
		a.log.Debug("socket mode: connecting")
	case socketmode.EventTypeConnected:
		a.log.Info("socket mode: connected")
	case socketmode.EventTypeHello:
		a.log.Debug("socket mode: hello")
	case socketmode.EventTypeConnectionError:
		if e, ok := evt.Data.(*slack.ConnectionErrorEvent); ok {
			a.log.Warn("socket mode: connection failed; retrying", "attempt", e.Attempt, "backoff", e.Backoff, "err", redact(e.ErrorObj))
		}
	case socketmode.EventTypeInvalidAuth:
		a.log.Error("socket mode: app token refused")
	case socketmode.EventTypeIncomingError, socketmode.EventTypeErrorWriteFailed:
		a.log.Warn("socket mode: connection error", "event", string(evt.Type))
	case socketmode.EventTypeDisconnect:
		a.log.Info("socket mode: Slack asked to reconnect")

	case socketmode.EventTypeSlashCommand:
		cmd, ok := evt.Data.(slack.SlashCommand)
		if !ok || evt.Request == nil {
			a.log.Error("socket mode: slash command of unexpected shape", "type", fmt.Sprintf("%T", evt.Data))
			a.ackSocket(c, evt.Request, nil)
			return
		}
		ack, work := a.onCommand(cmd)
		if !a.ackSocket(c, evt.Request, ack) && ack != nil {
			// Could not be carried in the ack: send the same answer by response_url.
			work = chainWork(func(ctx context.Context) { a.reply(ctx, cmd.ResponseURL, *ack) }, work)
		}
		a.submit(ctx, work, func() { a.busy(cmd.ResponseURL) })

	case socketmode.EventTypeInteractive:
		cb, ok := evt.Data.(slack.InteractionCallback)
		if !ok {
			a.ackSocket(c, evt.Request, nil)
			a.log.Error("socket mode: interaction of unexpected shape", "type", fmt.Sprintf("%T", evt.Data))
			return
		}
		// Acknowledged once a fix click is recorded (onInteractionAcked).
		req := evt.Request
		ack := deferredAck(func() { a.ackSocket(c, req, nil) })
		a.submit(ctx, a.onInteractionAcked(cb, ack), func() { ack(); a.busy(cb.ResponseURL) })

	case socketmode.EventTypeEventsAPI:
		// pullfix subscribes to no events; acknowledge so Slack does not retry.
		a.ackSocket(c, evt.Request, nil)

	case socketmode.EventTypeErrorBadMessage:
		// slack-go could not parse an envelope; it still expects an ack, or
		// Slack shows the person a timeout. Answer what can be answered.
		bad, _ := evt.Data.(*socketmode.ErrorBadMessage)
		if bad == nil {
			return
		}
		var env struct {
			EnvelopeID string `json:"envelope_id"`
			Type       string `json:"type"`
			Payload    struct {
				ResponseURL string `json:"response_url"`
			} `json:"payload"`
		}
		_ = json.Unmarshal(bad.Message, &env)
		a.log.Warn("socket mode: unreadable envelope", "type", env.Type, "err", redact(bad.Cause))
		if env.EnvelopeID != "" {
			a.ackSocket(c, &socketmode.Request{EnvelopeID: env.EnvelopeID}, nil)
		}
		if u := env.Payload.ResponseURL; u != "" && validResponseURL(u) {
			a.submit(ctx, func(ctx context.Context) {
				a.reply(ctx, u, ephemeral(":warning: pullfix could not read this request; please try again."))
			}, nil)
		}
	default:
		if evt.Request != nil && evt.Request.EnvelopeID != "" {
			a.ackSocket(c, evt.Request, nil)
		}
	}
}

// ackSocket acknowledges one envelope, with a response payload when given,
// and reports whether the payload (if any) went with the ack. A payload the
// socket cannot carry (Slack drops frames of 20 KB or more) is left to the
// caller to send another way.
func (a *App) ackSocket(c *socketmode.Client, req *socketmode.Request, payload *slack.Msg) bool {
	if req == nil || req.EnvelopeID == "" {
		return false
	}
	if payload != nil && req.AcceptsResponsePayload {
		if err := c.Ack(*req, payload); err == nil {
			return true
		} else {
			a.log.Warn("socket mode: ack with payload failed; acking bare", "err", err)
		}
	}
	if err := c.Ack(*req); err != nil {
		a.log.Warn("socket mode: ack failed", "err", err)
	}
	return payload == nil
}

// chainWork runs first, then next (either may be nil).
func chainWork(first, next func(context.Context)) func(context.Context) {
	if next == nil {
		return first
	}
	return func(ctx context.Context) { first(ctx); next(ctx) }
}

// slogPrinter lets slack-go's debug logger write through slog.
type slogPrinter struct {
	log interface{ Debug(string, ...any) }
}

func (p slogPrinter) Output(_ int, s string) error {
	p.log.Debug("slack-go", "msg", redactString(s))
	return nil
}

// secretish matches what must never reach a log: tokens and websocket
// tickets.
var secretish = regexp.MustCompile(`(xox[abposr]-|xapp-)[0-9A-Za-z-]+|ticket=[^&\s"]+`)

func redactString(s string) string {
	return secretish.ReplaceAllStringFunc(s, func(m string) string {
		if len(m) > 7 && m[:7] == "ticket=" {
			return "ticket=REDACTED"
		}
		return m[:5] + "REDACTED"
	})
}

// redact renders an error for a log without tokens or tickets.
func redact(err error) string {
	if err == nil {
		return ""
	}
	return redactString(err.Error())
}
