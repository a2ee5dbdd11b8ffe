package slackemu

import "slices"

// User is a workspace member a test can act as.
type User struct {
	ID    string
	Name  string
	IsBot bool
	// Email is the profile e-mail users.info returns (SetUserEmail).
	Email string
}

// UserGroup is a Slack user group (subteam) such as @sre-approvers.
type UserGroup struct {
	ID      string // "S…"
	Handle  string // without the @
	Members []string
}

// Channel is a conversation the bot can post to.
type Channel struct {
	ID   string
	Name string
}

// AddUser adds (or renames) a workspace member.
func (e *Emulator) AddUser(id, name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.users[id] = &User{ID: id, Name: name}
	e.notifyLocked()
}

// AddUserGroup adds or replaces a user group; usergroups.users.list answers
// with its members.
func (e *Emulator) AddUserGroup(id, handle string, members ...string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.groups[id] = &UserGroup{ID: id, Handle: handle, Members: slices.Clone(members)}
	e.notifyLocked()
}

// AddChannel adds a channel. Posting to a channel that was not added answers
// channel_not_found, as Slack does for a channel the bot cannot see.
func (e *Emulator) AddChannel(id, name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.channels[id]; !ok {
		e.chOrder = append(e.chOrder, id)
	}
	e.channels[id] = &Channel{ID: id, Name: name}
	e.notifyLocked()
}

func (e *Emulator) userName(id string) string {
	if u, ok := e.users[id]; ok {
		return u.Name
	}
	return ""
}
