package controlplane

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// Pinned versions. They must match hack/k8s/go.mod and hack/build-k8s.sh;
// TestVersionMatchesBuildScript keeps them in step.
const (
	// KubernetesVersion is the k8s.io/kubernetes module version the
	// kube-apiserver and kube-controller-manager binaries are built from.
	KubernetesVersion = "v1.37.2"
	// EtcdVersion is the go.etcd.io/etcd/server/v3 module version.
	EtcdVersion = "v3.7.0"
	// Version keys the binary cache: hack/build-k8s.sh writes to
	// <cache root>/<Version>-<GOOS>-<GOARCH>/.
	// "-node": the kubelet is built too (internal/testenv/node), all with
	// the Kubernetes version stamped in.
	Version = KubernetesVersion + "-etcd-" + EtcdVersion + "-node"
)

// EnvBinDir names the environment variable that points straight at a
// directory holding etcd, kube-apiserver and kube-controller-manager
// (make test sets it to the build script's output).
const EnvBinDir = "PULLFIX_K8S_BIN_DIR"

// EnvBinCache names the environment variable that overrides the cache root
// used by hack/build-k8s.sh (default $XDG_CACHE_HOME or ~/.cache, then
// /pullfix/k8s).
const EnvBinCache = "PULLFIX_K8S_BIN_CACHE"

// binaries are the executables a control plane needs.
var binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager"}

// ErrBinariesMissing reports that the control-plane binaries are not built.
// Test helpers skip (or, in CI, fail) on it; its message says how to fix it.
var ErrBinariesMissing = errors.New("control-plane binaries missing: run hack/build-k8s.sh (or set " + EnvBinDir + ")")

// CacheDir returns the versioned directory hack/build-k8s.sh builds into,
// computed the same way as the script. It does not check that it exists.
func CacheDir() (string, error) {
	root := os.Getenv(EnvBinCache)
	if root == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("locate binary cache: %w", err)
			}
			base = filepath.Join(home, ".cache")
		}
		root = filepath.Join(base, "pullfix", "k8s")
	}
	return filepath.Join(root, Version+"-"+runtime.GOOS+"-"+runtime.GOARCH), nil
}

// BinDir finds the control-plane binaries: $PULLFIX_K8S_BIN_DIR if set,
// else [CacheDir]. It returns an error wrapping [ErrBinariesMissing] when
// the chosen directory lacks any of them.
func BinDir() (string, error) {
	if dir := os.Getenv(EnvBinDir); dir != "" {
		return dir, checkBinDir(dir)
	}
	dir, err := CacheDir()
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBinariesMissing, err)
	}
	return dir, checkBinDir(dir)
}

// checkBinDir reports which binaries, if any, dir lacks.
func checkBinDir(dir string) error {
	for _, name := range binaries {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("%w: no executable %s in %s", ErrBinariesMissing, name, dir)
		}
	}
	return nil
}
