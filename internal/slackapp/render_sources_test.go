package slackapp

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// TestRenderEphemeralContainerHasNoFixButton: an ephemeral container's
// image cannot be changed, so its message shows the verified candidates
// without "Set image", "Roll back" or "Add imagePullSecret" buttons (the
// bot would refuse the click); Re-check, Snooze and Dismiss stay. The same
// incident on a regular container keeps its buttons.
func TestRenderEphemeralContainerHasNoFixButton(t *testing.T) {
	in := fixtureInput(t, diagnose.RepoNotFound)
	if len(in.Diagnosis.Candidates) == 0 {
		t.Fatal("the fixture has no candidate to render")
	}
	in.ProvenSecrets = []string{"regcred"}
	regular := Render(in)

	in.Kind, in.Name, in.Container = "Pod", "ui-new-7d4b9c-x2x9q", "ephemeral:debugger"
	eph := Render(in)
	if err := eph.Validate(); err != nil {
		t.Fatal(err)
	}
	js := func(m Message) string {
		b, err := json.Marshal(m.Blocks)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, id := range []string{ActionIDSetImage, ActionIDRollback, ActionSetImage.ActionID(), ActionAddSecret.ActionID()} {
		if strings.Contains(js(eph), `"action_id":"`+id+`"`) {
			t.Errorf("the ephemeral container's message has a %s button", id)
		}
	}
	if !strings.Contains(js(regular), `"action_id":"`+ActionSetImage.ActionID()+`"`) && !strings.Contains(js(regular), `"action_id":"`+ActionIDRollback+`"`) {
		t.Error("the regular container's message lost its fix button")
	}
	for _, want := range []string{in.Diagnosis.Candidates[0].Image, "ephemeral:debugger", "no fix button", ActionRecheck.ActionID(), ActionDismiss.ActionID()} {
		if !strings.Contains(js(eph), want) {
			t.Errorf("the ephemeral container's message does not show %q", want)
		}
	}
}
