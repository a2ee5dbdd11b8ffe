// Package kubeletsim is a kubelet simulator for tests, the benchmark and the
// demo. It talks to a real kube-apiserver the way a kubelet v1.37 with
// containerd 2.x does, so the bot under test sees the same objects it would
// see on a real cluster:
//
//   - it registers fake Nodes (Ready, nodeInfo, capacity, the well-known
//     labels) and renews their Leases in kube-node-lease, so the node-lifecycle
//     controller of kube-controller-manager neither taints nor evicts;
//   - it binds unscheduled pods to one of its nodes (no scheduler runs in the
//     test control plane);
//   - for each container (init containers first, in order) it "pulls" the
//     image with a real go-containerregistry HEAD/GET of the manifest, through
//     a mirror mapping (registry host in the pod spec → loopback registry),
//     with the node's keychain and the pod's imagePullSecrets, and checks the
//     node's platform against an index; image volumes (volumes[].image) are
//     pulled the same way for the pod before its containers start, and a
//     container that mounts one that failed waits with its error; ephemeral
//     containers are started first, their statuses in
//     ephemeralContainerStatuses (sync.go cites the kubelet's lines);
//   - it writes the kubelet's events (through client-go's record broadcaster,
//     source {Component: kubelet, Host: node}, so aggregation and spam
//     filtering are the real ones) and the kubelet's pod status, byte for byte
//     (see errors.go for the containerd texts and their sources);
//   - it retries with the kubelet's image back-off (flowcontrol.Backoff keyed
//     podUID_image), compressed: 10 s → 300 s in a kubelet, 200 ms → 2 s by
//     default here. Time-based constants of the event correlator are
//     compressed by the same factor.
//
// It is level-based like a controller: informers on pods (one per node with
// the field selector spec.nodeName=<node>, one for unscheduled pods), a
// rate-limited workqueue, a fixed worker pool, and a status PATCH only when the
// computed status differs. Nothing sleeps per pod: back-off re-evaluation is a
// delayed re-queue.
//
// Scale: to drive 10,000 pods give it a client whose rest.Config has a high
// client-side rate limit (NewForConfig raises QPS to 500 and Burst to 1000),
// and spread the pods over many nodes (WithNodeCount): each node has its own
// event broadcaster, as each real kubelet does.
package kubeletsim
