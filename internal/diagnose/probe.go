package diagnose

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Prober asks registries about images the way the kubelet would pull them:
// with the pod's credentials, through the nodes' mirrors, with a hard
// timeout and no hidden retries. It is safe for concurrent use; results are
// cached per (image, credential identity, platform) and probes are bounded
// per registry host.
type Prober struct {
	o        options
	rt       *observingTransport
	limiter  *hostLimiter
	results  *resultCache[ProbeResult]
	lists    *resultCache[listResult]
	down     *unreachableMemo
	requests atomic.Int64
}

// NewProber returns a Prober; see the With* options for the defaults.
func NewProber(opts ...Option) (*Prober, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	p := &Prober{
		o:       o,
		limiter: newHostLimiter(o.concurrency),
		results: newResultCache[ProbeResult](o.cacheTTL),
		lists:   newResultCache[listResult](o.cacheTTL),
		down:    newUnreachableMemo(o.cacheTTL),
	}
	p.rt = &observingTransport{
		inner:   newBaseTransport(o.base, o.timeout),
		logger:  o.logger,
		pingTTL: o.cacheTTL,
		observer: func(ri RequestInfo) {
			p.requests.Add(1)
			if o.observer != nil {
				o.observer(ri)
			}
		},
	}
	return p, nil
}

// Requests is the number of HTTP requests this Prober has sent, failed
// attempts included (cached pings are not requests).
func (p *Prober) Requests() int64 { return p.requests.Load() }

// Timeout is the per-probe deadline the Prober was built with.
func (p *Prober) Timeout() time.Duration { return p.o.timeout }

// ProbeResult is what the registry said about one image.
type ProbeResult struct {
	// Image is the reference as asked, which every message shows.
	Image string `json:"image"`
	// Fetched is the reference actually fetched when a mirror applies.
	Fetched string `json:"fetched,omitempty"`
	// OK is true when the manifest exists and, where the probe could tell,
	// has the node's platform.
	OK bool `json:"ok"`
	// Cause is empty when OK; otherwise why not (design §3).
	Cause  Cause  `json:"cause,omitempty"`
	Detail string `json:"detail,omitempty"`
	// Digest and MediaType of the manifest (the index, for multi-arch).
	Digest    string `json:"digest,omitempty"`
	MediaType string `json:"mediaType,omitempty"`
	// Platforms the image offers: the index entries, or the config's
	// os/architecture when the probe read it; nil when unknown.
	Platforms []Platform `json:"platforms,omitempty"`
	// Steps are the requests made, in order; Duration their wall time.
	Steps    []ProbeStep   `json:"steps,omitempty"`
	Duration time.Duration `json:"duration"`
	// Cached is true when this answer was reused.
	Cached bool `json:"cached,omitempty"`
	// Err is the typed error behind Cause (nil when OK).
	Err *ProbeError `json:"-"`
}

// Reached reports whether the probe got an HTTP answer from the registry
// (as opposed to a DNS, connection, TLS or timeout failure).
func (r ProbeResult) Reached() bool {
	if r.OK {
		return true
	}
	switch r.Cause {
	case DNSFailure, NetworkTimeout, ConnectionRefused, TLSError, HTTPVsHTTPS, RegistryUnavailable:
		// A 5xx came from the registry's front, but says nothing of the
		// image: it did not answer the question.
		return false
	case Unknown:
		return r.Err != nil && r.Err.Status != 0
	}
	return true
}

// probeMode says how much a probe has to establish.
type probeMode struct {
	// readConfig: for a single-platform manifest, read the config blob to
	// learn its os/architecture (candidates must match the node).
	readConfig bool
	// checkChild: for an index, HEAD the node's child manifest (an index
	// may point to a manifest that is gone).
	checkChild bool
}

func (m probeMode) key() string {
	return fmt.Sprintf("%t%t", m.readConfig, m.checkChild)
}

// Probe asks the registry for image with the credentials kc resolves
// (nil means anonymous) and checks the result against the node platform
// (the zero Platform means linux/amd64). On success it costs one manifest
// GET (plus a token exchange on registries with bearer auth; pings are
// cached); on failure a few requests more at most.
func (p *Prober) Probe(ctx context.Context, image string, kc authn.Keychain, platform Platform) ProbeResult {
	return p.probe(ctx, image, kc, platform, probeMode{})
}

// Verify is Probe for a candidate: it also reads the config of a
// single-platform image, so a candidate is offered only when it is known to
// run on the node.
func (p *Prober) Verify(ctx context.Context, image string, kc authn.Keychain, platform Platform) ProbeResult {
	return p.probe(ctx, image, kc, platform, probeMode{readConfig: true})
}

// target is an image reference resolved against the mirrors.
type target struct {
	ref   name.Reference // as written
	fetch name.Reference // where the bytes come from
}

func (p *Prober) parse(image string) (target, error) {
	ref, err := name.ParseReference(image)
	if err != nil {
		return target{}, err
	}
	fetch, err := p.rebase(ref)
	if err != nil {
		return target{}, err
	}
	return target{ref: ref, fetch: fetch}, nil
}

// rebase moves ref to its mirror (and to plain HTTP when configured).
func (p *Prober) rebase(ref name.Reference) (name.Reference, error) {
	host := ref.Context().RegistryStr()
	mirror, mirrored := p.o.mirrors.Lookup(host)
	if !mirrored && !p.o.insecure[normalizeRegistry(host)] {
		return ref, nil
	}
	if mirrored {
		host = mirror
	}
	var ropts []name.Option
	if p.o.insecure[normalizeRegistry(host)] {
		ropts = append(ropts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, ropts...)
	if err != nil {
		return nil, err
	}
	repo := reg.Repo(ref.Context().RepositoryStr())
	switch r := ref.(type) {
	case name.Digest:
		return repo.Digest(r.DigestStr()), nil
	case name.Tag:
		return repo.Tag(r.TagStr()), nil
	}
	return nil, fmt.Errorf("unexpected reference type %T", ref)
}

func (p *Prober) rebaseRepo(repo name.Repository) (name.Repository, error) {
	r, err := p.rebase(repo.Tag("latest"))
	if err != nil {
		return name.Repository{}, err
	}
	return r.Context(), nil
}

func (p *Prober) probe(ctx context.Context, image string, kc authn.Keychain, platform Platform, mode probeMode) ProbeResult {
	start := time.Now()
	res := ProbeResult{Image: image}
	tg, err := p.parse(image)
	if err != nil {
		res.Err = classifyError(err, errorContext{})
		res.Cause, res.Detail = res.Err.Cause, res.Err.Detail
		return res
	}
	if tg.fetch != tg.ref {
		res.Fetched = tg.fetch.String()
	}
	cred, err := p.resolve(ctx, kc, tg.ref.Context())
	if err != nil {
		res.Err = &ProbeError{Cause: Unknown, Err: err, Detail: oneLine(err)}
		res.Cause, res.Detail = Unknown, res.Err.Detail
		res.Duration = time.Since(start)
		return res
	}
	platform = defaultPlatform(platform)
	out := p.probeAs(ctx, tg, cred, platform, mode, start)
	out.Image = image
	if out.OK || !authRefused(out.Cause) {
		return out
	}
	// Refused: try the other matching credentials, as the kubelet does,
	// and keep every attempt's requests as evidence.
	first, steps, elapsed := out, out.Steps, out.Duration
	tried := p.otherCredentials(ctx, kc, tg.ref.Context(), cred, func(c credential) bool {
		r := p.probeAs(ctx, tg, c, platform, mode, time.Now())
		steps, elapsed = slices.Concat(steps, r.Steps), elapsed+r.Duration
		if r.OK || !authRefused(r.Cause) {
			out = r
			return true
		}
		return false
	})
	if tried == 1 {
		return first
	}
	out.Steps, out.Duration = steps, elapsed
	if !out.OK && authRefused(out.Cause) {
		// Every credential was refused: report the most specific one's
		// refusal, and that the others were tried too.
		out = first
		out.Steps, out.Duration = steps, elapsed
		out.Detail = fmt.Sprintf("%s (all %d matching credentials were refused)", first.Detail, tried)
		if first.Err != nil {
			e := *first.Err
			e.Detail = out.Detail
			out.Err = &e
		}
	}
	out.Image = image
	return out
}

// probeAs is one probe with one credential, through the result cache.
func (p *Prober) probeAs(ctx context.Context, tg target, cred credential, platform Platform, mode probeMode, start time.Time) ProbeResult {
	image := tg.ref.String()
	key := strings.Join([]string{image, cred.identity, platform.String(), mode.key()}, "|")
	out, hit, err := p.results.do(ctx, key, func() (ProbeResult, bool) {
		r := p.probeUncached(ctx, tg, cred, platform, mode)
		// A probe cut short by the caller says nothing about the registry.
		return r, ctx.Err() == nil
	})
	if err != nil {
		res := ProbeResult{Image: image, Fetched: fetchedOf(tg)}
		res.Err = &ProbeError{Cause: Unknown, Err: err, Detail: "probe abandoned: " + oneLine(err)}
		res.Cause, res.Detail = Unknown, res.Err.Detail
		res.Duration = time.Since(start)
		return res
	}
	out.Cached = hit
	if hit {
		out.Steps = nil
		out.Duration = 0
	}
	return out
}

func fetchedOf(tg target) string {
	if tg.fetch != tg.ref {
		return tg.fetch.String()
	}
	return ""
}

func (p *Prober) probeUncached(ctx context.Context, tg target, cred credential, platform Platform, mode probeMode) (res ProbeResult) {
	res = ProbeResult{Image: tg.ref.String()}
	if tg.fetch != tg.ref {
		res.Fetched = tg.fetch.String()
	}
	host := tg.fetch.Context().RegistryStr()
	if r, ok := p.down.check(host); ok {
		r.Image, r.Fetched = res.Image, res.Fetched
		return r
	}
	release, err := p.limiter.acquire(ctx, host)
	if err != nil {
		res.Err = &ProbeError{Cause: Unknown, Err: err, Detail: "waiting for a probe slot: " + oneLine(err)}
		res.Cause, res.Detail = Unknown, res.Err.Detail
		return res
	}
	defer release()
	// Probes that queued behind the slots of an unreachable host learn it
	// here instead of each waiting a timeout of its own.
	if r, ok := p.down.check(host); ok {
		r.Image, r.Fetched = res.Image, res.Fetched
		return r
	}
	caller := ctx // the probe's own deadline below is not the caller's
	defer func() {
		if caller.Err() == nil {
			p.down.note(host, res)
		}
	}()

	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, p.o.timeout)
	defer cancel()
	tr := &trace{}
	ctx = withTrace(ctx, tr)
	defer func() {
		res.Steps, _ = tr.snapshot()
		res.Duration = time.Since(start)
		lvl := slog.LevelInfo
		p.o.logger.LogAttrs(ctx, lvl, "registry probe",
			slog.String("image", res.Image), slog.String("fetched", res.Fetched),
			slog.Bool("ok", res.OK), slog.String("cause", string(res.Cause)),
			slog.String("detail", res.Detail), slog.Int("requests", len(res.Steps)),
			slog.Duration("elapsed", res.Duration))
	}()

	puller, err := remote.NewPuller(p.remoteOptions(ctx, cred.auth, platform)...)
	if err != nil {
		p.fail(&res, err, tr, cred, tg)
		return res
	}
	desc, err := puller.Get(ctx, tg.fetch)
	if err != nil {
		p.fail(&res, err, tr, cred, tg)
		if res.Cause == TagNotFound {
			// A 404 without a code (facts §2) does not say which is
			// missing, and some registries (GCR) answer MANIFEST_UNKNOWN
			// for a missing repository too: the tags list tells a
			// missing repository from a missing tag. Its first page is
			// kept for the nearest-tag search that follows.
			p.settleTag(ctx, &res, puller, tg, cred)
		}
		return res
	}
	res.Digest = desc.Digest.String()
	res.MediaType = string(desc.MediaType)

	if desc.MediaType.IsIndex() {
		im, err := v1.ParseIndexManifest(bytes.NewReader(desc.Manifest))
		if err != nil {
			p.fail(&res, err, tr, cred, tg)
			return res
		}
		var child *v1.Descriptor
		for i := range im.Manifests {
			m := &im.Manifests[i]
			pl := descriptorPlatform(m)
			if pl.OS == "unknown" {
				continue // buildx attestation manifests
			}
			res.Platforms = append(res.Platforms, pl)
			if child == nil && platformMatches(pl, platform) {
				child = m
			}
		}
		if child == nil {
			res.Cause = PlatformMismatch
			res.Detail = fmt.Sprintf("the index offers %s, not the node's %s", platformList(res.Platforms), platform)
			res.Err = &ProbeError{Cause: PlatformMismatch, Detail: res.Detail}
			return res
		}
		if mode.checkChild {
			if _, err := puller.Head(ctx, tg.fetch.Context().Digest(child.Digest.String())); err != nil {
				p.fail(&res, err, tr, cred, tg)
				if res.Cause == TagNotFound || res.Cause == RepoNotFound {
					res.Cause, res.Err.Cause = DigestNotFound, DigestNotFound
					res.Detail = fmt.Sprintf("the index points to %s for %s, which is missing: %s", child.Digest, platform, res.Detail)
					res.Err.Detail = res.Detail
				}
				return res
			}
		}
		res.OK = true
		return res
	}

	if mode.readConfig && desc.MediaType.IsImage() {
		img, err := desc.Image()
		if err == nil {
			var cf *v1.ConfigFile
			if cf, err = img.ConfigFile(); err == nil {
				pl := Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
				res.Platforms = []Platform{pl}
				if !platformMatches(pl, platform) {
					res.Cause = PlatformMismatch
					res.Detail = fmt.Sprintf("the image is built for %s, not the node's %s", pl, platform)
					res.Err = &ProbeError{Cause: PlatformMismatch, Detail: res.Detail}
					return res
				}
			}
		}
		if err != nil {
			p.fail(&res, err, tr, cred, tg)
			return res
		}
	}
	res.OK = true
	return res
}

// settleTag lists the repository's tags after a manifest was missing: a
// listing the registry refuses as missing (404, NAME_UNKNOWN) makes it
// RepoNotFound; a listing that works confirms the repository exists, and
// its page is cached for Tags. Any other answer leaves the registry's
// MANIFEST_UNKNOWN as it was.
func (p *Prober) settleTag(ctx context.Context, res *ProbeResult, puller *remote.Puller, tg target, cred credential) {
	var names []string
	lister, err := puller.Lister(ctx, tg.fetch.Context())
	if err == nil {
		var page *remote.Tags
		if page, err = lister.Next(ctx); err == nil {
			names = page.Tags
		}
	}
	if err == nil {
		key := "tags|" + tg.ref.Context().String() + "|" + cred.identity
		p.lists.do(ctx, key, func() (listResult, bool) { return listResult{names: names}, true })
		res.Detail += " (the repository exists: its tags list answers)"
		res.Err.Detail = res.Detail
		return
	}
	if le := classifyError(err, errorContext{}); le.Cause == RepoNotFound || le.Status == http.StatusNotFound {
		res.Cause, res.Err.Cause = RepoNotFound, RepoNotFound
		res.Detail += " (and the repository's tags list answers " + le.Detail + ")"
		res.Err.Detail = res.Detail
	}
}

func (p *Prober) fail(res *ProbeResult, err error, tr *trace, cred credential, tg target) {
	_, isDigest := tg.ref.(name.Digest)
	repo := tg.ref.Context()
	res.Err = classifyError(err, errorContext{
		anonymous:        cred.anonymous,
		tokenGranted:     tr.tokenGranted(),
		retryAfter:       tr.retryAfter(),
		digest:           isDigest,
		officialHubImage: repo.RegistryStr() == name.DefaultRegistry && strings.HasPrefix(repo.RepositoryStr(), "library/"),
	})
	res.Cause, res.Detail = res.Err.Cause, res.Err.Detail
}

func (p *Prober) remoteOptions(ctx context.Context, auth authn.Authenticator, platform Platform) []remote.Option {
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(p.rt),
		remote.WithAuth(auth),
		// No hidden retries: go-containerregistry's retry sleeps ignore
		// the context and would swallow the first answer (facts §1.4).
		// A zero Backoff would never send the request; Steps 1 sends once.
		remote.WithRetryBackoff(remote.Backoff{Duration: time.Second, Steps: 1}),
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes(),
		remote.WithUserAgent(p.o.userAgent),
		remote.WithPageSize(p.o.pageSize),
		remote.WithPlatform(v1.Platform{OS: platform.OS, Architecture: platform.Architecture, Variant: platform.Variant}),
	}
}

// withSlot runs fn holding a per-host slot and under the probe timeout,
// and returns the requests it made.
func (p *Prober) withSlot(ctx context.Context, host string, fn func(context.Context) error) ([]ProbeStep, error) {
	release, err := p.limiter.acquire(ctx, host)
	if err != nil {
		return nil, err
	}
	defer release()
	ctx, cancel := context.WithTimeout(ctx, p.o.timeout)
	defer cancel()
	tr := &trace{}
	err = fn(withTrace(ctx, tr))
	steps, _ := tr.snapshot()
	return steps, err
}
