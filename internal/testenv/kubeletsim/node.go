package kubeletsim

import (
	"context"
	"fmt"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// node is one simulated kubelet: its Node, its pod informer, its event
// recorder and its container runtime's image store.
type node struct {
	name     string
	ip       string
	os, arch string
	variant  string
	uid      types.UID
	labels   map[string]string

	informer    cache.SharedIndexInformer
	broadcaster record.EventBroadcaster
	recorder    record.EventRecorder

	mu      sync.Mutex
	images  map[string]presentImage // by containerd's full reference
	podIPs  uint32
	nodeIdx int
}

// presentImage is an image in the node's store. secrets are the pull secrets
// it was pulled with; nodeAccessible means any pod may use it (pulled with
// node credentials or anonymously, or preloaded), which is how the
// KubeletEnsureSecretPulledImages gate (beta, on, in 1.37) decides whether a
// present image needs a credential re-check.
type presentImage struct {
	imageID        string
	name           string
	size           int64
	nodeAccessible bool
	secrets        map[string]bool
}

func newNode(idx int, nodeName string, c *config) *node {
	return &node{
		name:    nodeName,
		ip:      fmt.Sprintf("10.0.%d.%d", 1+idx/250, 10+idx%250),
		os:      c.os,
		arch:    c.arch,
		variant: c.variant,
		nodeIdx: idx,
		images:  map[string]presentImage{},
		labels: map[string]string{
			corev1.LabelOSStable:      c.os,
			corev1.LabelArchStable:    c.arch,
			corev1.LabelHostname:      nodeName,
			"beta.kubernetes.io/os":   c.os,
			"beta.kubernetes.io/arch": c.arch,
		},
	}
}

// podIP hands out the next pod address of the node's /24.
func (n *node) nextPodIP() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.podIPs++
	i := n.podIPs
	return fmt.Sprintf("10.%d.%d.%d", 100+n.nodeIdx/250, n.nodeIdx%250, 2+i%250)
}

func (n *node) image(full string) (presentImage, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.images[full]
	return p, ok
}

func (n *node) storeImage(full string, p pulled, secret string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	cur, ok := n.images[full]
	if !ok {
		cur = presentImage{secrets: map[string]bool{}}
	}
	cur.imageID, cur.name, cur.size = p.imageID, p.name, p.size
	if secret == "" {
		cur.nodeAccessible = true
	} else {
		cur.secrets[secret] = true
	}
	n.images[full] = cur
}

// matches reports whether an index entry's platform runs on the node.
// containerd treats arm64 and arm64/v8 as the same.
func (n *node) matches(p v1.Platform) bool {
	if p.OS != n.os || p.Architecture != n.arch {
		return false
	}
	nv, pv := n.variant, p.Variant
	if n.arch == "arm64" {
		if nv == "v8" {
			nv = ""
		}
		if pv == "v8" {
			pv = ""
		}
	}
	return nv == "" || pv == "" || nv == pv
}

func (n *node) match(ds []v1.Descriptor) (v1.Descriptor, bool) {
	for _, d := range ds {
		if d.Platform != nil && n.matches(*d.Platform) {
			return d, true
		}
	}
	return v1.Descriptor{}, false
}

// object is the Node as a kubelet v1.37 registers it.
func (n *node) object() *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        n.name,
			Labels:      n.labels,
			Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0", "volumes.kubernetes.io/controller-managed-attach-detach": "true"},
		},
	}
}

func (n *node) status(c *config, now metav1.Time) corev1.NodeStatus {
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("4"),
		corev1.ResourceMemory:           resource.MustParse("16Gi"),
		corev1.ResourcePods:             *resource.NewQuantity(int64(c.maxPods), resource.DecimalSI),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	allocatable := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse("3920m"),
		corev1.ResourceMemory:           resource.MustParse("15Gi"),
		corev1.ResourcePods:             *resource.NewQuantity(int64(c.maxPods), resource.DecimalSI),
		corev1.ResourceEphemeralStorage: resource.MustParse("90Gi"),
	}
	cond := func(t corev1.NodeConditionType, s corev1.ConditionStatus, reason, msg string) corev1.NodeCondition {
		return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: msg, LastHeartbeatTime: now, LastTransitionTime: now}
	}
	return corev1.NodeStatus{
		Capacity:    capacity,
		Allocatable: allocatable,
		Conditions: []corev1.NodeCondition{
			cond(corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
			cond(corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
			cond(corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
			cond(corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "kubelet is posting ready status"),
		},
		Addresses: []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: n.ip},
			{Type: corev1.NodeHostName, Address: n.name},
		},
		DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
		NodeInfo: corev1.NodeSystemInfo{
			MachineID:               fmt.Sprintf("%032x", n.nodeIdx+1),
			SystemUUID:              fmt.Sprintf("ec2%029x", n.nodeIdx+1),
			BootID:                  fmt.Sprintf("%08x-0000-4000-8000-%012x", n.nodeIdx+1, n.nodeIdx+1),
			KernelVersion:           "6.12.40-64.114.amzn2023." + kernelArch(n.arch),
			OSImage:                 "Amazon Linux 2023.8.20250818",
			ContainerRuntimeVersion: "containerd://" + string(c.containerd),
			KubeletVersion:          DefaultKubeletVersion,
			OperatingSystem:         n.os,
			Architecture:            n.arch,
		},
	}
}

// register creates or refreshes the Node and marks it Ready.
func (s *Simulator) register(ctx context.Context, n *node) error {
	nodes := s.cs.CoreV1().Nodes()
	obj, err := nodes.Create(ctx, n.object(), metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		obj, err = nodes.Get(ctx, n.name, metav1.GetOptions{})
		if err == nil {
			for k, v := range n.labels {
				if obj.Labels == nil {
					obj.Labels = map[string]string{}
				}
				obj.Labels[k] = v
			}
			obj.Spec.Unschedulable = false
			obj, err = nodes.Update(ctx, obj, metav1.UpdateOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("register node %s: %w", n.name, err)
	}
	n.uid = obj.UID
	// The controller manager's TTL and lifecycle controllers update a new
	// Node at once, so the first status write can lose a race: re-read and
	// retry, as the kubelet does.
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		obj.Status = n.status(s.cfg, metav1.Now())
		_, err := nodes.UpdateStatus(ctx, obj, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			if fresh, gerr := nodes.Get(ctx, n.name, metav1.GetOptions{}); gerr == nil {
				obj = fresh
			}
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("node %s status: %w", n.name, err)
	}
	return s.renewLease(ctx, n)
}

// renewLease is the kubelet's heartbeat: the node-lifecycle controller reads
// the Lease's renewTime, so a fresh Lease keeps the node Ready and its pods
// where they are.
func (s *Simulator) renewLease(ctx context.Context, n *node) error {
	leases := s.cs.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NewMicroTime(time.Now())
	l, err := leases.Get(ctx, n.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = leases.Create(ctx, &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{
				Name:      n.name,
				Namespace: corev1.NamespaceNodeLease,
				OwnerReferences: []metav1.OwnerReference{{
					APIVersion: "v1", Kind: "Node", Name: n.name, UID: n.uid,
				}},
			},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(n.name),
				LeaseDurationSeconds: ptr.To(s.cfg.leaseDuration),
				RenewTime:            &now,
			},
		}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	l.Spec.HolderIdentity = ptr.To(n.name)
	l.Spec.LeaseDurationSeconds = ptr.To(s.cfg.leaseDuration)
	l.Spec.RenewTime = &now
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{})
	return err
}

// heartbeat renews every node's Lease until ctx ends, and refreshes node
// status about every minute (a kubelet reports at least every 5 minutes).
func (s *Simulator) heartbeat(ctx context.Context) {
	t := time.NewTicker(s.cfg.leaseRenew)
	defer t.Stop()
	var ticks int
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		ticks++
		for _, n := range s.nodes {
			if err := s.renewLease(ctx, n); err != nil && ctx.Err() == nil {
				s.log.Warn("renew node lease", "node", n.name, "err", err)
			}
			if ticks%6 == 0 {
				s.refreshNodeStatus(ctx, n)
			}
		}
	}
}

func (s *Simulator) refreshNodeStatus(ctx context.Context, n *node) {
	obj, err := s.cs.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
	if err != nil {
		return
	}
	now := metav1.Now()
	for i := range obj.Status.Conditions {
		obj.Status.Conditions[i].LastHeartbeatTime = now
	}
	if _, err := s.cs.CoreV1().Nodes().UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil && ctx.Err() == nil {
		s.log.Warn("refresh node status", "node", n.name, "err", err)
	}
}

func kernelArch(arch string) string {
	switch arch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	}
	return arch
}
