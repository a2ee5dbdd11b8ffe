package incident

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/watch/workload"
)

// TestTransitions: the lifecycle's rules, state by state.
func TestTransitions(t *testing.T) {
	until := time.Now().Add(time.Hour)
	ops := map[string]func(*Incident) (bool, error){
		"dismiss": func(i *Incident) (bool, error) { return Dismiss(i, "U1") },
		"snooze":  func(i *Incident) (bool, error) { return Snooze(i, until, "U1") },
		"fix":     func(i *Incident) (bool, error) { return MarkFixing(i, "U1") },
		"clear":   ClearFixing,
	}
	type want struct {
		changed bool
		to      State
		err     string // "", "transition", "in progress"
	}
	for _, tc := range []struct {
		from State
		op   string
		want want
	}{
		{StateNotified, "dismiss", want{true, StateDismissed, ""}},
		{StateDismissed, "dismiss", want{false, StateDismissed, ""}},
		{StateResolved, "dismiss", want{false, StateResolved, "transition"}},
		{StateNotified, "snooze", want{true, StateSnoozed, ""}},
		{StateResolved, "snooze", want{false, StateResolved, "transition"}},
		{StateDismissed, "snooze", want{false, StateDismissed, "transition"}},
		{StateNotified, "fix", want{true, StateFixing, ""}},
		{StateSnoozed, "fix", want{true, StateFixing, ""}},
		{StateFixing, "fix", want{false, StateFixing, "in progress"}},
		{StateDismissed, "fix", want{false, StateDismissed, "transition"}},
		{StateResolved, "fix", want{false, StateResolved, "transition"}},
		{StateFixing, "clear", want{true, StateNotified, ""}},
		{StateNotified, "clear", want{false, StateNotified, ""}},
	} {
		inc := Incident{ID: "i1", State: tc.from, By: "U0"}
		changed, err := ops[tc.op](&inc)
		var te *TransitionError
		var busy *FixInProgressError
		gotErr := ""
		switch {
		case errors.As(err, &te):
			gotErr = "transition"
		case errors.As(err, &busy):
			gotErr = "in progress"
			if busy.By != "U0" {
				t.Errorf("%s of %s: FixInProgressError.By = %q, want the first approver U0", tc.op, tc.from, busy.By)
			}
		case err != nil:
			gotErr = err.Error()
		}
		if changed != tc.want.changed || inc.State != tc.want.to || gotErr != tc.want.err {
			t.Errorf("%s of %s: changed %v → %s err %q; want %v → %s err %q", tc.op, tc.from, changed, inc.State, gotErr, tc.want.changed, tc.want.to, tc.want.err)
		}
	}
}

// TestRecordKeepsProvenSecrets: the proven pull secrets survive the state
// ConfigMap (a restart, a new leader), with the cause and candidates.
func TestRecordKeepsProvenSecrets(t *testing.T) {
	k := Key{Cluster: "c", Namespace: "ns", Workload: workload.Workload{Kind: "Deployment", Name: "ui"}, Container: "ui", Image: "registry.example.com/ui:1"}
	inc := Incident{ID: ID(k), Key: k, State: StateNotified, ProvenSecrets: []string{"regcred"},
		Diagnosis: &diagnose.Diagnosis{Cause: diagnose.Unauthorized, Candidates: []diagnose.Candidate{{ID: "c1", Image: "registry.example.com/ui:2"}}}}
	b, err := json.Marshal(RecordOf(inc))
	if err != nil {
		t.Fatal(err)
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	got := r.Incident()
	if !slices.Equal(got.ProvenSecrets, []string{"regcred"}) || got.Diagnosis == nil || got.Diagnosis.Cause != diagnose.Unauthorized ||
		len(got.Diagnosis.Candidates) != 1 || got.Diagnosis.Summary == "" {
		t.Errorf("round trip through %s: %+v", b, got)
	}
}
