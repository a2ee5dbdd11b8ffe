package controlplane

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestVersionMatchesBuildScript keeps the Go side's idea of the cache path
// in step with hack/build-k8s.sh and the pinned module.
func TestVersionMatchesBuildScript(t *testing.T) {
	script, err := os.ReadFile("../../../hack/build-k8s.sh")
	if err != nil {
		t.Fatal(err)
	}
	if want := `version="` + Version + `-$(go env GOOS)-$(go env GOARCH)"`; !bytes.Contains(script, []byte(want)) {
		t.Errorf("hack/build-k8s.sh does not set %s", want)
	}
	if want := "kv=" + KubernetesVersion + "\n"; !bytes.Contains(script, []byte(want)) {
		t.Errorf("hack/build-k8s.sh does not stamp %s", want)
	}
	mod, err := os.ReadFile("../../../hack/k8s/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"k8s.io/kubernetes " + KubernetesVersion, "go.etcd.io/etcd/server/v3 " + EtcdVersion} {
		if !bytes.Contains(mod, []byte(want)) {
			t.Errorf("hack/k8s/go.mod does not require %s", want)
		}
	}
}

func TestCacheDir(t *testing.T) {
	t.Setenv(EnvBinCache, "/x/cache")
	got, err := CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	if want := "/x/cache/" + Version + "-" + runtime.GOOS + "-" + runtime.GOARCH; got != want {
		t.Errorf("CacheDir() = %s, want %s", got, want)
	}
	t.Setenv(EnvBinCache, "")
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if got, _ := CacheDir(); !strings.HasPrefix(got, "/xdg/pullfix/k8s/") {
		t.Errorf("CacheDir() = %s, want under /xdg/pullfix/k8s", got)
	}
}

func TestBinariesMissing(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvBinDir, dir)
	_, err := BinDir()
	if !errors.Is(err, ErrBinariesMissing) || !strings.Contains(err.Error(), "hack/build-k8s.sh") {
		t.Fatalf("BinDir() error = %v, want ErrBinariesMissing naming hack/build-k8s.sh", err)
	}
	if _, err := Start(t.Context()); !errors.Is(err, ErrBinariesMissing) {
		t.Fatalf("Start() error = %v, want ErrBinariesMissing", err)
	}
	for _, name := range binaries {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := BinDir(); err != nil {
		t.Fatalf("BinDir() with all binaries: %v", err)
	}
}

func TestTail(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\nb\n", 5, "a\nb\n"},
		{"", 3, ""},
	} {
		if got := string(tail([]byte(tc.in), tc.n)); got != tc.want {
			t.Errorf("tail(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// TestEnsureBinariesUsesCache checks EnsureBinaries returns a complete
// cache without running the (minutes-long) build.
func TestEnsureBinariesUsesCache(t *testing.T) {
	root := t.TempDir()
	t.Setenv(EnvBinDir, "")
	t.Setenv(EnvBinCache, root)
	dir, _ := CacheDir()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range binaries {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A repo root without the script proves it was not run.
	got, err := EnsureBinaries(t.Context(), t.TempDir())
	if err != nil || got != dir {
		t.Fatalf("EnsureBinaries = %q, %v; want %q", got, err, dir)
	}
}
