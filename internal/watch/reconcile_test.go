package watch

import (
	"encoding/json"
	"testing"
	"time"
)

// TestIntentsSurviveTheStateRecord: the post id and the approved fix —
// the intents a restart reconciles — are written into the state record and
// read back from it, and a record without them (written by an earlier
// version) reads back with none.
func TestIntentsSurviveTheStateRecord(t *testing.T) {
	r := testRecord(1, StateFixing, time.Now().Truncate(time.Second))
	inc := r.incident()
	inc.Posting = "p0st1d"
	inc.Fix = &FixIntent{Action: "set_image", Arg: "c1", Target: "registry.example.com/team/app-0001:1.1", By: "U1", At: time.Now().Truncate(time.Second).UTC()}
	b, err := json.Marshal(recordOf(inc))
	if err != nil {
		t.Fatal(err)
	}
	var back record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	got := back.incident()
	if got.Posting != inc.Posting || got.Fix == nil || *got.Fix != *inc.Fix {
		t.Errorf("read back posting %q fix %+v, want %q %+v", got.Posting, got.Fix, inc.Posting, inc.Fix)
	}
	old, _ := json.Marshal(testRecord(2, StateNotified, time.Now()))
	var o record
	if err := json.Unmarshal(old, &o); err != nil {
		t.Fatal(err)
	}
	if inc := o.incident(); inc.Posting != "" || inc.Fix != nil {
		t.Errorf("an older record reads back with intents: %q %+v", inc.Posting, inc.Fix)
	}
	if !(FixIntent{Action: "add_secret"}).AddsSecret() || (FixIntent{Action: "set_image"}).AddsSecret() {
		t.Error("AddsSecret")
	}
}
