package approval

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestParse: the mapping's grammar, and the entries it refuses.
func TestParse(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		wantErr string // "" parses
	}{
		{"", ""},
		{"U0ALICE01=alice", ""},
		{"U0ALICE01=alice@example.com|team-a|sre, W0BOB0001=bob ,*={email}|developers", ""},
		{"*=oidc:{email}", ""},
		{"U0ALICE01", "want SLACK_USER=K8S_USER"},
		{"U0ALICE01=", "want SLACK_USER=K8S_USER"},
		{"U0ALICE01=|team-a", "names no Kubernetes user"},
		{"@alice=alice", "not a Slack user id"},
		{"S0GROUP01=alice", "not a Slack user id"},
		{"U0ALICE01=system:serviceaccount:kube-system:default", "system identity"},
		{"U0ALICE01=a,U0ALICE01=b", "twice"},
		{"*=a,*=b", "two \"*\""},
		{"U0ALICE01={email}", "belongs in the \"*\" entry"},
		{" , ", "no entries"},
	} {
		m, err := Parse(tc.spec)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("Parse(%q): %v", tc.spec, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("Parse(%q) = %v, want an error saying %q", tc.spec, err, tc.wantErr)
		case tc.spec == "" && m != nil:
			t.Errorf("Parse(\"\") = %+v, want no mapping", m)
		}
	}
}

// TestIdentity: the table first, then "*" by e-mail; a user with no entry,
// no e-mail, or a failed lookup is not mapped (the click is refused).
func TestIdentity(t *testing.T) {
	m, err := Parse("U0ALICE01=alice@example.com|team-a,*=oidc:{email}|developers")
	if err != nil {
		t.Fatal(err)
	}
	emails := map[string]string{"U0BOB0001": "bob@example.com", "U0NOMAIL1": ""}
	lookup := func(_ context.Context, id string) (string, error) {
		e, ok := emails[id]
		if !ok {
			return "", errors.New("user_not_found")
		}
		return e, nil
	}
	for _, tc := range []struct {
		slack, user string
		groups      []string
		ok          bool
	}{
		{"U0ALICE01", "alice@example.com", []string{"team-a"}, true},
		{"U0BOB0001", "oidc:bob@example.com", []string{"developers"}, true},
		{"U0NOMAIL1", "", nil, false},
		{"U0GHOST01", "", nil, false},
	} {
		id, err := m.Identity(context.Background(), tc.slack, lookup)
		if tc.ok != (err == nil) || (tc.ok && (id.User != tc.user || !slices.Equal(id.Groups, tc.groups) || id.SlackUser != tc.slack)) {
			t.Errorf("%s: %+v, %v; want %q %q ok=%v", tc.slack, id, err, tc.user, tc.groups, tc.ok)
		}
		if !tc.ok && !errors.Is(err, ErrNotMapped) {
			t.Errorf("%s: %v is not ErrNotMapped", tc.slack, err)
		}
	}
	table, _ := Parse("U0ALICE01=alice")
	if _, err := table.Identity(context.Background(), "U0BOB0001", lookup); !errors.Is(err, ErrNotMapped) {
		t.Errorf("a user outside a table-only mapping: %v", err)
	}
	id := Identity{User: "alice", Groups: []string{"a", "b"}}
	if got := id.String(); got != `kubernetes user "alice" (groups a, b)` {
		t.Errorf("String() = %q", got)
	}
	if _, err := WorkloadWrite("Job", "ns", "j"); err == nil {
		t.Error("WorkloadWrite accepted a Job, which pullfix never patches")
	}
	w, _ := WorkloadWrite("CronJob", "ns", "nightly")
	if w.String() != `patch cronjobs.batch "nightly" in namespace "ns"` {
		t.Errorf("WorkloadWrite(CronJob) = %s", w)
	}
}
