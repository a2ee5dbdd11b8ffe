package slackemu_test

import "testing"

// TestUsersInfo: users.info, read by the real slack-go client, gives a
// member's profile e-mail (what PULLFIX_SLACK_RBAC_MAPPING's {email} maps),
// none when unset, and user_not_found for a stranger.
func TestUsersInfo(t *testing.T) {
	emu := newEmu(t)
	ctx := testCtx(t)
	emu.AddUser("U0ALICE01", "alice")
	emu.AddUser("U0BOB0001", "bob")
	emu.SetUserEmail("U0ALICE01", "alice@example.com")

	for _, tc := range []struct{ id, name, email string }{
		{"U0ALICE01", "alice", "alice@example.com"},
		{"U0BOB0001", "bob", ""},
	} {
		u, err := botAPI(emu).GetUserInfoContext(ctx, tc.id)
		if err != nil {
			t.Fatalf("%s: %v", tc.id, err)
		}
		if u.ID != tc.id || u.Name != tc.name || u.Profile.Email != tc.email {
			t.Errorf("users.info %s = id %q name %q email %q, want %q %q", tc.id, u.ID, u.Name, u.Profile.Email, tc.name, tc.email)
		}
	}
	_, err := botAPI(emu).GetUserInfoContext(ctx, "U0NOBODY1")
	if se := slackErr(t, err); se.Err != "user_not_found" {
		t.Errorf("unknown user: %q, want user_not_found", se.Err)
	}
}
