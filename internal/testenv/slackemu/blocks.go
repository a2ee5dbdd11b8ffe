package slackemu

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// Block Kit limits Slack enforces on messages (facts/slack.md §6). Slack
// answers invalid_blocks with one "must be less than N …" line per problem,
// each ending in a JSON pointer.
const (
	maxBlocks          = 50
	maxBlockID         = 255
	maxTextObject      = 3000
	maxHeaderText      = 150
	maxSectionFields   = 10
	maxSectionField    = 2000
	maxActionsElements = 25
	maxContextElements = 10
	maxButtonText      = 75
	maxButtonValue     = 2000
	maxButtonURL       = 3000
	maxActionID        = 255
	maxConfirmTitle    = 100
	maxConfirmText     = 300
	maxConfirmButton   = 30
	maxMessageText     = 40000
)

var knownBlockTypes = map[string]bool{
	"section": true, "header": true, "actions": true, "context": true, "divider": true,
	"image": true, "input": true, "rich_text": true, "markdown": true, "file": true,
	"video": true, "call": true, "context_actions": true, "table": true,
}

// blockChecker collects Slack-style validation messages.
type blockChecker struct{ errs []string }

func (c *blockChecker) add(ptr, format string, args ...any) {
	c.errs = append(c.errs, fmt.Sprintf(format, args...)+" [json-pointer:"+ptr+"]")
}

func (c *blockChecker) maxLen(ptr string, s string, limit int) {
	if utf8.RuneCountInString(s) > limit {
		c.add(ptr, "must be less than %d characters", limit+1)
	}
}

// textObject checks a composition text object; plainOnly restricts its type.
func (c *blockChecker) textObject(ptr string, v any, limit int, plainOnly bool) {
	obj, ok := v.(map[string]any)
	if !ok {
		c.add(ptr, "must be an object")
		return
	}
	typ, _ := obj["type"].(string)
	switch {
	case typ == "plain_text":
	case typ == "mrkdwn" && !plainOnly:
	default:
		c.add(ptr+"/type", "must be a valid enum value")
	}
	text, ok := obj["text"].(string)
	if !ok {
		c.add(ptr, "missing required field: text")
		return
	}
	if text == "" {
		c.add(ptr+"/text", "must be more than 0 characters")
	}
	c.maxLen(ptr+"/text", text, limit)
}

func (c *blockChecker) element(ptr string, el map[string]any) {
	if id, ok := el["action_id"].(string); ok {
		c.maxLen(ptr+"/action_id", id, maxActionID)
	}
	if el["type"] != "button" {
		return
	}
	c.textObject(ptr+"/text", el["text"], maxButtonText, true)
	if v, ok := el["value"].(string); ok {
		c.maxLen(ptr+"/value", v, maxButtonValue)
	}
	if u, ok := el["url"].(string); ok {
		c.maxLen(ptr+"/url", u, maxButtonURL)
	}
	if s, ok := el["style"].(string); ok && s != "primary" && s != "danger" {
		c.add(ptr+"/style", "must be a valid enum value")
	}
	if conf, ok := el["confirm"].(map[string]any); ok {
		c.textObject(ptr+"/confirm/title", conf["title"], maxConfirmTitle, true)
		c.textObject(ptr+"/confirm/text", conf["text"], maxConfirmText, false)
		c.textObject(ptr+"/confirm/confirm", conf["confirm"], maxConfirmButton, true)
		c.textObject(ptr+"/confirm/deny", conf["deny"], maxConfirmButton, true)
	}
}

func (c *blockChecker) block(ptr string, b map[string]any, seenBlockIDs map[string]bool) {
	typ, _ := b["type"].(string)
	if !knownBlockTypes[typ] {
		c.add(ptr+"/type", "must be a valid enum value")
		return
	}
	if id, ok := b["block_id"].(string); ok {
		c.maxLen(ptr+"/block_id", id, maxBlockID)
		if seenBlockIDs[id] {
			c.add(ptr+"/block_id", "duplicate block_id %q", id)
		}
		seenBlockIDs[id] = true
	}
	switch typ {
	case "header":
		c.textObject(ptr+"/text", b["text"], maxHeaderText, true)
	case "section":
		text, hasText := b["text"]
		fields, _ := b["fields"].([]any)
		if !hasText && len(fields) == 0 {
			c.add(ptr, "missing required field: text")
		}
		if hasText {
			c.textObject(ptr+"/text", text, maxTextObject, false)
		}
		if len(fields) > maxSectionFields {
			c.add(ptr+"/fields", "must be less than %d items", maxSectionFields+1)
		}
		for i, f := range fields {
			c.textObject(fmt.Sprintf("%s/fields/%d", ptr, i), f, maxSectionField, false)
		}
		if acc, ok := b["accessory"].(map[string]any); ok {
			c.element(ptr+"/accessory", acc)
		}
	case "actions":
		els, _ := b["elements"].([]any)
		if len(els) == 0 {
			c.add(ptr+"/elements", "must provide at least 1 items")
		}
		if len(els) > maxActionsElements {
			c.add(ptr+"/elements", "must be less than %d items", maxActionsElements+1)
		}
		seen := map[string]bool{}
		for i, raw := range els {
			el, ok := raw.(map[string]any)
			if !ok {
				continue
			}
			p := fmt.Sprintf("%s/elements/%d", ptr, i)
			if id, ok := el["action_id"].(string); ok {
				if seen[id] {
					c.add(p+"/action_id", "duplicate action_id %q", id)
				}
				seen[id] = true
			}
			c.element(p, el)
		}
	case "context":
		els, _ := b["elements"].([]any)
		if len(els) > maxContextElements {
			c.add(ptr+"/elements", "must be less than %d items", maxContextElements+1)
		}
		for i, raw := range els {
			if el, ok := raw.(map[string]any); ok && el["type"] != "image" {
				c.textObject(fmt.Sprintf("%s/elements/%d", ptr, i), el, maxTextObject, false)
			}
		}
	}
}

// normalizeBlocks validates a message's blocks and returns them as Slack
// stores them: every block without a block_id gets a generated one (so
// block_actions payloads always carry a string block_id, which slack-go
// needs to classify them). On rejection it returns Slack's error code
// (invalid_blocks_format or invalid_blocks) and messages.
func normalizeBlocks(raw string) (json.RawMessage, string, []string) {
	var blocks []map[string]any
	if err := json.Unmarshal([]byte(raw), &blocks); err != nil {
		return nil, "invalid_blocks_format", nil
	}
	c := &blockChecker{}
	if len(blocks) > maxBlocks {
		c.add("/blocks", "must be less than %d items", maxBlocks+1)
	}
	seen := map[string]bool{}
	for i, b := range blocks {
		if b == nil {
			c.add(fmt.Sprintf("/blocks/%d", i), "must be an object")
			continue
		}
		c.block(fmt.Sprintf("/blocks/%d", i), b, seen)
	}
	if len(c.errs) > 0 {
		return nil, "invalid_blocks", c.errs
	}
	for _, b := range blocks {
		if _, ok := b["block_id"].(string); !ok {
			b["block_id"] = generatedBlockID()
		}
	}
	out, err := json.Marshal(blocks)
	if err != nil {
		return nil, "invalid_blocks_format", nil
	}
	return out, "", nil
}

func invalidBlocks(code string, errs []string) apiResponse {
	body := slackError{Error: code, Errors: errs}
	if len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = "[ERROR] " + e
		}
		body.ResponseMetadata = &respMetadata{Messages: msgs}
	}
	return apiResponse{status: 200, errCode: code, body: body}
}

// generatedBlockID mimics the short random ids Slack assigns ("Zy5P").
func generatedBlockID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
