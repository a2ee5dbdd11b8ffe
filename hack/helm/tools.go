//go:build tools

// Package tools pins the Helm command that CI and the chart tests use:
// hack/build-helm.sh builds it from the Go module proxy at the version in
// go.mod, so no prebuilt binary is ever downloaded and the main go.mod never
// carries Helm's dependencies.
package tools

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
