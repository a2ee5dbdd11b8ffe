package slackemu

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// responseURL is one issued response_url: where it posts, what it may
// replace, and how often it was used.
type responseURL struct {
	kind      string // "commands" or "actions"
	channel   string
	user      string
	originTS  string // actions: the message clicked
	originEph bool
	lastTS    string // last message posted through this URL (replace target for commands)
	lastEph   bool
	uses      int
	expires   time.Time
}

// responseMessage is the JSON a response_url (or a slash command ack
// payload) carries.
type responseMessage struct {
	Text            string          `json:"text"`
	Blocks          json.RawMessage `json:"blocks"`
	Attachments     json.RawMessage `json:"attachments"`
	ResponseType    string          `json:"response_type"`
	ReplaceOriginal bool            `json:"replace_original"`
	DeleteOriginal  bool            `json:"delete_original"`
	ThreadTS        string          `json:"thread_ts"`
}

func (e *Emulator) newResponseURLLocked(kind, channel, user, originTS string, eph bool) (*responseURL, string) {
	id := e.nextRespURL
	e.nextRespURL++
	path := "/" + kind + "/" + e.cfg.teamID + "/" + strconv.FormatInt(id, 10) + "/" + randomHex(12)
	ru := &responseURL{kind: kind, channel: channel, user: user, originTS: originTS, originEph: eph,
		expires: time.Now().Add(responseURLTTL)}
	e.respURLs[path] = ru
	return ru, e.base + path
}

// serveResponseURL handles POSTs to issued response_urls. Slack answers
// ok:true, or an error once the URL is used up or expired.
func (e *Emulator) serveResponseURL(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	var rm responseMessage
	jsonErr := json.Unmarshal(body, &rm)
	if !isJSONContent(r.Header.Get("Content-Type")) {
		// Slack also accepts a form body with a "payload" field.
		if vals, err := url.ParseQuery(string(body)); err == nil && vals.Get("payload") != "" {
			jsonErr = json.Unmarshal([]byte(vals.Get("payload")), &rm)
		}
	}

	e.mu.Lock()
	ru := e.respURLs[r.URL.Path]
	var (
		status = http.StatusOK
		code   string
		blocks json.RawMessage
	)
	switch {
	case ru == nil:
		status, code = http.StatusNotFound, "invalid_url"
	case time.Now().After(ru.expires):
		status, code = http.StatusNotFound, "expired_url"
	case ru.uses >= responseURLUses:
		status, code = http.StatusNotFound, "used_url"
	case jsonErr != nil:
		status, code = http.StatusBadRequest, "invalid_payload"
	default:
		ru.uses++
		code, blocks = e.applyResponseLocked(ru, rm, "response_url")
		if code != "" {
			status = http.StatusBadRequest
		}
	}
	params := url.Values{"text": {rm.Text}, "response_type": {rm.ResponseType}}
	if rm.ReplaceOriginal {
		params.Set("replace_original", "true")
	}
	if rm.DeleteOriginal {
		params.Set("delete_original", "true")
	}
	if blocks == nil && len(rm.Blocks) > 0 && string(rm.Blocks) != "null" {
		blocks = rm.Blocks
	}
	e.recordLocked(Call{Method: "response_url", Params: params, Blocks: blocks, Status: status, Error: code})
	e.mu.Unlock()

	if code != "" {
		writeJSON(w, status, slackError{Error: code}, 0)
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"ok": true}, 0)
}

// applyResponseLocked shows a response the way Slack does: delete or
// replace the original, or post a new message (ephemeral unless
// response_type is "in_channel"). It returns Slack's error code, if any,
// and the stored blocks.
func (e *Emulator) applyResponseLocked(ru *responseURL, rm responseMessage, source string) (string, json.RawMessage) {
	var blocks json.RawMessage
	if len(rm.Blocks) > 0 && string(rm.Blocks) != "null" {
		b, code, _ := normalizeBlocks(string(rm.Blocks))
		if code != "" {
			return code, nil
		}
		blocks = b
	}
	targetTS, targetEph := ru.originTS, ru.originEph
	if ru.kind == "commands" {
		targetTS, targetEph = ru.lastTS, ru.lastEph
	}
	if (rm.DeleteOriginal || rm.ReplaceOriginal) && targetTS != "" {
		if targetEph {
			m := e.findEphemeralLocked(ru.channel, targetTS, ru.user)
			if m == nil {
				return "message_not_found", nil
			}
			if rm.DeleteOriginal {
				m.Deleted = true
			} else {
				m.Edits = append(m.Edits, Revision{Text: m.Text, Blocks: m.Blocks, At: m.At})
				m.Text, m.Blocks = rm.Text, blocks
			}
		} else {
			m := e.findMessageLocked(ru.channel, targetTS)
			if m == nil || m.Deleted {
				return "message_not_found", nil
			}
			if rm.DeleteOriginal {
				m.Deleted = true
			} else {
				e.editMessageLocked(m, rm.Text, blocks)
			}
		}
		e.notifyLocked()
		return "", blocks
	}
	if rm.DeleteOriginal {
		return "", nil
	}
	hasBlocks := len(blocks) > 0 && string(blocks) != "[]"
	if rm.Text == "" && !hasBlocks && (len(rm.Attachments) == 0 || string(rm.Attachments) == "null") {
		return "no_text", nil
	}
	if rm.ResponseType == "in_channel" {
		m := e.storeMessageLocked(ru.channel, rm.ThreadTS, rm.Text, blocks, source)
		ru.lastTS, ru.lastEph = m.TS, false
		return "", blocks
	}
	eph := e.storeEphemeralLocked(ru.channel, ru.user, rm.ThreadTS, rm.Text, blocks, source)
	ru.lastTS, ru.lastEph = eph.TS, true
	return "", blocks
}
