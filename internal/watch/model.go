package watch

import (
	"github.com/pullfix/pullfix/internal/watch/incident"
	"github.com/pullfix/pullfix/internal/watch/workload"
)

// The watcher speaks in the incident model of package incident and the
// workload names of package workload; these aliases keep its API (and its
// callers) in one vocabulary. The definitions, and the rules about them,
// live in those packages.
type (
	// Key identifies an incident; see incident.Key.
	Key = incident.Key
	// Incident is one incident; see incident.Incident.
	Incident = incident.Incident
	// State is an incident's lifecycle state; see incident.State.
	State = incident.State
	// Workload names a workload; see workload.Workload.
	Workload = workload.Workload
)

// Lifecycle states (see package incident).
const (
	StateOpen      = incident.StateOpen
	StateNotified  = incident.StateNotified
	StateFixing    = incident.StateFixing
	StateResolved  = incident.StateResolved
	StateDismissed = incident.StateDismissed
	StateSnoozed   = incident.StateSnoozed
)

// IncidentID is the incident's short stable ID; see incident.ID.
func IncidentID(k Key) string { return incident.ID(k) }

// ErrWorkloadNotFound: the named workload does not exist.
var ErrWorkloadNotFound = workload.ErrNotFound
