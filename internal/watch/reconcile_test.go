package watch

import (
	"encoding/json"
	"log/slog"
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

// TestUnpostedIntentAgesOut: an open record — a post intent whose
// incident's pods went away before the post was confirmed — is dropped
// after the TTL like a closed one, unless its incident is active.
func TestUnpostedIntentAgesOut(t *testing.T) {
	s := newStateStore(nil, "ns", "state", slog.Default())
	now := time.Now()
	old := testRecord(1, StateOpen, now.Add(-2*DefaultStateTTL))
	old.Posting = "p1"
	active := testRecord(2, StateOpen, now.Add(-2*DefaultStateTTL))
	recent := testRecord(3, StateOpen, now.Add(-time.Minute))
	for _, r := range []record{old, active, recent} {
		s.put(r)
	}
	s.mu.Lock()
	s.pruneLocked(map[string]bool{active.ID: true})
	s.mu.Unlock()
	if _, ok := s.get(old.ID); ok {
		t.Error("an old open record with no active incident was kept")
	}
	for _, r := range []record{active, recent} {
		if _, ok := s.get(r.ID); !ok {
			t.Errorf("record %s dropped", r.Key.Name)
		}
	}
}
