package slackapp

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"

	"github.com/slack-go/slack"
)

// DefaultMaxBody bounds an HTTP-mode request body. A block_actions payload
// carries the clicked message (at most 50 blocks of a few KB each),
// percent-encoded; 1 MiB is far above that and far below harm.
const DefaultMaxBody = 1 << 20

// Handler serves HTTP mode: one endpoint (mount it at e.g. /slack/events
// and give that URL to Slack as both the slash command's request URL and
// the interactivity request URL) for slash commands and block_actions.
//
// Every request must carry a valid v0 signature made with the signing
// secret, a timestamp within 5 minutes, and a signature not seen before;
// otherwise it is answered 401 and has no effect. A valid request is
// answered 200 at once — a slash command with its ephemeral acknowledgement
// — and its work runs afterwards in the worker pool.
func (a *App) Handler() http.Handler { return http.HandlerFunc(a.serveHTTP) }

func (a *App) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if a.verifier == nil {
		a.log.Error("http mode: request refused: no signing secret configured")
		http.Error(w, "signing secret not configured", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			a.log.Warn("http mode: request too large", "remote", r.RemoteAddr, "limit", a.maxBody)
			http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read request", http.StatusBadRequest)
		return
	}
	if err := a.verifier.Verify(r.Header, body); err != nil {
		a.log.Warn("http mode: request refused", "remote", r.RemoteAddr, "reason", err.Error())
		http.Error(w, "invalid request signature", http.StatusUnauthorized)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		a.log.Warn("http mode: body is not a form", "remote", r.RemoteAddr)
		http.Error(w, "body must be application/x-www-form-urlencoded", http.StatusBadRequest)
		return
	}
	ctx := a.ctx
	switch {
	case form.Get("ssl_check") == "1":
		// Slack checking the certificate of a slash command URL.
		w.WriteHeader(http.StatusOK)

	case form.Has("payload"):
		var cb slack.InteractionCallback
		if err := json.Unmarshal([]byte(form.Get("payload")), &cb); err != nil {
			a.log.Warn("http mode: unreadable interaction payload", "err", err.Error())
			http.Error(w, "unreadable interaction payload", http.StatusBadRequest)
			return
		}
		// Answered once a fix click is recorded (onInteractionAcked).
		acked := make(chan struct{})
		ack := deferredAck(func() { close(acked) })
		a.submit(ctx, a.onInteractionAcked(cb, ack), func() { ack(); a.busy(cb.ResponseURL) })
		<-acked
		w.WriteHeader(http.StatusOK)
		flush(w)

	case form.Has("command"):
		cmd := slashCommandFromForm(form)
		ack, work := a.onCommand(cmd)
		if ack == nil {
			w.WriteHeader(http.StatusOK)
		} else {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			_ = json.NewEncoder(w).Encode(ack)
		}
		flush(w)
		a.submit(ctx, work, func() { a.busy(cmd.ResponseURL) })

	default:
		a.log.Warn("http mode: neither a slash command nor an interaction", "remote", r.RemoteAddr)
		http.Error(w, "not a slash command or interaction", http.StatusBadRequest)
	}
}

func flush(w http.ResponseWriter) {
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

// slashCommandFromForm reads the fields slack.SlashCommandParse reads, from
// the already verified body.
func slashCommandFromForm(f url.Values) slack.SlashCommand {
	return slack.SlashCommand{
		Token: f.Get("token"), TeamID: f.Get("team_id"), TeamDomain: f.Get("team_domain"),
		EnterpriseID: f.Get("enterprise_id"), EnterpriseName: f.Get("enterprise_name"),
		IsEnterpriseInstall: f.Get("is_enterprise_install") == "true",
		ChannelID:           f.Get("channel_id"), ChannelName: f.Get("channel_name"),
		UserID: f.Get("user_id"), UserName: f.Get("user_name"),
		Command: f.Get("command"), Text: f.Get("text"),
		ResponseURL: f.Get("response_url"), TriggerID: f.Get("trigger_id"), APIAppID: f.Get("api_app_id"),
	}
}
