package main

import (
	"os"
	"testing"

	"github.com/pullfix/pullfix/internal/testenv/controlplane"
)

// cp is the package's real control plane (etcd, kube-apiserver,
// kube-controller-manager), shared by the end-to-end tests. Tests that need
// it call controlplane.Require; the offline tests (explain, ops server) run
// without it.
var cp *controlplane.ControlPlane

func TestMain(m *testing.M) {
	code := controlplane.Run(m, &cp)
	removeRealBot()
	os.Exit(code)
}
