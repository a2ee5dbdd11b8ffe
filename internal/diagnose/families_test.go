package diagnose

import "testing"

// TestCauseFamilies: each family, written once, as every package asks it.
func TestCauseFamilies(t *testing.T) {
	families := map[string]func(Cause) bool{
		"credentials": Cause.Credentials, "not found": Cause.NotFound, "network": Cause.Network,
		"connect": Cause.Connect, "registry-wide": Cause.RegistryWide, "fixed by image": Cause.FixedByImage,
	}
	want := map[string][]Cause{
		"credentials":    {Unauthorized, AccessDenied, CredentialsExpired, NotFoundOrUnauthorized},
		"not found":      {RepoNotFound, TagNotFound, DigestNotFound, ImageNotFound, NotFoundOrUnauthorized},
		"network":        {DNSFailure, NetworkTimeout, ConnectionRefused},
		"connect":        {DNSFailure, NetworkTimeout, ConnectionRefused, TLSError, HTTPVsHTTPS},
		"registry-wide":  {Unauthorized, AccessDenied, CredentialsExpired, RateLimited, RegistryUnavailable, DNSFailure, NetworkTimeout, ConnectionRefused, TLSError, HTTPVsHTTPS},
		"fixed by image": {RepoNotFound, TagNotFound, DigestNotFound, ImageNotFound, NotFoundOrUnauthorized, PlatformMismatch, Unauthorized, AccessDenied, Unknown},
	}
	all := []Cause{RepoNotFound, TagNotFound, DigestNotFound, ImageNotFound, NotFoundOrUnauthorized, Unauthorized, AccessDenied,
		CredentialsExpired, RateLimited, RegistryUnavailable, DNSFailure, NetworkTimeout, ConnectionRefused, TLSError, HTTPVsHTTPS,
		PlatformMismatch, InvalidReference, NeverPull, UnpackFailed, Unknown}
	for name, in := range families {
		members := map[Cause]bool{}
		for _, c := range want[name] {
			members[c] = true
		}
		for _, c := range all {
			if in(c) != members[c] {
				t.Errorf("%s(%s) = %v, want %v", name, c, in(c), members[c])
			}
		}
	}
}

// TestNormalizeHost: Docker Hub's names are one host.
func TestNormalizeHost(t *testing.T) {
	for in, want := range map[string]string{
		"docker.io": "docker.io", "index.docker.io": "docker.io", "registry-1.docker.io": "docker.io",
		"Registry.Hub.Docker.com": "docker.io", "ghcr.io": "ghcr.io", "localhost:5000": "localhost:5000",
	} {
		if got := NormalizeHost(in); got != want {
			t.Errorf("NormalizeHost(%q) = %q, want %q", in, got, want)
		}
	}
	if got := RegistryHost("registry.hub.docker.com/library/nginx:1"); got != "docker.io" {
		t.Errorf("RegistryHost(registry.hub.docker.com/…) = %q", got)
	}
}
