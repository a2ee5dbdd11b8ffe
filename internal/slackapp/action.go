package slackapp

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Action is what a button asks the bot to do. The string values appear in
// button values (see EncodeAction) and are therefore a wire contract.
type Action string

// The actions pullfix's buttons carry.
const (
	// ActionSetImage sets the container's image to a verified candidate.
	ActionSetImage Action = "set_image"
	// ActionRollback sets the image to the workload's last healthy revision
	// (a candidate of kind last_healthy).
	ActionRollback Action = "rollback"
	// ActionAddSecret adds a proven imagePullSecret to the workload.
	ActionAddSecret Action = "add_secret"
	// ActionRecheck diagnoses the incident again now.
	ActionRecheck Action = "recheck"
	// ActionSnooze silences the incident for an hour.
	ActionSnooze Action = "snooze"
	// ActionDismiss closes the incident without a change.
	ActionDismiss Action = "dismiss"
)

// The action_id of each button. They are constant (one per Action) so a
// Socket Mode handler can be registered per action_id; when a message
// carries several buttons of one kind (several candidates) each sits in its
// own block, so action_ids stay unique within a block as Slack requires.
const (
	ActionIDSetImage  = "pullfix_set_image"
	ActionIDRollback  = "pullfix_rollback"
	ActionIDAddSecret = "pullfix_add_secret"
	ActionIDRecheck   = "pullfix_recheck"
	ActionIDSnooze    = "pullfix_snooze"
	ActionIDDismiss   = "pullfix_dismiss"
)

// ActionIDs lists every action_id pullfix renders, for handler registration.
func ActionIDs() []string {
	return []string{ActionIDSetImage, ActionIDRollback, ActionIDAddSecret, ActionIDRecheck, ActionIDSnooze, ActionIDDismiss, ActionIDTempImage}
}

// ActionID is the action_id of a's button ("" for an unknown action).
func (a Action) ActionID() string {
	switch a {
	case ActionSetImage:
		return ActionIDSetImage
	case ActionRollback:
		return ActionIDRollback
	case ActionAddSecret:
		return ActionIDAddSecret
	case ActionRecheck:
		return ActionIDRecheck
	case ActionSnooze:
		return ActionIDSnooze
	case ActionDismiss:
		return ActionIDDismiss
	case ActionTempImage:
		return ActionIDTempImage
	}
	return ""
}

// ActionForID maps an action_id back to its Action.
func ActionForID(actionID string) (Action, bool) {
	for _, a := range []Action{ActionSetImage, ActionRollback, ActionAddSecret, ActionRecheck, ActionSnooze, ActionDismiss, ActionTempImage} {
		if a.ActionID() == actionID {
			return a, true
		}
	}
	return "", false
}

// IsFix reports whether a changes the workload (and so needs an approver):
// set image, roll back, add a pull secret. Re-check, snooze and dismiss
// change nothing in the cluster.
func (a Action) IsFix() bool {
	return a == ActionSetImage || a == ActionRollback || a == ActionAddSecret || a == ActionTempImage
}

// needsArg reports whether the action names a candidate (or secret).
func (a Action) needsArg() bool { return a.IsFix() }

// ActionValue is everything a button's value carries: which cluster's bot
// must act, on which incident, and what to do. It never carries an image:
// Arg is a candidate id ("c1") that the bot resolves in its own state, so a
// forged value can at most pick another of the bot's own verified
// candidates.
type ActionValue struct {
	Cluster    string
	IncidentID string
	Action     Action
	// Arg is the candidate id (set_image, rollback) or the imagePullSecret
	// name (add_secret); empty for recheck, snooze and dismiss. The handler
	// must look it up among the incident's own candidates / proven secrets.
	Arg string
}

// Limits on the fields of an ActionValue. Together they keep an encoded
// value (percent-escaping can triple a byte) far below Slack's 2000
// characters.
const (
	valueVersion     = "v1"
	maxValueCluster  = 128
	maxValueIncident = 128
	maxValueArg      = 253 // a DNS-1123 subdomain (secret name)
	// MaxButtonValue is Slack's limit on a button value.
	MaxButtonValue = 2000
)

// Errors from DecodeAction and ActionValue.Check; the *ValueError wraps
// one of them, so errors.Is(err, ErrMalformedValue) works on any of them.
var (
	// ErrMalformedValue: the value is not one pullfix produced (wrong
	// version, field count, escaping, or a field out of bounds). Treat as forged.
	ErrMalformedValue = errors.New("malformed button value")
	// ErrUnknownAction: the action in the value is not one pullfix knows.
	ErrUnknownAction = errors.New("unknown action in button value")
	// ErrOtherCluster: the value names another cluster; the bot that
	// received it must refuse, not act (one Slack app per cluster).
	ErrOtherCluster = errors.New("button belongs to another cluster")
	// ErrActionMismatch: the value's action disagrees with the clicked
	// button's action_id (a hand-made payload).
	ErrActionMismatch = errors.New("button value does not match its action_id")
)

// ValueError says why a button value was refused. Value is the offending
// input, shortened for logs; Reason is for people.
type ValueError struct {
	Err    error // one of the Err* sentinels above
	Value  string
	Reason string
}

func (e *ValueError) Error() string {
	return fmt.Sprintf("%v: %s (value %q)", e.Err, e.Reason, shorten(e.Value, 80))
}

func (e *ValueError) Unwrap() error { return e.Err }

// Is makes an unknown action also count as ErrMalformedValue: both mean
// "not a value pullfix produced".
func (e *ValueError) Is(target error) bool {
	return target == ErrMalformedValue && e.Err == ErrUnknownAction
}

func valueErr(sentinel error, value, format string, args ...any) error {
	return &ValueError{Err: sentinel, Value: value, Reason: fmt.Sprintf(format, args...)}
}

// Validate reports whether v can be encoded into a value DecodeAction
// accepts: known action, non-empty bounded cluster and incident id, an Arg
// exactly when the action needs one.
func (v ActionValue) Validate() error {
	enc := "(" + string(v.Action) + ")"
	switch {
	case v.Action.ActionID() == "":
		return valueErr(ErrUnknownAction, enc, "action %q is not one of set_image, rollback, add_secret, recheck, snooze, dismiss, temp_image", v.Action)
	case v.Cluster == "" || utf8.RuneCountInString(v.Cluster) > maxValueCluster || !utf8.ValidString(v.Cluster):
		return valueErr(ErrMalformedValue, enc, "cluster name must be 1..%d characters of valid UTF-8", maxValueCluster)
	case v.IncidentID == "" || utf8.RuneCountInString(v.IncidentID) > maxValueIncident || !utf8.ValidString(v.IncidentID):
		return valueErr(ErrMalformedValue, enc, "incident id must be 1..%d characters of valid UTF-8", maxValueIncident)
	case v.Action.needsArg() && v.Arg == "":
		return valueErr(ErrMalformedValue, enc, "action %s needs a candidate id", v.Action)
	case !v.Action.needsArg() && v.Arg != "":
		return valueErr(ErrMalformedValue, enc, "action %s takes no argument", v.Action)
	case len(v.Arg) > maxValueArg || !isArg(v.Arg):
		return valueErr(ErrMalformedValue, enc, "argument must be a candidate id or secret name (a-z, 0-9, '-', '.', at most %d)", maxValueArg)
	}
	return nil
}

// isArg: candidate ids ("c1") and secret names are DNS-1123 subdomains.
func isArg(s string) bool {
	return s == "" || isDNS1123Subdomain(s)
}

// EncodeAction renders v as a compact button value,
// "v1|<cluster>|<incident>|<action>|<arg>", each field percent-escaped so a
// '|' in a cluster name cannot shift the fields. The result is canonical:
// DecodeAction(EncodeAction(v)) == v for every v with v.Validate() == nil.
// Call Validate first; a value that fails it encodes but will not decode.
func EncodeAction(v ActionValue) string {
	return strings.Join([]string{
		valueVersion, url.PathEscape(v.Cluster), url.PathEscape(v.IncidentID), string(v.Action), url.PathEscape(v.Arg),
	}, "|")
}

// DecodeAction parses a button value produced by EncodeAction. It accepts
// only the canonical encoding (a value re-escaped differently is refused as
// forged) and returns a *ValueError wrapping ErrMalformedValue or
// ErrUnknownAction otherwise. It does not check the cluster: use Check.
func DecodeAction(s string) (ActionValue, error) {
	if len(s) > MaxButtonValue {
		return ActionValue{}, valueErr(ErrMalformedValue, s, "longer than %d characters", MaxButtonValue)
	}
	parts := strings.Split(s, "|")
	if len(parts) == 0 || parts[0] != valueVersion {
		return ActionValue{}, valueErr(ErrMalformedValue, s, "not a pullfix button value (want prefix %q)", valueVersion+"|")
	}
	if len(parts) != 5 {
		return ActionValue{}, valueErr(ErrMalformedValue, s, "want 5 '|'-separated fields, got %d", len(parts))
	}
	var fields [3]string
	for i, p := range []string{parts[1], parts[2], parts[4]} {
		u, err := url.PathUnescape(p)
		if err != nil {
			return ActionValue{}, valueErr(ErrMalformedValue, s, "bad escaping in field %d", i+1)
		}
		if url.PathEscape(u) != p {
			return ActionValue{}, valueErr(ErrMalformedValue, s, "field %d is not canonically escaped", i+1)
		}
		fields[i] = u
	}
	v := ActionValue{Cluster: fields[0], IncidentID: fields[1], Action: Action(parts[3]), Arg: fields[2]}
	if err := v.Validate(); err != nil {
		var ve *ValueError
		if errors.As(err, &ve) {
			ve.Value = s
		}
		return ActionValue{}, err
	}
	return v, nil
}

// Check refuses a value that names another cluster (ErrOtherCluster) or
// whose action disagrees with the clicked action_id (ErrActionMismatch).
// actionID may be empty to skip the second check.
func (v ActionValue) Check(cluster, actionID string) error {
	enc := EncodeAction(v)
	if v.Cluster != cluster {
		return valueErr(ErrOtherCluster, enc, "this button was posted by the pullfix of cluster %q; this is %q", v.Cluster, cluster)
	}
	if actionID != "" && v.Action.ActionID() != actionID {
		return valueErr(ErrActionMismatch, enc, "value says %s but the button is %s", v.Action, actionID)
	}
	return nil
}

// DecodeClick decodes a clicked button's value and checks it against this
// bot's cluster and the button's action_id: the one call an interaction
// handler needs before it looks the incident up.
func DecodeClick(cluster, actionID, value string) (ActionValue, error) {
	v, err := DecodeAction(value)
	if err != nil {
		return ActionValue{}, err
	}
	if err := v.Check(cluster, actionID); err != nil {
		return ActionValue{}, err
	}
	return v, nil
}

// shorten cuts s to at most n runes, marking the cut with "…".
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
