//go:build tools

// Package tools pins the Kubernetes commands this module builds for the test control plane and the
// real test node (kubelet).
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
