package diagnose

// The cause families: each set of causes that share a remedy is written
// once, here, and every package asks the cause which family it is in.

// Credentials reports a refusal that other credentials may overcome (no,
// rejected, expired or insufficient credentials, or a registry that will
// not say whether the image is missing or private): the prober tries the
// pod's other credentials, and a working pull secret fixes it.
func (c Cause) Credentials() bool {
	switch c {
	case Unauthorized, AccessDenied, CredentialsExpired, NotFoundOrUnauthorized:
		return true
	}
	return false
}

// NotFound reports a missing repository, tag, digest or image (or one the
// registry may be hiding).
func (c Cause) NotFound() bool {
	switch c {
	case RepoNotFound, TagNotFound, DigestNotFound, ImageNotFound, NotFoundOrUnauthorized:
		return true
	}
	return false
}

// Network reports that the registry's host could not be reached.
func (c Cause) Network() bool {
	switch c {
	case DNSFailure, NetworkTimeout, ConnectionRefused:
		return true
	}
	return false
}

// Connect reports a failure to connect to the registry: the network, TLS,
// or HTTP spoken to an HTTPS port.
func (c Cause) Connect() bool { return c.Network() || c == TLSError || c == HTTPVsHTTPS }

// RegistryWide reports a cause that belongs to a registry or to the nodes'
// path to it rather than to one image: one fix (credentials, network,
// waiting) mends every workload that shares the registry, so a storm of
// them is one message. Not-found causes, platform mismatches and
// reference typos are per image.
func (c Cause) RegistryWide() bool {
	switch c {
	case Unauthorized, AccessDenied, CredentialsExpired, RateLimited, RegistryUnavailable,
		DNSFailure, NetworkTimeout, ConnectionRefused, TLSError, HTTPVsHTTPS:
		return true
	}
	return false
}

// FixedByImage reports a cause another image may fix (a missing
// repository, tag or platform; a denial that may hide a missing
// repository; an unknown failure), so candidates are worth looking for. A
// network, rate-limit or policy failure is fixed elsewhere.
func (c Cause) FixedByImage() bool {
	switch c {
	case RepoNotFound, TagNotFound, DigestNotFound, ImageNotFound, NotFoundOrUnauthorized,
		PlatformMismatch, Unauthorized, AccessDenied, Unknown:
		return true
	}
	return false
}
