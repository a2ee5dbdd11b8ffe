// Package chart tests what pullfix ships — the Helm chart in charts/pullfix
// and the Dockerfile — against the real thing: Helm built from the pinned
// module in hack/helm renders the chart, the rendered objects are created on
// the real test control plane, and the chart's service account is asked what
// it may do. The helpers here find Helm and the repository, render a chart
// into objects and create them.
package chart

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// EnvHelm names the helm binary to use. The Makefile's test target exports
// it (the path hack/build-helm.sh prints); without it, the tests look in the
// cache directory that script builds into.
const EnvHelm = "PULLFIX_HELM"

// ErrHelmMissing means no helm binary was found; build it with
// hack/build-helm.sh (or `make tools`).
var ErrHelmMissing = errors.New("helm not found: build it with hack/build-helm.sh (make tools), or set " + EnvHelm)

// RepoRoot returns the root of the pullfix repository: the nearest directory
// above this source file, or above the working directory, whose go.mod
// declares module github.com/pullfix/pullfix.
func RepoRoot() (string, error) {
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, dir := range starts {
		for d := dir; ; d = filepath.Dir(d) {
			b, err := os.ReadFile(filepath.Join(d, "go.mod"))
			if err == nil && moduleLine(b) == "github.com/pullfix/pullfix" {
				return d, nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "", errors.New("repository root (go.mod of github.com/pullfix/pullfix) not found above " + strings.Join(starts, " or "))
}

func moduleLine(gomod []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "module" {
			return f[1]
		}
	}
	return ""
}

// HelmVersion is the Helm version pinned by repoRoot/hack/helm/go.mod.
func HelmVersion(repoRoot string) (string, error) {
	p := filepath.Join(repoRoot, "hack", "helm", "go.mod")
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(sc.Text()), "require "))
		if len(f) >= 2 && f[0] == "helm.sh/helm/v3" {
			return f[1], nil
		}
	}
	return "", fmt.Errorf("%s requires no helm.sh/helm/v3", p)
}

// HelmPath returns the helm binary: $PULLFIX_HELM when set (it must exist),
// otherwise the one hack/build-helm.sh caches for the pinned version in
// ${PULLFIX_TOOLS_CACHE:-${XDG_CACHE_HOME:-~/.cache}/pullfix/tools}/helm-VERSION/helm.
// The error wraps ErrHelmMissing when there is none.
func HelmPath(repoRoot string) (string, error) {
	if p := os.Getenv(EnvHelm); p != "" {
		if err := executable(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w (%w)", EnvHelm, p, err, ErrHelmMissing)
		}
		return p, nil
	}
	version, err := HelmVersion(repoRoot)
	if err != nil {
		return "", err
	}
	cache := os.Getenv("PULLFIX_TOOLS_CACHE")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return "", fmt.Errorf("%w: no home directory: %v", ErrHelmMissing, err)
			}
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "pullfix", "tools")
	}
	p := filepath.Join(cache, "helm-"+version, "helm")
	if err := executable(p); err != nil {
		return "", fmt.Errorf("%w (looked for %s)", ErrHelmMissing, p)
	}
	return p, nil
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", p)
	}
	return nil
}

// RequireHelm returns a Helm for the chart at repoRoot/charts/NAME, or stops
// the test: it skips with a message naming hack/build-helm.sh, or — when
// CI=true — fails, the same rule as controlplane.Require, so CI can never go
// green by skipping the chart tests.
func RequireHelm(t testing.TB, name string) *Helm {
	t.Helper()
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	path, err := HelmPath(root)
	if err != nil {
		if errors.Is(err, ErrHelmMissing) && os.Getenv("CI") != "true" {
			t.Skip(err.Error())
		}
		t.Fatal(err)
	}
	return &Helm{Path: path, Chart: filepath.Join(root, "charts", name)}
}

// Helm runs one helm binary on one chart directory. Helm's own state
// (repositories, cache, config) goes to a private temporary directory, so
// the tests neither read nor write the user's ~/.config/helm.
type Helm struct {
	Path  string // the helm binary
	Chart string // the chart directory
}

// HelmError is a failed helm command, with what it printed: the schema's
// and the templates' messages are in Stderr.
type HelmError struct {
	Args   []string
	Stderr string
	Err    error
}

func (e *HelmError) Error() string {
	return fmt.Sprintf("helm %s: %v: %s", strings.Join(e.Args, " "), e.Err, strings.TrimSpace(e.Stderr))
}

func (e *HelmError) Unwrap() error { return e.Err }

// Run runs helm with args and returns its standard output; a non-zero exit
// is a *HelmError.
func (h *Helm) Run(ctx context.Context, args ...string) ([]byte, error) {
	home, err := os.MkdirTemp("", "pullfix-helm-home-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(home)
	cmd := exec.CommandContext(ctx, h.Path, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), &HelmError{Args: args, Stderr: stderr.String() + stdout.String(), Err: err}
	}
	return stdout.Bytes(), nil
}

// valuesFile writes values as a values file (JSON is YAML) and returns its
// path and a function that removes it.
func valuesFile(values map[string]any) (string, func(), error) {
	f, err := os.CreateTemp("", "pullfix-values-*.json")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.Remove(f.Name()) }
	if err := json.NewEncoder(f).Encode(values); err != nil {
		f.Close()
		cleanup()
		return "", nil, err
	}
	if err := f.Close(); err != nil {
		cleanup()
		return "", nil, err
	}
	return f.Name(), cleanup, nil
}

// Lint runs `helm lint --strict` with the given values (nil: the chart's
// defaults).
func (h *Helm) Lint(ctx context.Context, values map[string]any) ([]byte, error) {
	args := []string{"lint", "--strict", h.Chart}
	if values != nil {
		p, cleanup, err := valuesFile(values)
		if err != nil {
			return nil, err
		}
		defer cleanup()
		args = append(args, "-f", p)
	}
	return h.Run(ctx, args...)
}

// Template renders the chart as release in namespace with the given values
// (nil: the chart's defaults) and returns the manifest text. Rendering goes
// through the chart's values.schema.json, so bad values fail here.
func (h *Helm) Template(ctx context.Context, release, namespace string, values map[string]any) ([]byte, error) {
	args := []string{"template", release, h.Chart, "--namespace", namespace}
	if values != nil {
		p, cleanup, err := valuesFile(values)
		if err != nil {
			return nil, err
		}
		defer cleanup()
		args = append(args, "-f", p)
	}
	return h.Run(ctx, args...)
}

// Render is Template followed by Decode.
func (h *Helm) Render(ctx context.Context, release, namespace string, values map[string]any) ([]*unstructured.Unstructured, error) {
	out, err := h.Template(ctx, release, namespace, values)
	if err != nil {
		return nil, err
	}
	return Decode(out)
}

// Decode splits a multi-document YAML manifest into objects, in order,
// dropping empty documents (a template that rendered nothing).
func Decode(manifest []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	var objs []*unstructured.Unstructured
	for i := 0; ; i++ {
		// Through JSON and Unstructured's own decoder, so integers stay
		// int64 as everywhere else in client-go (not float64).
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("manifest document %d: %w", i, err)
		}
		if len(raw) == 0 || string(raw) == "null" || string(raw) == "{}" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			return nil, fmt.Errorf("manifest document %d: %w", i, err)
		}
		if u.GetKind() == "" || u.GetAPIVersion() == "" {
			return nil, fmt.Errorf("manifest document %d has no kind or apiVersion", i)
		}
		objs = append(objs, u)
	}
}

// Find returns the objects of kind, in manifest order.
func Find(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}
