package main

// The runbook's three branches again, on a real node: Debian's containerd
// and runc, and a kubelet built from the pinned Kubernetes module
// (internal/testenv/node), instead of the kubelet simulator. The bot, the
// chart's RBAC, Slack and the registries are the same as in e2e_test.go;
// what changes is who writes the events and statuses the bot reads, and
// that the fixed pod really runs.

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestRealNodeSeedRunbook: ui-new in default names the misspelt
// repository; the real kubelet's events lead to the diagnosis (repository
// not found, with the verified fix), the approver's click patches the
// Deployment, the new pod is really Running on the node and the old one
// gone, and the message says 1/1 Running.
func TestRealNodeSeedRunbook(t *testing.T) {
	e, _ := runbookWorld(t, metav1.NamespaceDefault, true, false)
	seedRunbook(t, e)
}

// TestRealNodeAccessDenied: a private ECR-like registry and no pull secret
// on the pod: the real kubelet's refusal → diagnosis → "Add
// imagePullSecret regcred" → the kubelet pulls with it → Running.
func TestRealNodeAccessDenied(t *testing.T) { seedAccessDenied(t, true) }

// TestRealNodeTimeout: the node's route to public ECR drops connections
// while the bot reaches the registry: the bot says the nodes cannot reach
// it; when the route comes back the kubelet's next attempt pulls and the
// message turns resolved.
func TestRealNodeTimeout(t *testing.T) {
	e, _ := runbookWorld(t, "", true, true)
	seedTimeout(t, e)
}
