package kubeletsim

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The kubelet's start-failure reasons (pkg/kubelet/images/types.go); their
// text is the waiting reason and the "Error: %v" event.
var (
	errImagePull        = errors.New("ErrImagePull")
	errImagePullBackOff = errors.New("ImagePullBackOff")
	errImageNeverPull   = errors.New("ErrImageNeverPull")
	errInvalidImageName = errors.New("InvalidImageName")
)

type ctrState int

const (
	stateWaiting ctrState = iota
	stateRunning
	stateTerminated
)

// container is what the simulated runtime knows of one container of a pod:
// the kubelet's status for it is derived from this and the pod spec.
type container struct {
	image          string // the spec image this state is for
	state          ctrState
	reason         string // waiting reason after a failed start ("" = not tried yet)
	message        string
	containerID    string
	imageName      string
	imageID        string
	startedAt      metav1.Time
	finishedAt     metav1.Time
	restartCount   int32
	lastTerminated *corev1.ContainerStateTerminated
}

// podRuntime is the sandbox and containers of one pod on one node, plus the
// kubelet's in-memory prevPullErrMsg (lost on restart, as in a kubelet).
type podRuntime struct {
	uid         types.UID
	podIP       string
	startTime   metav1.Time
	containers  map[string]*container // init and regular share the name space
	prevPullErr map[string]string     // backOffKey → "ErrImagePull: <error>"
	lastWritten *corev1.PodStatus
}

func newPodRuntime(uid types.UID, podIP string) *podRuntime {
	return &podRuntime{
		uid:         uid,
		podIP:       podIP,
		startTime:   now(),
		containers:  map[string]*container{},
		prevPullErr: map[string]string{},
	}
}

func (rt *podRuntime) container(name, image string) *container {
	c, ok := rt.containers[name]
	if !ok {
		c = &container{image: image}
		rt.containers[name] = c
	}
	return c
}

// kill stops a container whose definition changed; the next start is a
// restart.
func (c *container) kill(at metav1.Time) {
	c.lastTerminated = &corev1.ContainerStateTerminated{
		ExitCode:    0,
		Reason:      "Completed",
		StartedAt:   c.startedAt,
		FinishedAt:  at,
		ContainerID: "containerd://" + c.containerID,
	}
	c.restartCount++
	c.state, c.reason, c.message = stateWaiting, "", ""
	c.containerID, c.imageID, c.imageName = "", "", ""
}

// now is a second-precision time without a monotonic reading, so statuses
// compare equal after a round trip through the API server.
func now() metav1.Time { return metav1.NewTime(time.Now().Truncate(time.Second)) }

func containerID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// fakeDigest names a preloaded image that never came from a registry.
func fakeDigest(s string) string {
	h := sha256.Sum256([]byte(s))
	return "sha256:" + hex.EncodeToString(h[:])
}

func ptrTo[T any](v T) *T { return &v }
