package fix

import (
	"errors"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// RefusedError is a fix refused before anything was read or sent (a
// candidate the diagnosis did not verify, a secret not proven to work).
type RefusedError struct{ Reason string }

func (e *RefusedError) Error() string { return e.Reason }

// IsRefusal reports whether err is a refusal: pullfix checked and wrote
// nothing on purpose — the image changed since the diagnosis or a
// concurrent edit won (ErrConflict, *StaleError), the dry run failed, the
// workload cannot be patched or is gone, the reference is invalid, the
// secret is already there, a write guard refused it (*WriteRefusedError:
// GitOps ownership, the approver's RBAC), or a *RefusedError. Its words are for the
// person who clicked; any other error is a failure.
func IsRefusal(err error) bool {
	var (
		refused      *RefusedError
		stale        *StaleError
		dry          *DryRunError
		notPatchable *NotPatchableError
		ref          *diagnose.ReferenceError
		guard        *WriteRefusedError
	)
	return errors.As(err, &refused) || errors.As(err, &stale) || errors.As(err, &dry) || errors.As(err, &notPatchable) ||
		errors.As(err, &ref) || errors.Is(err, ErrConflict) || errors.Is(err, ErrPullSecretPresent) || errors.Is(err, ErrWorkloadNotFound) ||
		errors.As(err, &guard)
}

// Outcome names a patch's outcome for pullfix_patches_total: applied,
// stale (the compare-and-swap lost), refused, or error.
func Outcome(err error) string {
	switch {
	case err == nil:
		return "applied"
	case errors.Is(err, ErrConflict):
		return "stale"
	case IsRefusal(err):
		return "refused"
	}
	return "error"
}
