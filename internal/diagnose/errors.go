package diagnose

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ProbeError is why a registry probe failed, mapped to a cause of design
// §3. Test for it with errors.As; the original error stays reachable with
// errors.Unwrap / errors.As (a *transport.Error, *net.DNSError, …).
type ProbeError struct {
	Cause Cause
	// Status is the HTTP status, 0 when no response came back.
	Status int
	// Code is the registry error code (NAME_UNKNOWN, DENIED, …), if any.
	Code string
	// RetryAfter is the registry's Retry-After header on a 429, verbatim.
	RetryAfter string
	// Detail is one line for a person: what the registry or network said.
	Detail string
	Err    error
}

func (e *ProbeError) Error() string {
	if e.Detail != "" {
		return fmt.Sprintf("%s: %s", e.Cause, e.Detail)
	}
	if e.Err != nil {
		return fmt.Sprintf("%s: %v", e.Cause, e.Err)
	}
	return string(e.Cause)
}

func (e *ProbeError) Unwrap() error { return e.Err }

// errorContext is what classifyError needs beyond the error itself.
type errorContext struct {
	// anonymous: no credentials were presented.
	anonymous bool
	// tokenGranted: a bearer token service accepted the credentials.
	tokenGranted bool
	// retryAfter: the Retry-After header seen, if any.
	retryAfter string
	// digest: the reference names a digest, so a missing manifest is a
	// missing digest.
	digest bool
	// hub: the registry is Docker Hub, where library/ images are public.
	officialHubImage bool
}

// classifyError maps an error from go-containerregistry to a cause. It uses
// errors.As/Is throughout: since Go 1.20 x509 errors come wrapped in
// *tls.CertificateVerificationError, and ping errors can be a multi-error
// of the HTTPS and HTTP attempts (facts §1.3).
func classifyError(err error, ec errorContext) *ProbeError {
	pe := &ProbeError{Cause: Unknown, Err: err, Detail: oneLine(err)}

	var te *transport.Error
	if errors.As(err, &te) {
		pe.Status = te.StatusCode
		for _, d := range te.Errors {
			if pe.Code == "" {
				pe.Code = string(d.Code)
			}
		}
		classifyRegistryError(pe, te, ec)
		return pe
	}

	var (
		dnsErr   *net.DNSError
		certErr  *tls.CertificateVerificationError
		authErr  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invErr   x509.CertificateInvalidError
		recErr   tls.RecordHeaderError
		alertErr tls.AlertError
		badName  *name.ErrBadName
	)
	switch {
	case errors.As(err, &badName):
		pe.Cause = InvalidReference
	case errors.Is(err, http.ErrSchemeMismatch):
		pe.Cause = HTTPVsHTTPS
		pe.Detail = "the registry answered plain HTTP to an HTTPS request: " + pe.Detail
	case errors.As(err, &certErr), errors.As(err, &authErr), errors.As(err, &hostErr),
		errors.As(err, &invErr), errors.As(err, &recErr), errors.As(err, &alertErr):
		pe.Cause = TLSError
	case errors.As(err, &dnsErr):
		// A lookup that timed out is still a DNS problem (design §3).
		pe.Cause = DNSFailure
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		pe.Cause = ConnectionRefused
	case errors.Is(err, context.DeadlineExceeded), isTimeout(err):
		pe.Cause = NetworkTimeout
	case errors.Is(err, context.Canceled):
		pe.Detail = "the probe was cancelled: " + pe.Detail
	}
	return pe
}

func classifyRegistryError(pe *ProbeError, te *transport.Error, ec errorContext) {
	codes := map[transport.ErrorCode]string{}
	for _, d := range te.Errors {
		codes[d.Code] = d.Message
	}
	has := func(c transport.ErrorCode) bool { _, ok := codes[c]; return ok }
	atToken := te.Request != nil && !strings.HasPrefix(te.Request.URL.Path, "/v2/")

	switch {
	case has(transport.TooManyRequestsErrorCode) || te.StatusCode == http.StatusTooManyRequests:
		pe.Cause = RateLimited
		pe.RetryAfter = ec.retryAfter
		if pe.RetryAfter != "" {
			pe.Detail += " (Retry-After: " + pe.RetryAfter + ")"
		}
	case te.StatusCode >= 500 && te.StatusCode <= 599, has(transport.UnavailableErrorCode):
		// The registry (or its token service, or the proxy in front) is
		// failing: nothing is known about the image.
		pe.Cause = RegistryUnavailable
		pe.Detail = "the registry answered a server error: " + pe.Detail
	case atToken && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden):
		switch {
		case ec.anonymous:
			// An anonymous token refused: the repository is private or
			// missing, and the registry declines to say which.
			pe.Cause = NotFoundOrUnauthorized
			pe.Detail = "the registry's token service refused an anonymous pull (the repository is private, or does not exist): " + pe.Detail
		case te.StatusCode == http.StatusForbidden:
			pe.Cause = AccessDenied
			pe.Detail = "the registry's token service refused the pod's credentials for this repository: " + pe.Detail
		default:
			pe.Cause = Unauthorized
			pe.Detail = "the registry's token service rejected the credentials: " + pe.Detail
		}
	case has(transport.NameUnknownErrorCode):
		pe.Cause = RepoNotFound
	case has(transport.ManifestUnknownErrorCode):
		pe.Cause = TagNotFound
		if ec.digest {
			pe.Cause = DigestNotFound
		}
	case expired(codes, pe.Detail) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden):
		pe.Cause = CredentialsExpired
	case te.StatusCode == http.StatusUnauthorized || (has(transport.UnauthorizedErrorCode) && te.StatusCode != http.StatusForbidden):
		// A 401 is about credentials even when the body says DENIED
		// (ECR answers anonymous requests 401 DENIED "Not Authorized").
		classifyUnauthorized(pe, ec)
	case has(transport.DeniedErrorCode) || te.StatusCode == http.StatusForbidden:
		if ec.anonymous {
			// A refusal of a pull that presented no credentials says
			// only that the image is not public (GHCR, GitLab, Harbor
			// answer so for missing repositories too).
			pe.Cause = NotFoundOrUnauthorized
			pe.Detail = "anonymous pull refused: the repository does not exist, or it is private: " + pe.Detail
		} else {
			pe.Cause = AccessDenied
		}
	case te.StatusCode == http.StatusNotFound:
		// No code (a HEAD, or a registry that sends none): the caller
		// settles repository vs tag with a tags list.
		pe.Cause = TagNotFound
		if ec.digest {
			pe.Cause = DigestNotFound
		}
	case te.StatusCode == http.StatusBadRequest && strings.Contains(pe.Detail, "HTTP request to an HTTPS server"):
		pe.Cause = HTTPVsHTTPS
	}
}

// classifyUnauthorized settles a 401 from a repository path. Docker Hub
// answers 401 for missing and private repositories alike (facts §3.4);
// what the probe knows about the credentials decides how far it can go.
func classifyUnauthorized(pe *ProbeError, ec errorContext) {
	switch {
	case !ec.tokenGranted:
		// No token service involved (Basic auth, or none): plainly no
		// valid credentials.
		pe.Cause = Unauthorized
	case !ec.anonymous:
		// The token service accepted the pod's own credentials and the
		// registry still refuses the repository: treat it as missing
		// (it may also be private to another account).
		pe.Cause = RepoNotFound
		pe.Detail = "the registry accepted the pod's credentials but refused the repository (it does not exist, or this account cannot see it): " + pe.Detail
	case ec.officialHubImage:
		// Docker Hub official images are public: a 401 means missing.
		pe.Cause = RepoNotFound
		pe.Detail = "Docker Hub official images are public, so the 401 means the repository does not exist: " + pe.Detail
	default:
		pe.Cause = NotFoundOrUnauthorized
		pe.Detail = "anonymous pull refused: the repository does not exist, or it is private: " + pe.Detail
	}
}

// expired recognises "Your authorization token has expired" (ECR) and
// the like in a DENIED/UNAUTHORIZED answer.
func expired(codes map[transport.ErrorCode]string, detail string) bool {
	text := strings.ToLower(detail)
	for _, m := range codes {
		text += " " + strings.ToLower(m)
	}
	return strings.Contains(text, "expired")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// oneLine keeps an error on one line for Slack and logs.
func oneLine(err error) string {
	if err == nil {
		return ""
	}
	s := strings.Join(strings.Fields(err.Error()), " ")
	const max = 400
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}
