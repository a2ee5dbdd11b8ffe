// Package incident is pullfix's incident model: the key of one broken
// (workload, container, image), the lifecycle states and the rules of
// moving between them, and the state ConfigMap that keeps incidents — their
// messages, verified candidates and proven pull secrets — across restarts
// and leader changes.
package incident

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/watch/workload"
)

// Key identifies an incident: one broken (workload, container, image) in a
// namespace of a cluster. Many pods share one key, so they share one message.
type Key struct {
	Cluster           string `json:"cluster"`
	Namespace         string `json:"namespace"`
	workload.Workload `json:"workload"`
	Container         string `json:"container"`
	Image             string `json:"image"`
}

// String is the key's stable text form, used as the workqueue item and as the
// basis of the incident ID.
func (k Key) String() string {
	return fmt.Sprintf("%s/%s/%s/%s/%s/%s", k.Cluster, k.Namespace, k.Kind, k.Name, k.Container, k.Image)
}

// State is an incident's place in its lifecycle:
// open → notified → fixing → resolved | dismissed | snoozed.
type State string

// Lifecycle states.
const (
	StateOpen      State = "open"
	StateNotified  State = "notified"
	StateFixing    State = "fixing"
	StateResolved  State = "resolved"
	StateDismissed State = "dismissed"
	StateSnoozed   State = "snoozed"
)

// Closed reports whether the state ends the incident's conversation:
// nothing more is posted about it.
func (s State) Closed() bool { return s == StateResolved || s == StateDismissed }

// Incident is the watcher's record of one Key. Pods is the set of failing
// pods (namespace-local names) seen at the last sync.
type Incident struct {
	// ID is ID(Key): short, stable across restarts and replicas,
	// and all a Slack button carries.
	ID        string              `json:"id"`
	Key       Key                 `json:"key"`
	State     State               `json:"state"`
	Pods      []string            `json:"pods"`
	Opened    time.Time           `json:"opened"`
	Diagnosis *diagnose.Diagnosis `json:"diagnosis,omitempty"`
	// NotifyRef is what the Notifier returned from Opened for this
	// incident (a Slack "channel/ts"), or the group's message when GroupID
	// is set. Persisted, so a new leader edits the same message.
	NotifyRef string `json:"notifyRef,omitempty"`
	// GroupID is set when the incident is part of a storm group (see
	// Group); its notifications then go through Notifier.UpdatedGroup.
	GroupID string `json:"groupId,omitempty"`
	// SnoozedUntil is when a snoozed incident wakes.
	SnoozedUntil time.Time `json:"snoozedUntil,omitzero"`
	// By names who made the last lifecycle change (dismissed, snoozed,
	// fixing), as the caller gave it (a Slack user ID).
	By string `json:"by,omitempty"`
	// Changed is when the state last changed.
	Changed time.Time `json:"changed,omitzero"`
	// ProvenSecrets are pull secrets of the namespace whose credentials the
	// registry accepted for Key.Image (and that the pod does not name
	// already): the only secrets an "Add imagePullSecret" fix may add.
	// Persisted with the incident, so a restart or a new leader keeps them.
	ProvenSecrets []string `json:"provenSecrets,omitempty"`
	// Posting is the id of a root message being posted (its message
	// metadata carries it), persisted before the post: after a crash
	// between the post and the state write, the message is found again
	// instead of posted twice (watch's reconcile.go). "" when no post is
	// under way.
	Posting string `json:"posting,omitempty"`
	// Fix is the approved fix being applied (state fixing), persisted
	// before anything is changed: a restart finds it and says what
	// became of it (watch's reconcile.go).
	Fix *FixIntent `json:"fix,omitempty"`
}

// FixIntent is an approved fix, persisted with the incident before the
// workload is touched: the intent a new leader resumes from.
type FixIntent struct {
	// Action is the button's action: set_image, rollback or add_secret.
	Action string `json:"action"`
	// Arg is the button's argument: a candidate id or the secret's name.
	Arg string `json:"arg"`
	// Target is what the fix sets: the image, or the pull secret's name.
	Target string `json:"target"`
	// By is the approver (a Slack user id).
	By string `json:"by"`
	// Approver is how the patch names the approver in the change-cause
	// and the audit Event ("<@U1> (Slack)"): what a restart looks for to
	// tell pullfix's patch from someone else's. "" reads as By.
	Approver string    `json:"approver,omitempty"`
	At       time.Time `json:"at"`
}

// AddsSecret reports whether the fix adds a pull secret (else it sets an image).
func (f FixIntent) AddsSecret() bool { return f.Action == "add_secret" }

// ApproverName is Approver, or By when the intent names no Approver.
func (f FixIntent) ApproverName() string {
	if f.Approver != "" {
		return f.Approver
	}
	return f.By
}

// ID is the incident's short stable ID: the first 10 hex digits of
// the SHA-256 of Key.String(). 40 bits make a collision among the few
// thousand incidents a cluster keeps vanishingly unlikely, and the ID fits
// comfortably in a Slack button value next to a candidate ID.
func ID(k Key) string {
	sum := sha256.Sum256([]byte(k.String()))
	return hex.EncodeToString(sum[:])[:10]
}
