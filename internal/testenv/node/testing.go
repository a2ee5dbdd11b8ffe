package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/testenv/controlplane"
	"github.com/pullfix/pullfix/internal/testenv/registries"
)

// SandboxRepoTag is where StartForTest pushes the pod sandbox image.
const SandboxRepoTag = "pause:3.10"

// Test is a node started for one test, with its loopback DNS server and
// the registry holding its sandbox image.
type Test struct {
	*Node
	// Sleeper is the static binary the sandbox image runs; push it as an
	// application image with registries.PushRunnable.
	Sleeper string
	// DNS answers for the names the node resolves (add with DNS.Add).
	DNS *registries.Network
	// Sandbox is the registry serving SandboxRepoTag.
	Sandbox *registries.Registry

	t      testing.TB
	routes map[string]*route
}

// route is one host's address and what answers there now.
type route struct {
	addr    string
	reg     *registries.Registry
	dropped *registries.Dropped
}

// Restore makes a Dropped route to host work: its address stops dropping
// connections and the route's Registry answers there. A connect the
// runtime is still retrying reaches the registry.
func (nt *Test) Restore(host string) {
	nt.t.Helper()
	r := nt.routes[host]
	if r == nil || r.dropped == nil || r.reg == nil {
		nt.t.Fatalf("restore %s: not a dropped route with a registry", host)
	}
	r.dropped.Close()
	r.dropped = nil
	r.reg.ListenAlso(nt.t, r.addr)
}

// Require stops the test unless a real node can start here: it skips
// with a message naming what to install — or, when CI=true, fails, so
// that CI can never go green by skipping the real-node tier.
func Require(t testing.TB) {
	t.Helper()
	if _, err := Check(""); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("real node: %v", err)
		}
		t.Skipf("real node: %v", err)
	}
}

// Route is how the node reaches one registry host named in image
// references.
type Route struct {
	// Registry serves the host: the node's DNS resolves the host name to
	// a loopback address of its own, where the registry also listens on
	// port 80 (plain HTTP). containerd thus talks to the host by its own
	// name — and sends the pod's pull credentials for it, which it would
	// not send to a mirror of another name.
	Registry *registries.Registry
	// Dropped makes the host's address drop connections (SYNs): the
	// node's route to the registry is a black hole (until Test.Restore,
	// when Registry is set).
	Dropped bool
}

// StartForTest starts a node registered with cp, reaching each registry
// host in routes as the Route says, and stops it when the test ends. Its
// name is "<prefix>-<random>".
func StartForTest(t testing.TB, cp *controlplane.ControlPlane, prefix string, routes map[string]Route) *Test {
	t.Helper()
	Require(t)
	controlplane.Require(t, cp)
	sleeper, err := SleeperBinary()
	if err != nil {
		t.Fatal(err)
	}
	dns := newLoopbackDNS(t)
	sandbox := registries.New(t)
	sandbox.PushRunnable(t, SandboxRepoTag, sleeper)

	name := RandomName(prefix)
	kubeconfig, err := cp.NodeKubeconfig(name)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := kubernetes.NewForConfig(cp.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	regs := []Registry{{Host: sandbox.Host, Server: "http://" + sandbox.Host}}
	state := map[string]*route{}
	for host, r := range routes {
		ip := freeLoopback80(t)
		dns.AddAt(host, ip)
		addr := fmt.Sprintf("%d.%d.%d.%d:80", ip[0], ip[1], ip[2], ip[3])
		st := &route{addr: addr, reg: r.Registry}
		switch {
		case r.Dropped:
			st.dropped = registries.DroppedRouteAt(t, ip, 80)
		case r.Registry != nil:
			r.Registry.ListenAlso(t, addr)
		default:
			t.Fatalf("route for %s: neither a registry nor dropped", host)
		}
		state[host] = st
		regs = append(regs, Registry{Host: host, Server: "http://" + host})
	}
	began := time.Now()
	n, err := Start(t.Context(), Config{
		Name: name, Kubeconfig: kubeconfig, CAFile: cp.CAFile(), Client: admin,
		SandboxImage: sandbox.Ref(SandboxRepoTag), DNSServer: dnsIP(dns),
		Registries: regs, TempRoot: os.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("real node %s Ready in %s", name, time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			n.WriteLogTails(os.Stderr, 60)
		}
		stopped := time.Now()
		if err := n.Stop(); err != nil {
			t.Errorf("stop real node %s: %v", name, err)
		}
		t.Logf("real node %s stopped in %s", name, time.Since(stopped).Round(time.Millisecond))
	})
	return &Test{Node: n, Sleeper: sleeper, DNS: dns, Sandbox: sandbox, t: t, routes: state}
}

// freeLoopback80 picks an address in 127.54.0.0/16 whose port 80 is free.
func freeLoopback80(t testing.TB) [4]byte {
	t.Helper()
	for range 50 {
		ip := [4]byte{127, 54, byte(rand.IntN(256)), byte(1 + rand.IntN(254))}
		ln, err := net.Listen("tcp", fmt.Sprintf("%d.%d.%d.%d:80", ip[0], ip[1], ip[2], ip[3]))
		if err == nil {
			ln.Close()
			return ip
		}
	}
	t.Fatal("no free port 80 on 127.54.0.0/16")
	return [4]byte{}
}

func dnsIP(n *registries.Network) string {
	h, _, _ := net.SplitHostPort(n.Addr)
	return h
}

// newLoopbackDNS starts the DNS server on port 53 of a random address in
// 127.53.0.0/16 (a resolv.conf names no port).
func newLoopbackDNS(t testing.TB) *registries.Network {
	t.Helper()
	for range 20 {
		addr := fmt.Sprintf("127.53.%d.%d:53", rand.IntN(256), 1+rand.IntN(254))
		if pc, err := net.ListenPacket("udp", addr); err == nil {
			pc.Close()
			return registries.NewNetworkAt(t, addr)
		}
	}
	t.Fatal("no free port 53 on 127.53.0.0/16")
	return nil
}

var sleeperOnce struct {
	sync.Once
	path string
	err  error
}

// SleeperBinary builds the sleeper (see BuildSleeper) once per process,
// into a directory of its own under os.TempDir(), and returns its path.
func SleeperBinary() (string, error) {
	sleeperOnce.Do(func() {
		// Builds of test binaries that have exited are removed here.
		old, _ := filepath.Glob(filepath.Join(os.TempDir(), "pullfix-sleeper-*"))
		for _, d := range old {
			var pid int
			if _, err := fmt.Sscanf(filepath.Base(d), "pullfix-sleeper-%d", &pid); err == nil {
				if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
					os.RemoveAll(d)
				}
			}
		}
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("pullfix-sleeper-%d", os.Getpid()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			sleeperOnce.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		sleeperOnce.path, sleeperOnce.err = BuildSleeper(ctx, dir)
		if sleeperOnce.err != nil {
			sleeperOnce.err = errors.Join(errors.New("build the sleeper image's binary"), sleeperOnce.err)
		}
	})
	return sleeperOnce.path, sleeperOnce.err
}
