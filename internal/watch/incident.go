package watch

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// Workload names what owns a pod, resolved through its owner chain
// (ReplicaSet → Deployment, Job → CronJob), or the bare Pod itself.
type Workload struct {
	Kind string `json:"kind"` // Deployment, StatefulSet, DaemonSet, CronJob, Job, ReplicaSet, Pod
	Name string `json:"name"`
}

func (w Workload) String() string { return w.Kind + "/" + w.Name }

// Key identifies an incident: one broken (workload, container, image) in a
// namespace of a cluster. Many pods share one key, so they share one message.
type Key struct {
	Cluster   string `json:"cluster"`
	Namespace string `json:"namespace"`
	Workload  `json:"workload"`
	Container string `json:"container"`
	Image     string `json:"image"`
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

// closed reports whether the state ends the incident's conversation:
// nothing more is posted about it.
func (s State) closed() bool { return s == StateResolved || s == StateDismissed }

// Incident is the watcher's record of one Key. Pods is the set of failing
// pods (namespace-local names) seen at the last sync.
type Incident struct {
	// ID is IncidentID(Key): short, stable across restarts and replicas,
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
	// Posting is the id of a root message being posted (its message
	// metadata carries it), persisted before the post: after a crash
	// between the post and the state write, the message is found again
	// instead of posted twice (reconcile.go). "" when no post is under way.
	Posting string `json:"posting,omitempty"`
	// Fix is the approved fix being applied (state fixing), persisted
	// before anything is changed: a restart finds it and says what
	// became of it (reconcile.go).
	Fix *FixIntent `json:"fix,omitempty"`
}

// IncidentID is the incident's short stable ID: the first 10 hex digits of
// the SHA-256 of Key.String(). 40 bits make a collision among the few
// thousand incidents a cluster keeps vanishingly unlikely, and the ID fits
// comfortably in a Slack button value next to a candidate ID.
func IncidentID(k Key) string {
	sum := sha256.Sum256([]byte(k.String()))
	return hex.EncodeToString(sum[:])[:10]
}

// imagePullReasons are the container waiting reasons that mean "the image
// could not be pulled" (kubelet images/types.go; RegistryUnavailable and
// SignatureValidationFailed are runtime-classified variants since 1.28).
var imagePullReasons = map[string]bool{
	"ErrImagePull":              true,
	"ImagePullBackOff":          true,
	"InvalidImageName":          true,
	"ErrImageNeverPull":         true,
	"RegistryUnavailable":       true,
	"SignatureValidationFailed": true,
}

// IsImagePullReason reports whether a waiting reason is an image-pull failure.
func IsImagePullReason(reason string) bool { return imagePullReasons[reason] }

// FailingContainer is one image of a pod that cannot be pulled: a
// container's, an ephemeral container's or an image volume's.
type FailingContainer struct {
	// Name is the incident key's container field: the container's name,
	// EphemeralPrefix+name for an ephemeral container, VolumePrefix+name
	// for an image volume.
	Name  string
	Image string
	Init  bool
	// Ephemeral marks an ephemeral container (`kubectl debug`): it belongs
	// to this one pod, not to the pod's workload.
	Ephemeral bool
	Reason    string
	Message   string
}

// FailingContainers lists the pod's images that cannot be pulled (init
// containers first, then containers, then ephemeral containers), with the
// image from the pod spec (the status may carry a normalised form). A
// container that waits on an image volume it mounts (see failedVolume)
// yields the volume, once however many containers mount it.
func FailingContainers(pod *corev1.Pod) []FailingContainer {
	var out []FailingContainer
	vols := imageVolumes(&pod.Spec)
	seen := map[string]bool{}
	collect := func(specs []corev1.Container, statuses []corev1.ContainerStatus, init, ephemeral bool) {
		byName := make(map[string]*corev1.Container, len(specs))
		for i := range specs {
			byName[specs[i].Name] = &specs[i]
		}
		for _, st := range statuses {
			w := st.State.Waiting
			if w == nil || !IsImagePullReason(w.Reason) {
				continue
			}
			fc := FailingContainer{Name: st.Name, Image: st.Image, Init: init, Ephemeral: ephemeral, Reason: w.Reason, Message: w.Message}
			if c := byName[st.Name]; c != nil {
				fc.Image = c.Image
				if vol, ref, ok := failedVolume(c, vols, w.Message); ok {
					fc.Name, fc.Image, fc.Ephemeral = VolumePrefix+vol, ref, false
				}
			}
			if ephemeral && fc.Ephemeral {
				fc.Name = EphemeralPrefix + st.Name
			}
			if seen[fc.Name] {
				continue
			}
			seen[fc.Name] = true
			out = append(out, fc)
		}
	}
	collect(pod.Spec.InitContainers, pod.Status.InitContainerStatuses, true, false)
	collect(pod.Spec.Containers, pod.Status.ContainerStatuses, false, false)
	if len(pod.Spec.EphemeralContainers) > 0 || len(pod.Status.EphemeralContainerStatuses) > 0 {
		eph := make([]corev1.Container, len(pod.Spec.EphemeralContainers))
		for i := range pod.Spec.EphemeralContainers {
			eph[i] = corev1.Container(pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
		}
		collect(eph, pod.Status.EphemeralContainerStatuses, false, true)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Init && !out[j].Init })
	return out
}
