package incident

import (
	"fmt"
	"time"
)

// The rules of the lifecycle: which change each state allows. Each
// function changes inc in place and reports whether it changed; an error
// says why the change is refused. The watcher applies them under its lock,
// so a check and its change are one step (two clicks cannot both start a
// fix).

// TransitionError is returned when an incident's state does not allow the
// change asked for (snoozing a resolved incident); test with errors.As.
type TransitionError struct {
	ID    string
	Op    string // dismiss, snooze, fix
	State State  // the incident's state
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("cannot %s incident %s: it is %s", e.Op, e.ID, e.State)
}

// FixInProgressError is returned by MarkFixing when someone's fix of the
// incident is already under way: the guard against a double click. By
// names who approved the fix under way.
type FixInProgressError struct {
	ID string
	By string
}

func (e *FixInProgressError) Error() string {
	if e.By == "" {
		return fmt.Sprintf("a fix of incident %s is already under way", e.ID)
	}
	return fmt.Sprintf("a fix of incident %s is already under way (approved by %s)", e.ID, e.By)
}

// Dismiss closes an incident without a fix; a resolved one cannot be.
func Dismiss(inc *Incident, by string) (bool, error) {
	switch inc.State {
	case StateDismissed:
		return false, nil
	case StateResolved:
		return false, &TransitionError{ID: inc.ID, Op: "dismiss", State: inc.State}
	}
	inc.State, inc.By, inc.SnoozedUntil = StateDismissed, by, time.Time{}
	return true, nil
}

// Snooze silences an open incident until until.
func Snooze(inc *Incident, until time.Time, by string) (bool, error) {
	if inc.State.Closed() {
		return false, &TransitionError{ID: inc.ID, Op: "snooze", State: inc.State}
	}
	inc.State, inc.By, inc.SnoozedUntil = StateSnoozed, by, until
	return true, nil
}

// MarkFixing records that by's fix is being applied. A second fix while
// one is under way is refused with *FixInProgressError; a closed incident
// cannot be fixed.
func MarkFixing(inc *Incident, by string) (bool, error) {
	switch inc.State {
	case StateFixing:
		return false, &FixInProgressError{ID: inc.ID, By: inc.By}
	case StateResolved, StateDismissed:
		return false, &TransitionError{ID: inc.ID, Op: "fix", State: inc.State}
	}
	inc.State, inc.By, inc.SnoozedUntil = StateFixing, by, time.Time{}
	return true, nil
}

// MarkFixingFor is MarkFixing with the approved fix recorded on the
// incident (persisted with it): the intent a restart resumes from.
func MarkFixingFor(inc *Incident, fix FixIntent) (bool, error) {
	changed, err := MarkFixing(inc, fix.By)
	if err != nil || !changed {
		return changed, err
	}
	inc.Fix = &fix
	return true, nil
}

// ClearFixing returns an incident from fixing to notified after a fix that
// was refused or did not finish, so it can be fixed again; any other state
// is left as it is.
func ClearFixing(inc *Incident) (bool, error) {
	if inc.State != StateFixing {
		return false, nil
	}
	inc.State, inc.By, inc.Fix = StateNotified, "", nil
	return true, nil
}
