package kubeletsim

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Option configures a Simulator. Every option has a documented default.
type Option func(*config)

// Defaults, in one place.
const (
	// DefaultNodePrefix names nodes "<prefix>-0", "<prefix>-1", ….
	DefaultNodePrefix = "kubeletsim-node"
	// DefaultKubeletVersion is what nodeInfo.kubeletVersion says.
	DefaultKubeletVersion = "v1.37.2"
	// DefaultContainerRuntimeVersion is what nodeInfo.containerRuntimeVersion says.
	DefaultContainerRuntimeVersion = "containerd://2.1.4"
	// DefaultBackoffInitial and DefaultBackoffMax compress the kubelet's image
	// back-off (10 s → 300 s) by a factor of 50.
	DefaultBackoffInitial = 200 * time.Millisecond
	DefaultBackoffMax     = 6 * time.Second
	// DefaultPullTimeout bounds one pull attempt (all requests of it).
	DefaultPullTimeout = 2 * time.Second
	// DefaultWorkers is the size of the worker pool.
	DefaultWorkers = 16
	// DefaultMaxPods is the node's pods capacity, as a kubelet's default.
	DefaultMaxPods = 110
	// DefaultUserAgent identifies the simulator's registry requests, so a
	// benchmark can tell them from the bot's.
	DefaultUserAgent = "kubeletsim containerd/2.1.4"

	// kubeletBackoffInitial is the real kubelet's initial image back-off; the
	// ratio to the configured one is the time compression factor.
	kubeletBackoffInitial = 10 * time.Second
)

type config struct {
	nodeNames      []string
	os, arch       string
	variant        string
	mirrors        map[string]string
	keychain       authn.Keychain
	transport      http.RoundTripper
	backoffInitial time.Duration
	backoffMax     time.Duration
	pullTimeout    time.Duration
	logger         *slog.Logger
	workers        int
	namespace      string
	present        []string
	maxPods        int
	userAgent      string
	leaseRenew     time.Duration
	leaseDuration  int32
	containerd     ContainerdVersion
	noNormalEvents bool
}

func newConfig(opts []Option) *config {
	c := &config{
		os:             "linux",
		arch:           "amd64",
		mirrors:        map[string]string{},
		keychain:       nil,
		backoffInitial: DefaultBackoffInitial,
		backoffMax:     DefaultBackoffMax,
		pullTimeout:    DefaultPullTimeout,
		workers:        DefaultWorkers,
		maxPods:        DefaultMaxPods,
		userAgent:      DefaultUserAgent,
		leaseRenew:     10 * time.Second,
		leaseDuration:  40,
		containerd:     Containerd2,
	}
	for _, o := range opts {
		o(c)
	}
	if len(c.nodeNames) == 0 {
		c.nodeNames = []string{DefaultNodePrefix + "-0"}
	}
	if c.logger == nil {
		c.logger = slog.New(slog.DiscardHandler)
	}
	if c.transport == nil {
		c.transport = defaultTransport()
	}
	if c.backoffMax < c.backoffInitial {
		c.backoffMax = c.backoffInitial
	}
	if c.workers < 1 {
		c.workers = 1
	}
	return c
}

// defaultTransport is ggcr's default transport with timeouts on every phase,
// so a registry that accepts and never answers cannot hold a worker past the
// pull timeout even if a context were lost.
func defaultTransport() http.RoundTripper {
	tr := remote.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	tr.TLSHandshakeTimeout = 5 * time.Second
	tr.ResponseHeaderTimeout = 10 * time.Second
	tr.MaxIdleConnsPerHost = 64
	return tr
}

// compression is how many times faster than a real kubelet the simulator runs.
func (c *config) compression() float64 {
	return float64(kubeletBackoffInitial) / float64(c.backoffInitial)
}

// WithNodeNames sets the nodes' names. Default: one node, DefaultNodePrefix+"-0".
func WithNodeNames(names ...string) Option {
	return func(c *config) { c.nodeNames = append([]string(nil), names...) }
}

// WithNodeCount registers n nodes named "<prefix>-0" … "<prefix>-(n-1)"
// (prefix "" means DefaultNodePrefix). Use about one node per 100 pods, as a
// real cluster would (110 pods per node by default).
func WithNodeCount(prefix string, n int) Option {
	return func(c *config) {
		if prefix == "" {
			prefix = DefaultNodePrefix
		}
		c.nodeNames = nil
		for i := range n {
			c.nodeNames = append(c.nodeNames, fmt.Sprintf("%s-%d", prefix, i))
		}
	}
}

// WithPlatform sets the nodes' OS and architecture (and an optional variant
// such as "v8"). Default: linux/amd64.
func WithPlatform(os, arch, variant string) Option {
	return func(c *config) { c.os, c.arch, c.variant = os, arch, variant }
}

// WithMirrors maps registry hosts named in pod specs ("public.ecr.aws",
// "docker.io", "123456789012.dkr.ecr.us-west-2.amazonaws.com") to the host
// that actually serves the bytes ("127.0.0.1:PORT"), as a containerd
// hosts.toml mirror would. Messages still name the original host. A host
// missing from the map is contacted as itself. Default: none.
func WithMirrors(m map[string]string) Option {
	return func(c *config) {
		for k, v := range m {
			c.mirrors[k] = v
		}
	}
}

// WithKeychain sets the node's own credentials (kubelet credential providers,
// the node's IAM role). It is resolved against the ORIGINAL registry host.
// Default: none (anonymous).
func WithKeychain(k authn.Keychain) Option {
	return func(c *config) { c.keychain = k }
}

// WithTransport sets the HTTP transport used to reach registries (for a test
// CA, say). Default: ggcr's default transport with dial, TLS-handshake and
// response-header timeouts.
func WithTransport(t http.RoundTripper) Option {
	return func(c *config) { c.transport = t }
}

// WithBackoff sets the image-pull back-off: initial delay and cap. The
// kubelet uses 10 s and 300 s; the default here is 200 ms and 6 s (50×
// faster). The pod worker's re-sync period is the initial delay with up to
// 50% jitter, as the kubelet's is; the event correlator's spam filter and
// aggregation window are compressed by the same factor.
func WithBackoff(initial, max time.Duration) Option {
	return func(c *config) {
		if initial > 0 {
			c.backoffInitial = initial
		}
		if max > 0 {
			c.backoffMax = max
		}
	}
}

// WithPullTimeout bounds one pull attempt, all its requests included.
// Default: 2 s (a black-holed route answers with an i/o timeout after it).
func WithPullTimeout(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.pullTimeout = d
		}
	}
}

// WithLogger sets the logger. Default: discard.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) { c.logger = l }
}

// WithWorkers sets the number of pod workers. Default: DefaultWorkers.
func WithWorkers(n int) Option {
	return func(c *config) { c.workers = n }
}

// WithNamespace restricts the simulator to one namespace, so several
// simulators can share a control plane (one per test). Default: all.
func WithNamespace(ns string) Option {
	return func(c *config) { c.namespace = ns }
}

// WithPresentImages preloads images on every node (as if pulled earlier),
// for imagePullPolicy Never/IfNotPresent. Default: none.
func WithPresentImages(refs ...string) Option {
	return func(c *config) { c.present = append(c.present, refs...) }
}

// WithMaxPods sets each node's pods capacity. Default: 110. The binder
// spreads pods round-robin and does not enforce it.
func WithMaxPods(n int) Option {
	return func(c *config) { c.maxPods = n }
}

// WithUserAgent sets the User-Agent of registry requests. Default:
// DefaultUserAgent.
func WithUserAgent(ua string) Option {
	return func(c *config) { c.userAgent = ua }
}

// WithLeaseRenewInterval sets how often node Leases are renewed. Default: 10 s
// (the kubelet's: a quarter of the 40 s lease duration).
func WithLeaseRenewInterval(d time.Duration) Option {
	return func(c *config) {
		if d > 0 {
			c.leaseRenew = d
		}
	}
}

// ContainerdVersion selects whose words the simulator writes: containerd
// 2.x (the default, what EKS and most clusters run) or 1.6 (Debian 12's,
// which the real test node runs; see internal/testenv/node's honesty test).
type ContainerdVersion string

const (
	Containerd2  ContainerdVersion = "2.1.4"
	Containerd16 ContainerdVersion = "1.6.20"
)

// WithContainerdVersion makes the nodes report containerd v (nodeInfo,
// User-Agent) and write its error texts where they differ. Default:
// Containerd2.
// WithoutNormalEvents drops the Normal events (Scheduled, Pulling, Pulled,
// Created, Started, Killing) and keeps the Warning ones (Failed, BackOff,
// …). For scale: 100,000 healthy pods would otherwise be half a million
// event writes the API server must take before the benchmark starts,
// events the bot never reads (it watches Warning events with reason
// Failed). Default: every event, as the kubelet records them.
func WithoutNormalEvents() Option { return func(c *config) { c.noNormalEvents = true } }

func WithContainerdVersion(v ContainerdVersion) Option {
	return func(c *config) {
		c.containerd = v
		if c.userAgent == DefaultUserAgent {
			c.userAgent = "kubeletsim containerd/" + string(v)
		}
	}
}
