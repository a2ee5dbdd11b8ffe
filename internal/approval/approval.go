// Package approval binds a Slack approver to a Kubernetes identity, so a
// click changes only what that person could change with kubectl. The
// mapping (PULLFIX_SLACK_RBAC_MAPPING) names, per Slack user or for
// everyone by their Slack profile e-mail, a Kubernetes user and groups;
// before any write a SubjectAccessReview (authorization.k8s.io/v1) asks the
// API server whether that identity may patch that workload. The bot needs
// only `create subjectaccessreviews` for it: it never impersonates, it
// still writes with its own service account, and only after the API server
// said the person may.
package approval

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Identity is the Kubernetes identity a Slack user acts as.
type Identity struct {
	SlackUser string
	User      string
	Groups    []string
}

// String renders `kubernetes user "alice" (groups dev, ops)` for the
// change-cause, the audit Event and the person's answer.
func (id Identity) String() string {
	s := fmt.Sprintf("kubernetes user %q", id.User)
	if len(id.Groups) > 0 {
		s += " (groups " + strings.Join(id.Groups, ", ") + ")"
	}
	return s
}

// entry is one mapping: a Kubernetes user (possibly a template with
// {email}) and groups.
type entry struct {
	user   string
	groups []string
}

// Mapping maps Slack user ids to Kubernetes identities.
type Mapping struct {
	users    map[string]entry
	fallback *entry // "*": everyone else, usually by e-mail
}

// ErrNotMapped means the Slack user has no Kubernetes identity: the click
// is refused (a mapping that is on fails closed).
var ErrNotMapped = errors.New("your Slack user is not mapped to a Kubernetes identity")

// Parse reads PULLFIX_SLACK_RBAC_MAPPING: comma-separated entries
// SLACK_USER=K8S_USER[|GROUP…]. The key "*" covers every other Slack user,
// and "{email}" in its user is replaced by the user's Slack profile e-mail
// (read with users.info, scope users:read.email), as OIDC sign-in usually
// names users:
//
//	U0ALICE01=alice|team-a,U0BOB0001=bob,*={email}|slack-users
//
// "" is no mapping (nil, nil): approvals are not bound to RBAC.
func Parse(spec string) (*Mapping, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil
	}
	m := &Mapping{users: map[string]entry{}}
	for _, raw := range strings.Split(spec, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		key, val, ok := strings.Cut(raw, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || key == "" || val == "" {
			return nil, fmt.Errorf("rbac mapping entry %q: want SLACK_USER=K8S_USER[|GROUP…]", raw)
		}
		parts := strings.Split(val, "|")
		e := entry{user: strings.TrimSpace(parts[0])}
		for _, g := range parts[1:] {
			if g = strings.TrimSpace(g); g != "" {
				e.groups = append(e.groups, g)
			}
		}
		if e.user == "" {
			return nil, fmt.Errorf("rbac mapping entry %q names no Kubernetes user", raw)
		}
		if strings.HasPrefix(e.user, "system:") {
			// The bot would ask about a service account or a node.
			return nil, fmt.Errorf("rbac mapping entry %q: %q is a system identity, not a person", raw, e.user)
		}
		switch {
		case key == "*":
			if m.fallback != nil {
				return nil, errors.New("rbac mapping has two \"*\" entries")
			}
			m.fallback = &e
		case !isSlackUserID(key):
			return nil, fmt.Errorf("rbac mapping entry %q: %q is not a Slack user id (U… or W…)", raw, key)
		case strings.Contains(e.user, "{email}"):
			return nil, fmt.Errorf("rbac mapping entry %q: {email} belongs in the \"*\" entry", raw)
		default:
			if _, dup := m.users[key]; dup {
				return nil, fmt.Errorf("rbac mapping names %s twice", key)
			}
			m.users[key] = e
		}
	}
	if len(m.users) == 0 && m.fallback == nil {
		return nil, errors.New("rbac mapping has no entries")
	}
	return m, nil
}

func isSlackUserID(s string) bool {
	if len(s) < 2 || (s[0] != 'U' && s[0] != 'W') {
		return false
	}
	for _, r := range s[1:] {
		if !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// NeedsEmail reports whether some Slack user is mapped by e-mail.
func (m *Mapping) NeedsEmail() bool {
	return m != nil && m.fallback != nil && strings.Contains(m.fallback.user, "{email}")
}

// EmailLookup returns a Slack user's profile e-mail.
type EmailLookup func(ctx context.Context, slackUser string) (string, error)

// Identity maps slackUser; email is asked only for the "*" entry's
// {email}. A user with no entry, or whose e-mail Slack does not give,
// is ErrNotMapped.
func (m *Mapping) Identity(ctx context.Context, slackUser string, email EmailLookup) (Identity, error) {
	if m == nil {
		return Identity{}, ErrNotMapped
	}
	e, ok := m.users[slackUser]
	if !ok {
		if m.fallback == nil {
			return Identity{}, fmt.Errorf("%w (no entry for %s in PULLFIX_SLACK_RBAC_MAPPING)", ErrNotMapped, slackUser)
		}
		e = *m.fallback
		if strings.Contains(e.user, "{email}") {
			if email == nil {
				return Identity{}, fmt.Errorf("%w (mapping by e-mail, and the e-mail cannot be looked up)", ErrNotMapped)
			}
			addr, err := email(ctx, slackUser)
			if err != nil {
				return Identity{}, fmt.Errorf("%w (Slack did not give your e-mail: %v)", ErrNotMapped, err)
			}
			if addr = strings.TrimSpace(addr); addr == "" || !strings.Contains(addr, "@") {
				return Identity{}, fmt.Errorf("%w (your Slack profile has no e-mail)", ErrNotMapped)
			}
			e.user = strings.ReplaceAll(e.user, "{email}", addr)
		}
	}
	return Identity{SlackUser: slackUser, User: e.user, Groups: slices.Clone(e.groups)}, nil
}

type ctxKey struct{}

// WithIdentity carries the approver's Kubernetes identity to the patcher's
// write check: it is decided where the click is handled and checked where
// the write happens.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the identity WithIdentity put in ctx.
func FromContext(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(ctxKey{}).(Identity)
	return id, ok
}
