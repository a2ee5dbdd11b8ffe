package watch

import "context"

// ClearFixing returns an incident from fixing to notified after a fix that
// was refused or did not finish, so it can be fixed again. An incident in
// any other state is left as it is.
func (w *Watcher) ClearFixing(ctx context.Context, id string) error {
	return w.change(ctx, id, "clear-fix", func(inc *Incident) (bool, error) {
		if inc.State != StateFixing {
			return false, nil
		}
		inc.State, inc.By, inc.Fix = StateNotified, "", nil
		return true, nil
	})
}
