// Package workload knows the Kubernetes workload kinds pullfix reports on
// and fixes: one table of kinds (how to read, list, watch and patch each,
// where its pod spec lives, its pods' selector and when it is ready), owner
// resolution from a pod to the workload a person would name, and the image
// sources of a pod (containers, init and ephemeral containers, image
// volumes).
package workload

// Workload names what owns a pod, resolved through its owner chain
// (ReplicaSet → Deployment, Job → CronJob), or the bare Pod itself.
type Workload struct {
	Kind string `json:"kind"` // Deployment, StatefulSet, DaemonSet, CronJob, Job, ReplicaSet, Pod
	Name string `json:"name"`
}

func (w Workload) String() string { return w.Kind + "/" + w.Name }
