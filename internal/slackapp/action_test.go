package slackapp

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/slack-go/slack"
)

func TestActionValueRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		v    ActionValue
		want string // exact encoding, when it matters
	}{
		{name: "set image", v: ActionValue{Cluster: "prod-eu", IncidentID: "inc-7f3a9c", Action: ActionSetImage, Arg: "c1"}, want: "v1|prod-eu|inc-7f3a9c|set_image|c1"},
		{name: "rollback", v: ActionValue{Cluster: "prod-eu", IncidentID: "inc-1", Action: ActionRollback, Arg: "c2"}, want: "v1|prod-eu|inc-1|rollback|c2"},
		{name: "secret", v: ActionValue{Cluster: "prod-eu", IncidentID: "inc-1", Action: ActionAddSecret, Arg: "regcred.team-a"}, want: "v1|prod-eu|inc-1|add_secret|regcred.team-a"},
		{name: "recheck", v: ActionValue{Cluster: "prod-eu", IncidentID: "inc-1", Action: ActionRecheck}, want: "v1|prod-eu|inc-1|recheck|"},
		{name: "snooze", v: ActionValue{Cluster: "c", IncidentID: "i", Action: ActionSnooze}},
		{name: "dismiss", v: ActionValue{Cluster: "c", IncidentID: "i", Action: ActionDismiss}},
		{name: "pipe in cluster", v: ActionValue{Cluster: "prod|eu", IncidentID: "a|b", Action: ActionDismiss}, want: "v1|prod%7Ceu|a%7Cb|dismiss|"},
		{name: "unicode and spaces", v: ActionValue{Cluster: "prod (eu) ☁", IncidentID: "x/y%z", Action: ActionSnooze}},
		{name: "max lengths", v: ActionValue{Cluster: strings.Repeat("☁", maxValueCluster), IncidentID: strings.Repeat("|", maxValueIncident), Action: ActionAddSecret, Arg: strings.Repeat("a", 253)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.v.Validate(); err != nil {
				t.Fatal(err)
			}
			s := EncodeAction(tt.v)
			if tt.want != "" && s != tt.want {
				t.Errorf("EncodeAction = %q, want %q", s, tt.want)
			}
			if len(s) > MaxButtonValue {
				t.Errorf("encoded value is %d characters, Slack's limit is %d", len(s), MaxButtonValue)
			}
			got, err := DecodeAction(s)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.v {
				t.Errorf("round trip: %+v, want %+v", got, tt.v)
			}
			if _, err := DecodeClick(tt.v.Cluster, tt.v.Action.ActionID(), s); err != nil {
				t.Errorf("DecodeClick: %v", err)
			}
		})
	}
}

func TestDecodeActionRejects(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  error
	}{
		{"empty", "", ErrMalformedValue},
		{"other app's value", "click_me_123", ErrMalformedValue},
		{"future version", "v2|prod|inc|set_image|c1", ErrMalformedValue},
		{"too few fields", "v1|prod|inc|set_image", ErrMalformedValue},
		{"too many fields", "v1|prod|inc|set_image|c1|public.ecr.aws/evil:latest", ErrMalformedValue},
		{"image smuggled as candidate", "v1|prod|inc|set_image|evil.io%2Fx:1", ErrMalformedValue},
		{"upper-case candidate", "v1|prod|inc|set_image|C1", ErrMalformedValue},
		{"unknown action", "v1|prod|inc|delete_namespace|", ErrUnknownAction},
		{"unknown action is malformed too", "v1|prod|inc|delete_namespace|", ErrMalformedValue},
		{"fix without candidate", "v1|prod|inc|set_image|", ErrMalformedValue},
		{"recheck with argument", "v1|prod|inc|recheck|c1", ErrMalformedValue},
		{"empty cluster", "v1||inc|recheck|", ErrMalformedValue},
		{"empty incident", "v1|prod||recheck|", ErrMalformedValue},
		{"bad escape", "v1|prod%zz|inc|recheck|", ErrMalformedValue},
		{"non-canonical escape", "v1|pro%64|inc|recheck|", ErrMalformedValue},
		{"invalid utf-8", "v1|\xff|inc|recheck|", ErrMalformedValue},
		{"too long", "v1|" + strings.Repeat("a", 2100) + "|inc|recheck|", ErrMalformedValue},
		{"cluster too long", "v1|" + strings.Repeat("a", maxValueCluster+1) + "|inc|recheck|", ErrMalformedValue},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := DecodeAction(tt.value)
			if !errors.Is(err, tt.want) {
				t.Fatalf("DecodeAction(%q) = %+v, %v; want %v", tt.value, v, err, tt.want)
			}
			var ve *ValueError
			if !errors.As(err, &ve) || ve.Reason == "" {
				t.Errorf("error %v is not a *ValueError with a reason", err)
			}
			if errors.Is(err, ErrOtherCluster) {
				t.Errorf("a malformed value must not read as another cluster's")
			}
		})
	}
}

// TestDecodeClickRefusesOtherClusterAndMismatch: a well-formed value from
// another cluster's bot, or one pasted under another action_id, is refused
// with its own error, not acted on.
func TestDecodeClickRefusesOtherClusterAndMismatch(t *testing.T) {
	other := EncodeAction(ActionValue{Cluster: "prod-us", IncidentID: "inc-1", Action: ActionSetImage, Arg: "c1"})
	_, err := DecodeClick("prod-eu", ActionIDSetImage, other)
	if !errors.Is(err, ErrOtherCluster) || errors.Is(err, ErrMalformedValue) {
		t.Errorf("other cluster: %v", err)
	}
	if err == nil || !strings.Contains(err.Error(), `"prod-us"`) {
		t.Errorf("error %v does not name the cluster", err)
	}
	mine := EncodeAction(ActionValue{Cluster: "prod-eu", IncidentID: "inc-1", Action: ActionDismiss})
	if _, err := DecodeClick("prod-eu", ActionIDSetImage, mine); !errors.Is(err, ErrActionMismatch) {
		t.Errorf("dismiss value under set-image action_id: %v", err)
	}
	if _, err := DecodeClick("prod-eu", ActionIDDismiss, mine); err != nil {
		t.Errorf("matching click refused: %v", err)
	}
}

func TestActionIDs(t *testing.T) {
	seen := map[string]bool{}
	for _, id := range ActionIDs() {
		a, ok := ActionForID(id)
		if !ok || a.ActionID() != id {
			t.Errorf("ActionForID(%q) = %q, %v", id, a, ok)
		}
		if seen[id] || !strings.HasPrefix(id, "pullfix_") || len(id) > 255 {
			t.Errorf("action_id %q: duplicate or malformed", id)
		}
		seen[id] = true
	}
	if _, ok := ActionForID("approve"); ok {
		t.Errorf("foreign action_id accepted")
	}
	for a, fix := range map[Action]bool{ActionSetImage: true, ActionRollback: true, ActionAddSecret: true, ActionRecheck: false, ActionSnooze: false, ActionDismiss: false} {
		if a.IsFix() != fix {
			t.Errorf("%s.IsFix() = %v", a, !fix)
		}
	}
}

// TestForeignFixtureValuesRefused decodes every button value in the shared
// Slack payload fixtures (other apps' buttons): each is refused cleanly.
func TestForeignFixtureValuesRefused(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "..", "shared", "data", "slack-payloads", "block-actions", "*.json"))
	sock, _ := filepath.Glob(filepath.Join("..", "..", "..", "shared", "data", "slack-payloads", "socket-mode", "interactive_block_actions*.json"))
	files = append(files, sock...)
	if len(files) == 0 {
		t.Fatal("no block_actions fixtures under ../shared/data/slack-payloads")
	}
	n := 0
	for _, f := range fixtureValues(t, files) {
		n++
		if _, err := DecodeClick("prod-eu", f.actionID, f.value); !errors.Is(err, ErrMalformedValue) {
			t.Errorf("%s: value %q: %v, want ErrMalformedValue", f.file, f.value, err)
		}
	}
	if n == 0 {
		t.Error("fixtures held no button values")
	}
}

type fixtureValue struct{ file, actionID, value string }

// fixtureValues parses block_actions payloads with slack-go (as the
// connection side does) and returns their actions' values.
func fixtureValues(t testing.TB, files []string) []fixtureValue {
	var out []fixtureValue
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var env struct {
			Payload json.RawMessage `json:"payload"`
		}
		if json.Unmarshal(raw, &env) == nil && len(env.Payload) > 0 {
			raw = env.Payload
		}
		var cb slack.InteractionCallback
		if err := json.Unmarshal(raw, &cb); err != nil {
			continue // not a block_actions payload slack-go can read
		}
		for _, a := range cb.ActionCallback.BlockActions {
			out = append(out, fixtureValue{filepath.Base(f), a.ActionID, a.Value})
		}
	}
	return out
}
