package fix

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestOutcome: the label each patch outcome gets in pullfix_patches_total
// (was cmd/bot's TestPatchResult).
func TestOutcome(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{nil, "applied"},
		{&StaleError{Container: "ui", Want: "a", Got: "b"}, "stale"},
		{ErrConflict, "stale"},
		{&DryRunError{Err: errors.New("denied by policy")}, "refused"},
		{ErrPullSecretPresent, "refused"},
		{&RefusedError{Reason: "candidate \"x\" is not one the diagnosis verified"}, "refused"},
		{fmt.Errorf("wrapped: %w", ErrWorkloadNotFound), "refused"},
		{&WriteRefusedError{Namespace: "shop", Workload: Workload{Kind: "Deployment", Name: "ui"}, Err: errors.New("managed by Argo CD")}, "refused"},
		{errors.New("connection refused"), "error"},
	}
	for _, c := range cases {
		if got := Outcome(c.err); got != c.want {
			t.Errorf("Outcome(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}

// TestPatcherOptionsValidate: an unusable option value is an error from
// NewPatcher naming it, not a silent default.
func TestPatcherOptionsValidate(t *testing.T) {
	for name, opt := range map[string]PatcherOption{
		"WithRolloutDeadline":    WithRolloutDeadline(0),
		"WithPatcherLogger":      WithPatcherLogger(nil),
		"WithFieldManager":       WithFieldManager(""),
		"WithReportingComponent": WithReportingComponent(""),
		"WithReportingInstance":  WithReportingInstance(""),
	} {
		if p, err := NewPatcher(nil, opt); err == nil || p != nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: NewPatcher = %v, %v; want an error naming it", name, p, err)
		}
	}
	p, err := NewPatcher(nil)
	if err != nil || p.deadline != DefaultRolloutDeadline || p.fieldManager != DefaultFieldManager || p.component != DefaultReportingComponent {
		t.Errorf("defaults: %+v, %v", p, err)
	}
}
