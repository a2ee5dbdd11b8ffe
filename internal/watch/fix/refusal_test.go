package fix

import (
	"errors"
	"fmt"
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
		{errors.New("connection refused"), "error"},
	}
	for _, c := range cases {
		if got := Outcome(c.err); got != c.want {
			t.Errorf("Outcome(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}
