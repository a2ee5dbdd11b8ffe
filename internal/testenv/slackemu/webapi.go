package slackemu

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// tokenKind says which credential a method accepts.
type tokenKind int

const (
	botTokenOnly tokenKind = iota
	appTokenOnly
)

// apiMethod describes one emulated Web API method. Handlers run with e.mu
// held; they must not block.
type apiMethod struct {
	token tokenKind
	// headerOnly: the token is accepted only in the Authorization header
	// (apps.connections.open errors when it is a POST parameter).
	headerOnly bool
	handle     func(e *Emulator, r *apiRequest) apiResponse
}

var apiMethods = map[string]apiMethod{
	"auth.test":             {handle: (*Emulator).authTest},
	"chat.postMessage":      {handle: (*Emulator).chatPostMessage},
	"chat.update":           {handle: (*Emulator).chatUpdate},
	"chat.postEphemeral":    {handle: (*Emulator).chatPostEphemeral},
	"chat.getPermalink":     {handle: (*Emulator).chatGetPermalink},
	"conversations.info":    {handle: (*Emulator).conversationsInfo},
	"conversations.history": {handle: (*Emulator).conversationsHistory},
	"usergroups.users.list": {handle: (*Emulator).usergroupsUsersList},
	"users.info":            {handle: (*Emulator).usersInfo},
	"apps.connections.open": {token: appTokenOnly, headerOnly: true, handle: (*Emulator).appsConnectionsOpen},
}

// apiRequest is a parsed Web API request: form and JSON bodies, and query
// parameters, all end up in params.
type apiRequest struct {
	method    string
	params    url.Values
	token     string
	fromParam bool // token came from a POST/query parameter, not the header
	isJSON    bool
	charset   bool
}

// apiResponse is what a handler answers. body is marshalled as JSON.
type apiResponse struct {
	status     int
	body       any
	errCode    string
	retryAfter time.Duration
	blocks     json.RawMessage // stored in the Call record
}

// slackError is Slack's error body. Errors and ResponseMetadata appear for
// invalid_blocks, Warning for missing_charset.
type slackError struct {
	OK               bool          `json:"ok"`
	Error            string        `json:"error"`
	Errors           []string      `json:"errors,omitempty"`
	Warning          string        `json:"warning,omitempty"`
	ResponseMetadata *respMetadata `json:"response_metadata,omitempty"`
}

type respMetadata struct {
	Messages []string `json:"messages,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}

func okResp(body any) apiResponse { return apiResponse{status: http.StatusOK, body: body} }

func errResp(code string) apiResponse {
	return apiResponse{status: http.StatusOK, errCode: code, body: slackError{Error: code}}
}

// Fault makes a call fail. Status 5xx answers that status with an HTML-ish
// body (Slack does); Status 0 or 200 answers ok:false with Error; Status 429
// answers with Retry-After.
type Fault struct {
	Status     int
	Error      string
	RetryAfter time.Duration
}

// FailNext makes the next n calls of method (e.g. "chat.postMessage") fail
// with f, before any other check.
func (e *Emulator) FailNext(method string, n int, f Fault) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for range n {
		e.faults[method] = append(e.faults[method], f)
	}
}

func (e *Emulator) serveAPI(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/api/")
	req, err := parseAPIRequest(r, method)
	if err != nil {
		writeJSON(w, http.StatusOK, slackError{Error: "invalid_form_data"}, 0)
		return
	}
	spec, known := apiMethods[method]
	if h := e.takeHold(method, false, req.params); h != nil && !h.wait(r.Context()) {
		return // the app is gone: Slack never got this call
	}

	e.mu.Lock()
	var resp apiResponse
	switch {
	case !known:
		resp = apiResponse{status: http.StatusNotFound, errCode: "unknown_method",
			body: map[string]any{"ok": false, "error": "unknown_method", "req_method": method}}
	case len(e.faults[method]) > 0:
		f := e.faults[method][0]
		e.faults[method] = e.faults[method][1:]
		resp = faultResponse(f)
	default:
		if code := e.checkAuth(spec, req); code != "" {
			resp = errResp(code)
		} else {
			resp = spec.handle(e, req)
		}
	}
	if resp.status == http.StatusOK && req.isJSON && !req.charset {
		resp.body = withCharsetWarning(resp.body)
	}
	params := url.Values{}
	for k, v := range req.params {
		if k != "token" {
			params[k] = v
		}
	}
	blocks := resp.blocks
	if blocks == nil && req.params.Get("blocks") != "" && json.Valid([]byte(req.params.Get("blocks"))) {
		blocks = json.RawMessage(req.params.Get("blocks"))
	}
	e.recordLocked(Call{Method: method, Params: params, Blocks: blocks, Status: resp.status,
		Error: resp.errCode, RetryAfter: resp.retryAfter})
	e.mu.Unlock()

	e.log.Debug("api call", "method", method, "status", resp.status, "error", resp.errCode)
	if h := e.takeHold(method, true, req.params); h != nil && !h.wait(r.Context()) {
		return // done, but the app is gone before hearing so
	}
	writeJSON(w, resp.status, resp.body, resp.retryAfter)
}

func faultResponse(f Fault) apiResponse {
	switch {
	case f.Status == http.StatusTooManyRequests:
		ra := max(f.RetryAfter, time.Second)
		return apiResponse{status: 429, errCode: "ratelimited", retryAfter: ra,
			body: slackError{Error: "ratelimited"}}
	case f.Status >= 300:
		return apiResponse{status: f.Status, errCode: f.Error, body: nil}
	default:
		code := f.Error
		if code == "" {
			code = "internal_error"
		}
		return errResp(code)
	}
}

// checkAuth answers Slack's auth errors: not_authed (no token), invalid_auth
// (unknown token), not_allowed_token_type (the other kind of token).
func (e *Emulator) checkAuth(spec apiMethod, r *apiRequest) string {
	if r.token == "" || (spec.headerOnly && r.fromParam) {
		return "not_authed"
	}
	want, other := e.cfg.botToken, e.cfg.appToken
	if spec.token == appTokenOnly {
		want, other = other, want
	}
	switch r.token {
	case want:
		return ""
	case other:
		return "not_allowed_token_type"
	default:
		return "invalid_auth"
	}
}

func parseAPIRequest(r *http.Request, method string) (*apiRequest, error) {
	req := &apiRequest{method: method, params: url.Values{}}
	for k, v := range r.URL.Query() {
		req.params[k] = v
	}
	ct, ctParams, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	body, err := io.ReadAll(io.LimitReader(r.Body, 10<<20))
	if err != nil {
		return nil, err
	}
	switch ct {
	case "application/json":
		req.isJSON = true
		req.charset = strings.EqualFold(ctParams["charset"], "utf-8")
		if len(strings.TrimSpace(string(body))) > 0 {
			var m map[string]json.RawMessage
			if err := json.Unmarshal(body, &m); err != nil {
				return nil, err
			}
			for k, raw := range m {
				var s string
				if json.Unmarshal(raw, &s) == nil {
					req.params.Set(k, s)
				} else {
					req.params.Set(k, string(raw))
				}
			}
		}
	case "application/x-www-form-urlencoded", "":
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, err
		}
		for k, v := range vals {
			req.params[k] = v
		}
	}
	if h := r.Header.Get("Authorization"); strings.HasPrefix(h, "Bearer ") {
		req.token = strings.TrimPrefix(h, "Bearer ")
	} else if t := req.params.Get("token"); t != "" && !req.isJSON {
		req.token, req.fromParam = t, true
	}
	return req, nil
}

// withCharsetWarning adds the warning Slack attaches to JSON requests sent
// without "charset=utf-8".
func withCharsetWarning(body any) any {
	raw, err := json.Marshal(body)
	if err != nil {
		return body
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return body
	}
	m["warning"] = json.RawMessage(`"missing_charset"`)
	m["response_metadata"] = json.RawMessage(`{"warnings":["missing_charset"]}`)
	return m
}

func writeJSON(w http.ResponseWriter, status int, body any, retryAfter time.Duration) {
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((retryAfter+time.Second-1)/time.Second)))
	}
	if body == nil {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "<html><body>"+http.StatusText(status)+"</body></html>")
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// authTestResponse mirrors auth.test for a bot token (fixture
// web-api/auth.test_ok_bot_java-mock.json).
type authTestResponse struct {
	OK                  bool   `json:"ok"`
	URL                 string `json:"url"`
	Team                string `json:"team"`
	User                string `json:"user"`
	TeamID              string `json:"team_id"`
	UserID              string `json:"user_id"`
	BotID               string `json:"bot_id"`
	IsEnterpriseInstall bool   `json:"is_enterprise_install"`
}

func (e *Emulator) authTest(*apiRequest) apiResponse {
	return okResp(authTestResponse{
		OK: true, URL: e.teamURL(), Team: e.cfg.teamDomain, User: e.cfg.botName,
		TeamID: e.cfg.teamID, UserID: e.cfg.botUserID, BotID: e.cfg.botID,
	})
}

func (e *Emulator) teamURL() string { return "https://" + e.cfg.teamDomain + ".slack.com/" }

func (e *Emulator) usergroupsUsersList(r *apiRequest) apiResponse {
	g, ok := e.groups[r.params.Get("usergroup")]
	if !ok {
		return errResp("no_such_subteam")
	}
	users := g.Members
	if users == nil {
		users = []string{}
	}
	return okResp(struct {
		OK    bool     `json:"ok"`
		Users []string `json:"users"`
	}{true, users})
}

func (e *Emulator) conversationsInfo(r *apiRequest) apiResponse {
	ch, ok := e.channels[r.params.Get("channel")]
	if !ok {
		return errResp("channel_not_found")
	}
	type channel struct {
		ID         string `json:"id"`
		Name       string `json:"name"`
		IsChannel  bool   `json:"is_channel"`
		IsGroup    bool   `json:"is_group"`
		IsIM       bool   `json:"is_im"`
		IsPrivate  bool   `json:"is_private"`
		IsArchived bool   `json:"is_archived"`
		IsMember   bool   `json:"is_member"`
		Created    int64  `json:"created"`
		Creator    string `json:"creator"`
	}
	return okResp(struct {
		OK      bool    `json:"ok"`
		Channel channel `json:"channel"`
	}{true, channel{ID: ch.ID, Name: ch.Name, IsChannel: true, IsMember: true, Created: 1700000000, Creator: e.cfg.botUserID}})
}

func (e *Emulator) appsConnectionsOpen(*apiRequest) apiResponse {
	ticket := newUUID()
	e.tickets[ticket] = true
	u := strings.Replace(e.base, "http://", "ws://", 1) + "/link/?ticket=" + ticket + "&app_id=" + e.cfg.appID
	return okResp(struct {
		OK  bool   `json:"ok"`
		URL string `json:"url"`
	}{true, u})
}
