package slackapp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
)

// GroupMembers resolves a Slack user group (subteam, "S…") to the user ids
// of its members. SlackGroupMembers implements it with usergroups.users.list.
type GroupMembers interface {
	GroupMembers(ctx context.Context, groupID string) ([]string, error)
}

// userGroupsAPI is the part of *slack.Client SlackGroupMembers needs.
type userGroupsAPI interface {
	GetUserGroupMembersContext(ctx context.Context, userGroup string, options ...slack.GetUserGroupMembersOption) ([]string, error)
}

// SlackGroupMembers adapts a *slack.Client (scope usergroups:read) to
// GroupMembers. Disabled users are left out: a deactivated account must not
// approve.
type SlackGroupMembers struct{ API userGroupsAPI }

// GroupMembers calls usergroups.users.list.
func (s SlackGroupMembers) GroupMembers(ctx context.Context, groupID string) ([]string, error) {
	return s.API.GetUserGroupMembersContext(ctx, groupID, slack.GetUserGroupMembersOptionIncludeDisabled(false))
}

// ApproverList is a set of Slack user ids ("U…", "W…" on Enterprise Grid)
// and user-group ids ("S…").
type ApproverList struct {
	Users  []string
	Groups []string
}

func (l ApproverList) empty() bool { return len(l.Users) == 0 && len(l.Groups) == 0 }

// mentions renders the list as Slack mentions, for explanations.
func (l ApproverList) mentions() string {
	var parts []string
	for _, u := range l.Users {
		parts = append(parts, "<@"+u+">")
	}
	for _, g := range l.Groups {
		parts = append(parts, "<!subteam^"+g+">")
	}
	return strings.Join(parts, ", ")
}

// ApproverPolicy says who may approve fixes: Global everywhere, except in
// a namespace listed in Namespaces, whose list replaces the global one
// there (list the global approvers again to keep them).
type ApproverPolicy struct {
	Global     ApproverList
	Namespaces map[string]ApproverList
}

// For is the list that applies in namespace ns.
func (p ApproverPolicy) For(ns string) ApproverList {
	if l, ok := p.Namespaces[ns]; ok {
		return l
	}
	return p.Global
}

// ErrApproverConfig is wrapped by every ParseApprovers error.
var ErrApproverConfig = errors.New("invalid approver configuration")

// ParseApprovers reads the approver policy from its configuration string
// (PULLFIX_SLACK_APPROVERS):
//
//	GLOBAL[;NAMESPACE=LIST]...      LIST = ID[,ID]...
//	"U123,S456;team-a=U789,S999;team-b=S111"
//
// The first entry without "=" is the global list (at most one); every
// "namespace=list" entry replaces it in that namespace. IDs are Slack user
// ids (U…, W…) or user-group ids (S…) — handles like @sre do not work,
// because a handle can be renamed by anyone who can edit the group. Spaces
// around entries are ignored; an empty string means nobody may approve.
func ParseApprovers(s string) (ApproverPolicy, error) {
	p := ApproverPolicy{Namespaces: map[string]ApproverList{}}
	fail := func(entry, format string, args ...any) error {
		return fmt.Errorf("%w: entry %q: %s", ErrApproverConfig, entry, fmt.Sprintf(format, args...))
	}
	globalSet := false
	for entry := range strings.SplitSeq(s, ";") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		ns, list, scoped := strings.Cut(entry, "=")
		if !scoped {
			list = entry
		}
		ns = strings.TrimSpace(ns)
		var l ApproverList
		for id := range strings.SplitSeq(list, ",") {
			id = strings.TrimSpace(id)
			switch {
			case id == "":
				return ApproverPolicy{}, fail(entry, "empty id (stray comma?)")
			case strings.HasPrefix(id, "@") || strings.HasPrefix(id, "<"):
				return ApproverPolicy{}, fail(entry, "%q: use the Slack id (U…, W… or S…), not a handle or mention", id)
			case !isSlackID(id):
				return ApproverPolicy{}, fail(entry, "%q is not a Slack user id (U…, W…) or user-group id (S…)", id)
			case id[0] == 'S':
				if !slices.Contains(l.Groups, id) {
					l.Groups = append(l.Groups, id)
				}
			default:
				if !slices.Contains(l.Users, id) {
					l.Users = append(l.Users, id)
				}
			}
		}
		if !scoped {
			if globalSet {
				return ApproverPolicy{}, fail(entry, "a second global list; prefix per-namespace lists with NAMESPACE=")
			}
			p.Global, globalSet = l, true
			continue
		}
		if !isDNS1123Label(ns) {
			return ApproverPolicy{}, fail(entry, "%q is not a namespace name", ns)
		}
		if _, dup := p.Namespaces[ns]; dup {
			return ApproverPolicy{}, fail(entry, "namespace %q listed twice", ns)
		}
		p.Namespaces[ns] = l
	}
	return p, nil
}

// isSlackID: an upper-case letter U, W or S followed by 2..20 upper-case
// letters or digits.
func isSlackID(id string) bool {
	if len(id) < 3 || len(id) > 21 || (id[0] != 'U' && id[0] != 'W' && id[0] != 'S') {
		return false
	}
	for i := 1; i < len(id); i++ {
		if c := id[i]; !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Default settings of Approvers.
const (
	// DefaultGroupCacheTTL: group memberships are cached this long.
	// usergroups.users.list is Tier 2 (20+/min), and a removed member losing
	// approval a minute late is acceptable.
	DefaultGroupCacheTTL = time.Minute
)

// ApproverOption configures NewApprovers.
type ApproverOption func(*Approvers)

// WithGroupCacheTTL sets how long a group's members are cached.
// Default: DefaultGroupCacheTTL. 0 disables the cache.
func WithGroupCacheTTL(d time.Duration) ApproverOption {
	return func(a *Approvers) { a.ttl = d }
}

// WithOpenActions says whether Re-check, Snooze and Dismiss are open to
// everyone in the channel (true) or need an approver like fixes (false).
// Default: true — they change nothing in the cluster.
func WithOpenActions(open bool) ApproverOption {
	return func(a *Approvers) { a.open = open }
}

// WithApproverClock replaces time.Now (tests). Default: time.Now.
func WithApproverClock(now func() time.Time) ApproverOption {
	return func(a *Approvers) { a.now = now }
}

// Approvers decides who may click what. Safe for concurrent use.
type Approvers struct {
	policy ApproverPolicy
	groups GroupMembers
	ttl    time.Duration
	open   bool
	now    func() time.Time

	mu    sync.Mutex
	cache map[string]*groupEntry
}

type groupEntry struct {
	ready   chan struct{} // closed when members/err are set
	members []string
	err     error
	at      time.Time
}

// NewApprovers builds the decision from a policy and a group resolver
// (nil when the policy names no groups).
func NewApprovers(p ApproverPolicy, groups GroupMembers, opts ...ApproverOption) *Approvers {
	a := &Approvers{policy: p, groups: groups, ttl: DefaultGroupCacheTTL, open: true, now: time.Now, cache: map[string]*groupEntry{}}
	for _, o := range opts {
		o(a)
	}
	return a
}

// Allowed reports whether userID may approve a fix (set image, roll back,
// add a pull secret) in namespace. reason explains the decision in words
// for the clicker (Slack mrkdwn with mentions). err is non-nil only when a
// group could not be resolved and no other entry allowed the user; the
// answer is then false (fail closed).
func (a *Approvers) Allowed(ctx context.Context, namespace, userID string) (bool, string, error) {
	l := a.policy.For(namespace)
	where := "namespace " + namespace
	if _, scoped := a.policy.Namespaces[namespace]; !scoped {
		where = "this cluster"
	}
	if l.empty() {
		return false, fmt.Sprintf("no approvers are configured for %s (PULLFIX_SLACK_APPROVERS), so nobody can apply fixes from Slack", where), nil
	}
	if slices.Contains(l.Users, userID) {
		return true, fmt.Sprintf("<@%s> is an approver for %s", userID, where), nil
	}
	var errs []error
	for _, g := range l.Groups {
		members, err := a.members(ctx, g)
		if err != nil {
			errs = append(errs, fmt.Errorf("user group %s: %w", g, err))
			continue
		}
		if slices.Contains(members, userID) {
			return true, fmt.Sprintf("<@%s> is in <!subteam^%s>, approvers for %s", userID, g, where), nil
		}
	}
	if len(errs) > 0 {
		return false, fmt.Sprintf("could not check the approver groups for %s, so the fix was not applied; try again shortly", where), errors.Join(errs...)
	}
	return false, fmt.Sprintf("only approvers for %s can apply fixes: %s", where, l.mentions()), nil
}

// AllowedTo is Allowed for any action: Re-check, Snooze and Dismiss pass
// for everyone when the open-actions option is on (the default).
func (a *Approvers) AllowedTo(ctx context.Context, action Action, namespace, userID string) (bool, string, error) {
	if !action.IsFix() && a.open {
		return true, "re-check, snooze and dismiss are open to everyone in the channel", nil
	}
	return a.Allowed(ctx, namespace, userID)
}

// members returns a group's members, from the cache when fresh. Concurrent
// lookups of one group share a single API call; failures are not cached.
func (a *Approvers) members(ctx context.Context, group string) ([]string, error) {
	if a.groups == nil {
		return nil, errors.New("no user-group resolver configured")
	}
	a.mu.Lock()
	e, ok := a.cache[group]
	if ok {
		select {
		case <-e.ready:
			if e.err == nil && a.now().Sub(e.at) < a.ttl {
				a.mu.Unlock()
				return e.members, nil
			}
			ok = false // stale or failed: refetch
		default: // in flight: wait for it below
		}
	}
	if !ok {
		e = &groupEntry{ready: make(chan struct{})}
		a.cache[group] = e
		a.mu.Unlock()
		members, err := a.groups.GroupMembers(ctx, group)
		a.mu.Lock()
		e.members, e.err, e.at = members, err, a.now()
		close(e.ready)
		if err != nil && a.cache[group] == e {
			delete(a.cache, group)
		}
		a.mu.Unlock()
		return members, err
	}
	a.mu.Unlock()
	select {
	case <-e.ready:
		return e.members, e.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
