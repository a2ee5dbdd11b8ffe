package watch

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/watch/incident"
)

func testRecord(i int, state State, changed time.Time) incident.Record {
	k := Key{Cluster: "c", Namespace: "ns", Workload: Workload{Kind: "Deployment", Name: fmt.Sprintf("app-%04d", i)}, Container: "app",
		Image: fmt.Sprintf("registry.example.com/team/app-%04d:1.0", i)}
	return incident.Record{
		ID: IncidentID(k), Key: k, State: state, Ref: fmt.Sprintf("C0123/%d.000100", 1700000000+i), Opened: changed, Changed: changed,
		Cause: diagnose.TagNotFound, Candidates: []diagnose.Candidate{
			{ID: "c1", Image: k.Image[:len(k.Image)-3] + "1.1", Kind: diagnose.CandidateTag, Digest: "sha256:" + strings.Repeat("ab", 32), Reason: "nearest existing tag"},
		},
	}
}

// TestStateConfigMapBounded: thousands of incidents written to the real
// API server leave a ConfigMap under its byte and entry caps; old closed
// incidents go first, open ones and active dismissed ones stay; a write
// that conflicts with another writer keeps both; an entry that is not a
// record is kept verbatim.
func TestStateConfigMapBounded(t *testing.T) {
	e := newCluster(t)
	ctx := t.Context()
	s := incident.NewStore(e.cs, e.ns, "bounded", slog.Default())
	s.SetLimits(24*time.Hour, 400, 200<<10)
	_, maxEntries, maxBytes := s.Limits()
	if err := s.Load(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var open, activeDismissed []incident.Record
	for i := range 3000 {
		var r incident.Record
		switch {
		case i%10 == 0: // open, recent
			r = testRecord(i, StateNotified, now.Add(-time.Duration(i)*time.Second))
			open = append(open, r)
		case i%10 == 1: // resolved long ago: past the TTL
			r = testRecord(i, StateResolved, now.Add(-48*time.Hour))
		default: // resolved or dismissed within the TTL, oldest at high i
			st := StateResolved
			if i%2 == 0 {
				st = StateDismissed
			}
			r = testRecord(i, st, now.Add(-time.Duration(i)*time.Minute))
		}
		s.Put(r)
	}
	// A dismissed incident whose pods still fail, changed long ago: kept.
	old := testRecord(9999, StateDismissed, now.Add(-30*24*time.Hour))
	s.Put(old)
	activeDismissed = append(activeDismissed, old)
	if err := s.Flush(ctx, map[string]bool{old.ID: true}); err != nil {
		t.Fatal(err)
	}

	cm, err := e.cs.CoreV1().ConfigMaps(e.ns).Get(ctx, "bounded", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	size := 0
	for k, v := range cm.Data {
		size += len(k) + len(v)
	}
	t.Logf("3001 records written: %d kept, %d bytes (cap %d entries, %d bytes)", len(cm.Data), size, maxEntries, maxBytes)
	if len(cm.Data) > maxEntries || size > maxBytes {
		t.Errorf("ConfigMap holds %d entries, %d bytes: over the caps", len(cm.Data), size)
	}
	for _, r := range append(open, activeDismissed...) {
		if _, ok := cm.Data[r.ID]; !ok {
			t.Errorf("%s (%s) pruned; only closed, inactive ones may go while they suffice", r.ID, r.State)
			break
		}
	}
	var newestClosed, oldestKept time.Time
	for i := range 3000 {
		r := testRecord(i, StateResolved, time.Time{})
		if i%10 == 1 {
			if _, ok := cm.Data[r.ID]; ok {
				t.Errorf("incident.Record past the TTL kept: %s", r.ID)
			}
		}
	}
	for _, v := range cm.Data {
		var r incident.Record
		if err := jsonUnmarshal(v, &r); err != nil {
			t.Fatalf("stored entry does not parse: %v", err)
		}
		if r.State.Closed() && r.ID != old.ID && (oldestKept.IsZero() || r.Changed.Before(oldestKept)) {
			oldestKept = r.Changed
		}
	}
	for i := range 3000 {
		if i%10 < 2 {
			continue
		}
		r := testRecord(i, StateResolved, now.Add(-time.Duration(i)*time.Minute))
		if _, ok := cm.Data[r.ID]; !ok && r.Changed.After(newestClosed) {
			newestClosed = r.Changed
		}
	}
	if !newestClosed.IsZero() && newestClosed.After(oldestKept) {
		t.Errorf("pruned a closed incident.Record changed %s while keeping one changed %s: oldest first", newestClosed, oldestKept)
	}

	// Another writer (an old leader) adds a incident.Record; a person adds a note.
	foreign := testRecord(5000, StateNotified, now)
	cm.Data[foreign.ID] = mustJSON(t, foreign)
	cm.Data["note"] = "do not delete: ticket OPS-1"
	if _, err := e.cs.CoreV1().ConfigMaps(e.ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	mine := testRecord(6000, StateNotified, now)
	s.Put(mine)
	if err := s.Flush(ctx, nil); err != nil {
		t.Fatalf("write after a concurrent change: %v", err)
	}
	cm, err = e.cs.CoreV1().ConfigMaps(e.ns).Get(ctx, "bounded", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{foreign.ID, mine.ID} {
		if _, ok := cm.Data[id]; !ok {
			t.Errorf("incident.Record %s lost in the conflicting write", id)
		}
	}
	if cm.Data["note"] != "do not delete: ticket OPS-1" {
		t.Errorf("entry that is not a incident.Record changed: %q", cm.Data["note"])
	}

	// A fresh store (a new leader) reads it all back.
	s2 := incident.NewStore(e.cs, e.ns, "bounded", slog.Default())
	if err := s2.Load(ctx); err != nil {
		t.Fatal(err)
	}
	got, ok := s2.Get(mine.ID)
	if !ok || got.Ref != mine.Ref || len(got.Candidates) != 1 || got.Candidates[0].Image != mine.Candidates[0].Image {
		t.Errorf("reloaded %+v, want %+v", got, mine)
	}
	if inc := got.Incident(); inc.Diagnosis == nil || inc.Diagnosis.Summary == "" || inc.Diagnosis.Candidates[0].ID != "c1" {
		t.Errorf("incident from incident.Record: %+v", inc.Diagnosis)
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
