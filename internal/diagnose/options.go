package diagnose

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"
)

// Defaults of a Prober. Each is documented on the option that changes it.
const (
	DefaultTimeout     = 5 * time.Second
	DefaultCacheTTL    = 30 * time.Second
	DefaultConcurrency = 4
	// DefaultCatalogPages bounds how many /v2/_catalog pages a candidate
	// search reads (of DefaultPageSize names each).
	DefaultCatalogPages = 2
	// DefaultPageSize is the n= of tags-list and catalog requests; ECR
	// rejects more than 1000.
	DefaultPageSize = 1000
)

// Option configures a Prober (go-containerregistry style: the zero set of
// options is a working, conservative probe).
type Option func(*options) error

// RequestInfo describes one HTTP request a Prober sent, for its observer.
// It never carries headers or bodies, so it holds no secrets.
type RequestInfo struct {
	Method string
	// Host is the host the bytes came from (the mirror, when one applies).
	Host string
	Path string
	// Status is 0 when the request failed before a response (Err is set).
	Status   int
	Err      error
	Duration time.Duration
}

type options struct {
	timeout      time.Duration
	mirrors      Mirrors
	base         http.RoundTripper
	insecure     map[string]bool
	cacheTTL     time.Duration
	concurrency  int
	logger       *slog.Logger
	observer     func(RequestInfo)
	userAgent    string
	catalogPages int
	pageSize     int
}

func defaultOptions() options {
	return options{
		timeout:      DefaultTimeout,
		cacheTTL:     DefaultCacheTTL,
		concurrency:  DefaultConcurrency,
		logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		userAgent:    "pullfix",
		catalogPages: DefaultCatalogPages,
		pageSize:     DefaultPageSize,
		insecure:     map[string]bool{},
	}
}

// WithTimeout sets the hard deadline of one probe of one image: keychain
// resolution, ping, token and manifest requests together. The dial,
// TLS-handshake and response-header timeouts of the transport are set to
// it as well, so a server that accepts and never answers cannot hold a
// probe longer. Default DefaultTimeout (5s).
func WithTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("probe timeout must be positive, got %s", d)
		}
		o.timeout = d
		return nil
	}
}

// WithMirrors makes the probe fetch from the mirror configured for the
// nodes (containerd hosts.toml, PULLFIX_REGISTRY_MIRRORS), because that is
// where the kubelet's bytes come from. Messages and candidates still name
// the original reference. Default: no mirrors.
func WithMirrors(m Mirrors) Option {
	return func(o *options) error {
		o.mirrors = m.clone()
		return nil
	}
}

// WithTransport sets the base transport (e.g. one that trusts a private CA,
// or dials through a test resolver). An *http.Transport is cloned and given
// the probe's timeouts; any other RoundTripper is used as it is and bounded
// only by the per-probe deadline. Default remote.DefaultTransport.
func WithTransport(rt http.RoundTripper) Option {
	return func(o *options) error {
		o.base = rt
		return nil
	}
}

// WithInsecureRegistries lists registry hosts (as written in references or
// as mirror targets) reached over plain HTTP, like the runtime's
// insecure-registry setting. Loopback and RFC 1918 hosts are always allowed
// to fall back to HTTP (go-containerregistry's rule). Default: none.
func WithInsecureRegistries(hosts ...string) Option {
	return func(o *options) error {
		for _, h := range hosts {
			o.insecure[normalizeRegistry(h)] = true
		}
		return nil
	}
}

// WithCacheTTL sets how long a probe result is reused for the same image
// and credential identity, so fifty pods of one Deployment cost one probe.
// Zero disables the cache. Default DefaultCacheTTL (30s).
func WithCacheTTL(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("cache TTL must not be negative, got %s", d)
		}
		o.cacheTTL = d
		return nil
	}
}

// WithConcurrency bounds the probes in flight per registry host, so that
// an outage (every probe hanging until its timeout) never becomes a
// request storm. Default DefaultConcurrency (4).
func WithConcurrency(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("concurrency must be at least 1, got %d", n)
		}
		o.concurrency = n
		return nil
	}
}

// WithLogger sets the logger (debug: each request; info: probe results).
// Credentials are never logged. Default: discard.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l != nil {
			o.logger = l
		}
		return nil
	}
}

// WithRequestObserver calls f after every HTTP request the probe sends
// (including failed attempts), e.g. to export a metric or to count
// requests per image in a benchmark. f must be safe for concurrent use.
// Default: none.
func WithRequestObserver(f func(RequestInfo)) Option {
	return func(o *options) error {
		o.observer = f
		return nil
	}
}

// WithUserAgent sets the User-Agent prefix of probe requests. Default "pullfix".
func WithUserAgent(ua string) Option {
	return func(o *options) error {
		o.userAgent = ua
		return nil
	}
}

// WithCatalogPages bounds the /v2/_catalog pages read when looking for the
// closest repository name; 0 disables the catalog. Default DefaultCatalogPages.
func WithCatalogPages(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return fmt.Errorf("catalog pages must not be negative, got %d", n)
		}
		o.catalogPages = n
		return nil
	}
}
