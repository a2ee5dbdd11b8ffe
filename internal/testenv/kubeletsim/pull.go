package kubeletsim

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
)

// pulled is a successful pull: what the runtime then reports.
type pulled struct {
	imageID  string // repo@digest, containerd's imageRef
	name     string // containerd's image name
	size     int64
	duration time.Duration
}

// credential is one set of credentials the kubelet would try, and where it
// came from ("ns/name" of a Secret, "" for the node).
type credential struct {
	auth   authn.Authenticator
	secret string
}

// pull tries each credential in turn, as the kubelet's puller does
// (kuberuntime_image.go PullImage), and aggregates the errors with
// utilerrors.NewAggregate: one error prints alone, several as "[e1, e2]".
func (s *Simulator) pull(ctx context.Context, n *node, r imageRef, creds []credential) (pulled, *credential, error) {
	if len(creds) == 0 {
		p, err := s.pullOnce(ctx, n, r, authn.Anonymous)
		return p, nil, err
	}
	var errs []error
	for i := range creds {
		p, err := s.pullOnce(ctx, n, r, creds[i].auth)
		if err == nil {
			return p, &creds[i], nil
		}
		errs = append(errs, err)
	}
	return pulled{}, nil, utilerrors.NewAggregate(errs)
}

// pullOnce resolves (HEAD) and fetches (GET by digest) the manifest, and for
// an index the node platform's manifest, through the node's route. Layers are
// not fetched: a manifest that resolves is a pull that works.
func (s *Simulator) pullOnce(ctx context.Context, n *node, r imageRef, auth authn.Authenticator) (pulled, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.pullTimeout)
	defer cancel()
	target := s.route(r.domain)
	rec := &recorder{base: s.cfg.transport}
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(rec),
		remote.WithAuth(auth),
		// No hidden retries: their sleeps ignore the context (facts/registry.md §1.4).
		remote.WithRetryBackoff(remote.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 1}),
		remote.WithUserAgent(s.cfg.userAgent),
	}
	withCreds := auth != authn.Anonymous
	repo, err := name.NewRepository(target + "/" + r.path)
	if err != nil {
		return pulled{}, errRequest(r, "", err.Error())
	}
	var ref name.Reference = repo.Tag(r.tag)
	if r.digest != "" {
		ref = repo.Digest(r.digest)
	}
	desc, err := remote.Head(ref, opts...)
	if err != nil {
		return pulled{}, s.classify(ctx, r, rec, target, withCreds, "", err)
	}
	dgst := desc.Digest.String()
	got, err := remote.Get(repo.Digest(dgst), opts...)
	if err != nil {
		return pulled{}, s.classify(ctx, r, rec, target, withCreds, dgst, err)
	}
	var size int64
	switch {
	case got.MediaType.IsIndex():
		idx, err := v1.ParseIndexManifest(bytes.NewReader(got.Manifest))
		if err != nil {
			return pulled{}, errPlatform(r)
		}
		child, ok := n.match(idx.Manifests)
		if !ok {
			return pulled{}, errPlatform(r)
		}
		cd, err := remote.Get(repo.Digest(child.Digest.String()), opts...)
		if err != nil {
			return pulled{}, s.classify(ctx, r, rec, target, withCreds, child.Digest.String(), err)
		}
		m, err := v1.ParseManifest(bytes.NewReader(cd.Manifest))
		if err == nil {
			size = manifestSize(m)
		}
	default:
		m, err := v1.ParseManifest(bytes.NewReader(got.Manifest))
		if err == nil {
			size = manifestSize(m)
		}
		// A single-platform image is checked against its config, as
		// containerd's platform matcher reads it.
		img, err := got.Image()
		if err == nil {
			cf, err := img.ConfigFile()
			if err != nil {
				return pulled{}, s.classify(ctx, r, rec, target, withCreds, dgst, err)
			}
			if cf.OS != "" && !n.matches(v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}) {
				return pulled{}, errPlatform(r)
			}
		}
	}
	return pulled{imageID: r.repoDigest(dgst), name: r.name(), size: size, duration: time.Since(start)}, nil
}

func manifestSize(m *v1.Manifest) int64 {
	n := m.Config.Size
	for _, l := range m.Layers {
		n += l.Size
	}
	return n
}

// classify turns a failed attempt into containerd's words, from what the
// registry actually answered (the recorder's log) rather than from ggcr's
// summary. fetchDigest is "" while resolving (HEAD), else the digest whose
// GET failed.
func (s *Simulator) classify(ctx context.Context, r imageRef, rec *recorder, target string, withCreds bool, fetchDigest string, ret error) error {
	log := rec.exchanges()
	// 1. A registry answer on the manifest.
	for i := len(log) - 1; i >= 0; i-- {
		x := log[i]
		if x.err != nil || x.status < 400 || !strings.Contains(x.path, "/manifests/") {
			continue
		}
		if fetchDigest != "" {
			return errFetchStatus(r, fetchDigest, x.statusText, errorBodyLines(x.codes, x.messages))
		}
		switch x.status {
		case http.StatusNotFound:
			return errNotFound(r)
		case http.StatusUnauthorized:
			if e := challengeError(x.challenge); e != "" && x.authorized {
				return errInsufficientScope(r, e)
			}
		}
		if s.cfg.containerd == Containerd16 {
			return errResolveStatus16(r, x.statusText)
		}
		return errResolveStatus(r, x.statusText)
	}
	// 2. The token endpoint refused.
	for i := len(log) - 1; i >= 0; i-- {
		x := log[i]
		if x.err != nil || x.status < 400 || strings.HasPrefix(x.path, "/v2/") {
			continue
		}
		return errTokenStatus(r, withCreds, s.originalURL(x.url, target, r), x.statusText)
	}
	if fetchDigest != "" && ret != nil {
		// A blob or child manifest failed without a status: rare, say it plainly.
		return &runtimeError{desc: "failed to pull and unpack image \"" + r.full + "\": failed to copy: " + ret.Error()}
	}
	// 3. No answer: the network, in containerd's order of likelihood.
	var errs []error
	for _, x := range log {
		if x.err != nil {
			errs = append(errs, x.err)
		}
	}
	if ret != nil {
		errs = append(errs, ret)
	}
	host := r.requestHost()
	for _, e := range errs {
		if isCertError(e) {
			return errRequest(r, "", certDetail(e))
		}
	}
	for _, e := range errs {
		var dns *net.DNSError
		if errors.As(e, &dns) {
			return errRequest(r, "", dnsDetail(host))
		}
	}
	for _, e := range errs {
		if isTimeout(e) {
			return errRequest(r, "DeadlineExceeded", timeoutDetail(host))
		}
	}
	if ctx.Err() != nil {
		return errRequest(r, "DeadlineExceeded", timeoutDetail(host))
	}
	for _, e := range errs {
		if errors.Is(e, syscall.ECONNREFUSED) {
			return errRequest(r, "", refusedDetail(host))
		}
	}
	for _, e := range errs {
		if strings.Contains(e.Error(), "server gave HTTP response to HTTPS client") {
			return errRequest(r, "", "http: server gave HTTP response to HTTPS client")
		}
	}
	if ret != nil {
		return errRequest(r, "", ret.Error())
	}
	return errRequest(r, "", "unknown error")
}

// originalURL names the original registry instead of the loopback mirror.
func (s *Simulator) originalURL(raw, target string, r imageRef) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	if u.Host == target {
		u.Host = r.requestHost()
	}
	u.Scheme = "https"
	return u.String()
}

// challengeError returns the error parameter of a Bearer challenge.
func challengeError(h string) string {
	if !strings.HasPrefix(strings.ToLower(h), "bearer ") {
		return ""
	}
	for _, p := range strings.Split(h[len("bearer "):], ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
		if ok && strings.EqualFold(k, "error") {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

func isCertError(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci)
}

// certDetail is Go's text for a failed verification. An unknown authority
// always reads the same on a node; other failures keep Go's own words.
func certDetail(err error) string {
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return "tls: failed to verify certificate: x509: certificate signed by unknown authority"
	}
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return cv.Error()
	}
	return "tls: failed to verify certificate: " + err.Error()
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
