package controlplane

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// unavailable remembers why Run left the control plane nil, for Require.
var unavailable struct {
	sync.Mutex
	err error
}

// Run is for TestMain: it starts one control plane for the test package,
// stores it in *cpp, runs the tests, stops it and returns the exit code:
//
//	func TestMain(m *testing.M) { os.Exit(controlplane.Run(m, &cp)) }
//
// If the binaries are missing, *cpp stays nil and the tests still run;
// each one calls [Require], which skips it (or fails it in CI). Any other
// start failure prints the process logs and fails the package without
// running tests. When tests fail, the last 50 lines of each process log are
// printed to stderr; otherwise the logs are discarded.
func Run(m *testing.M, cpp **ControlPlane, opts ...Option) int {
	began := time.Now()
	cp, err := Start(context.Background(), opts...)
	switch {
	case errors.Is(err, ErrBinariesMissing):
		unavailable.Lock()
		unavailable.err = err
		unavailable.Unlock()
		fmt.Fprintf(os.Stderr, "controlplane: %v\n", err)
		return m.Run()
	case err != nil:
		fmt.Fprintf(os.Stderr, "controlplane: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "controlplane: started in %s at %s\n", time.Since(began).Round(time.Millisecond), cp.Host())
	*cpp = cp
	code := m.Run()
	if code != 0 {
		cp.WriteLogTails(os.Stderr, 50)
	}
	if err := cp.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "controlplane: stop: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Require stops the test unless cp is running: it skips with a message
// naming hack/build-k8s.sh, or — when CI=true — fails, so that CI can
// never go green by skipping the tests that matter.
func Require(t testing.TB, cp *ControlPlane) {
	t.Helper()
	if cp != nil {
		return
	}
	unavailable.Lock()
	err := unavailable.err
	unavailable.Unlock()
	if err == nil {
		err = errors.New("no control plane: call controlplane.Run from TestMain")
	}
	msg := fmt.Sprintf("real control plane unavailable: %v", err)
	if !strings.Contains(msg, "hack/build-k8s.sh") {
		msg += " (binaries: hack/build-k8s.sh)"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
