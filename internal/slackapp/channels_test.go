package slackapp

import (
	"maps"
	"testing"
)

// TestParseChannels: PULLFIX_SLACK_CHANNELS, a channel per namespace;
// blanks are ignored, a pair without both halves is an error naming it.
func TestParseChannels(t *testing.T) {
	got, err := ParseChannels(" team-a=C0123, ,team-b = #team-b ")
	if want := map[string]string{"team-a": "C0123", "team-b": "#team-b"}; err != nil || !maps.Equal(got, want) {
		t.Errorf("ParseChannels = %v, %v; want %v", got, err, want)
	}
	for _, bad := range []string{"team-a", "=C1", "team-a="} {
		if _, err := ParseChannels(bad); err == nil {
			t.Errorf("ParseChannels(%q) accepted", bad)
		}
	}
}
