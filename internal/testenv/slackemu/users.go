package slackemu

// SetUserEmail sets a member's profile e-mail, which users.info returns
// (Slack returns it only to apps with the users:read.email scope; the
// emulator does not model scopes). "" removes it, as for a member whose
// e-mail the workspace hides.
func (e *Emulator) SetUserEmail(id, email string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if u, ok := e.users[id]; ok {
		u.Email = email
	}
	e.notifyLocked()
}

// usersInfo answers users.info: the member's id, names and profile (with
// its e-mail when set), user_not_found otherwise — the fields slack-go's
// GetUserInfo reads.
func (e *Emulator) usersInfo(r *apiRequest) apiResponse {
	u, ok := e.users[r.params.Get("user")]
	if !ok {
		return errResp("user_not_found")
	}
	type profile struct {
		RealName    string `json:"real_name"`
		DisplayName string `json:"display_name"`
		Email       string `json:"email,omitempty"`
	}
	type user struct {
		ID       string  `json:"id"`
		TeamID   string  `json:"team_id"`
		Name     string  `json:"name"`
		RealName string  `json:"real_name"`
		IsBot    bool    `json:"is_bot"`
		Profile  profile `json:"profile"`
	}
	return okResp(struct {
		OK   bool `json:"ok"`
		User user `json:"user"`
	}{true, user{ID: u.ID, TeamID: e.cfg.teamID, Name: u.Name, RealName: u.Name, IsBot: u.IsBot,
		Profile: profile{RealName: u.Name, DisplayName: u.Name, Email: u.Email}}})
}
