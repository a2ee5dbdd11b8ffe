package watch

import "time"

// GroupState is what a storm group's message shows, from its members'
// states: open while any member is open, notified or fixing; otherwise
// snoozed (until a snoozed member wakes) while any is snoozed; otherwise
// dismissed (by whom) when a member was dismissed; otherwise resolved.
type GroupState struct {
	State State // StateOpen, StateSnoozed, StateDismissed or StateResolved
	Until time.Time
	By    string
}

// Summary is the group's state for its message.
func (g Group) Summary() GroupState {
	out := GroupState{State: StateResolved}
	for _, m := range g.Members {
		switch m.State {
		case StateOpen, StateNotified, StateFixing:
			out.State = StateOpen
		case StateSnoozed:
			if out.State != StateOpen {
				out.State, out.Until = StateSnoozed, m.SnoozedUntil
			}
		case StateDismissed:
			if out.State == StateResolved {
				out.State, out.By = StateDismissed, m.By
			}
		}
	}
	return out
}
