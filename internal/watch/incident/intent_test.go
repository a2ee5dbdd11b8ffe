package incident

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/pullfix/pullfix/internal/watch/workload"
)

func intentRecord(i int, state State, changed time.Time) Record {
	k := Key{Cluster: "c", Namespace: "ns", Workload: workload.Workload{Kind: "Deployment", Name: fmt.Sprintf("app-%04d", i)}, Container: "app",
		Image: fmt.Sprintf("registry.example.com/team/app-%04d:1.0", i)}
	return Record{ID: ID(k), Key: k, State: state, Opened: changed, Changed: changed}
}

// TestIntentsSurviveTheStateRecord: the post id and the approved fix —
// the intents a restart reconciles — are written into the state record and
// read back from it, and a record without them (written by an earlier
// version) reads back with none.
func TestIntentsSurviveTheStateRecord(t *testing.T) {
	r := intentRecord(1, StateFixing, time.Now().Truncate(time.Second))
	inc := r.Incident()
	inc.Posting = "p0st1d"
	inc.Fix = &FixIntent{Action: "set_image", Arg: "c1", Target: "registry.example.com/team/app-0001:1.1", By: "U1", At: time.Now().Truncate(time.Second).UTC()}
	b, err := json.Marshal(RecordOf(inc))
	if err != nil {
		t.Fatal(err)
	}
	var back Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	got := back.Incident()
	if got.Posting != inc.Posting || got.Fix == nil || *got.Fix != *inc.Fix {
		t.Errorf("read back posting %q fix %+v, want %q %+v", got.Posting, got.Fix, inc.Posting, inc.Fix)
	}
	old, _ := json.Marshal(intentRecord(2, StateNotified, time.Now()))
	var o Record
	if err := json.Unmarshal(old, &o); err != nil {
		t.Fatal(err)
	}
	if inc := o.Incident(); inc.Posting != "" || inc.Fix != nil {
		t.Errorf("an older record reads back with intents: %q %+v", inc.Posting, inc.Fix)
	}
	if !(FixIntent{Action: "add_secret"}).AddsSecret() || (FixIntent{Action: "set_image"}).AddsSecret() {
		t.Error("AddsSecret")
	}
}

// TestFixIntentFollowsTheFixingMark: MarkFixingFor records the approved
// fix with the fixing mark, a second click neither starts a fix nor
// replaces the recorded one, and ClearFixing forgets it.
func TestFixIntentFollowsTheFixingMark(t *testing.T) {
	inc := intentRecord(1, StateNotified, time.Now()).Incident()
	first := FixIntent{Action: "set_image", Arg: "c1", Target: "img:1.1", By: "U1"}
	if changed, err := MarkFixingFor(&inc, first); !changed || err != nil {
		t.Fatalf("MarkFixingFor = %v, %v", changed, err)
	}
	if inc.State != StateFixing || inc.By != "U1" || inc.Fix == nil || *inc.Fix != first {
		t.Fatalf("after MarkFixingFor: %s by %q fix %+v", inc.State, inc.By, inc.Fix)
	}
	if changed, err := MarkFixingFor(&inc, FixIntent{Action: "set_image", Arg: "c2", Target: "img:2", By: "U2"}); changed || err == nil {
		t.Errorf("second click: changed %v err %v, want refused", changed, err)
	}
	if *inc.Fix != first {
		t.Errorf("a refused click replaced the recorded fix: %+v", inc.Fix)
	}
	if changed, err := ClearFixing(&inc); !changed || err != nil || inc.Fix != nil || inc.State != StateNotified {
		t.Errorf("ClearFixing = %v, %v; state %s fix %+v", changed, err, inc.State, inc.Fix)
	}
}

// TestUnpostedIntentAgesOut: an open record — a post intent whose
// incident's pods went away before the post was confirmed — is dropped
// after the TTL like a closed one, unless its incident is active.
func TestUnpostedIntentAgesOut(t *testing.T) {
	s := NewStore(nil, "ns", "state", slog.Default())
	now := time.Now()
	old := intentRecord(1, StateOpen, now.Add(-2*DefaultStateTTL))
	old.Posting = "p1"
	active := intentRecord(2, StateOpen, now.Add(-2*DefaultStateTTL))
	recent := intentRecord(3, StateOpen, now.Add(-time.Minute))
	for _, r := range []Record{old, active, recent} {
		s.Put(r)
	}
	s.mu.Lock()
	s.pruneLocked(map[string]bool{active.ID: true})
	s.mu.Unlock()
	if _, ok := s.Get(old.ID); ok {
		t.Error("an old open record with no active incident was kept")
	}
	for _, r := range []Record{active, recent} {
		if _, ok := s.Get(r.ID); !ok {
			t.Errorf("record %s dropped", r.Key.Name)
		}
	}
}
