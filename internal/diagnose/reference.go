package diagnose

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"github.com/distribution/reference"
)

// ReferenceError says why an image reference is invalid, in words a person
// can act on. The kubelet only says "invalid reference format"; Reason names
// the offending part.
type ReferenceError struct {
	// Ref is the reference as written.
	Ref string
	// Reason is a short phrase, e.g. "the repository path has upper-case
	// letters (Nginx)".
	Reason string
	// Err is the parser's own error, if any.
	Err error
}

func (e *ReferenceError) Error() string {
	return fmt.Sprintf("invalid image reference %q: %s", e.Ref, e.Reason)
}

// Unwrap returns the distribution/reference error behind the reason.
func (e *ReferenceError) Unwrap() error { return e.Err }

// tagRE is the tag grammar of the distribution spec.
var tagRE = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)

// CheckReference parses ref as the kubelet does (distribution/reference
// ParseNormalizedNamed, the parser behind InvalidImageName) and, when the
// kubelet would refuse it, returns a *ReferenceError that says why. It
// returns nil for references the kubelet accepts, even if no registry holds
// them.
func CheckReference(ref string) error {
	_, err := reference.ParseNormalizedNamed(ref)
	if err == nil {
		return nil
	}
	return &ReferenceError{Ref: ref, Reason: referenceReason(ref, err), Err: err}
}

// referenceReason looks at the text for the usual mistakes, most specific
// first, so the reason names the mistake rather than the parser's symptom.
func referenceReason(ref string, err error) string {
	switch {
	case strings.TrimSpace(ref) == "":
		return "the reference is empty"
	case strings.Contains(ref, "{{") || strings.Contains(ref, "}}") ||
		strings.Contains(ref, "${") || strings.Contains(ref, "$("):
		return "it contains an unrendered template ({{ … }} or ${…}); the chart or manifest was not rendered"
	case strings.IndexFunc(ref, unicode.IsSpace) >= 0:
		return "it contains whitespace"
	case strings.Contains(ref, "://"):
		return "it contains a URL scheme; write host/path:tag without http:// or https://"
	case strings.HasPrefix(ref, "/"):
		return "it starts with a slash (an empty registry or variable before it?)"
	case strings.HasSuffix(ref, ":") || strings.HasSuffix(ref, "@"):
		return "it ends with a separator but no tag or digest (an empty variable?)"
	case strings.Contains(ref, "//"):
		return "it has an empty path component (//)"
	}
	name, tag, dgst := splitReference(ref)
	switch {
	case errors.Is(err, reference.ErrNameContainsUppercase) || strings.Contains(err.Error(), "must be lowercase"):
		return fmt.Sprintf("the repository path has upper-case letters (%s); only the registry host may", repoPath(name))
	case errors.Is(err, reference.ErrNameTooLong):
		return "the repository name is longer than 255 characters"
	case strings.Contains(err.Error(), "64-byte hexadecimal"):
		return "it is a bare 64-character hex ID, not a repository name"
	case dgst != "" && !strings.HasPrefix(dgst, "sha256:") && !strings.HasPrefix(dgst, "sha512:"):
		return fmt.Sprintf("the digest %q has an unknown algorithm", dgst)
	case dgst != "" || errors.Is(err, reference.ErrDigestInvalidFormat) || strings.Contains(err.Error(), "digest"):
		return fmt.Sprintf("the digest %q is malformed (sha256: followed by 64 lower-case hex digits)", dgst)
	case tag != "" && !tagRE.MatchString(tag):
		return fmt.Sprintf("the tag %q is invalid (letters, digits, _ . - only, at most 128, not starting with . or -)", tag)
	}
	return fmt.Sprintf("the repository path %q is not valid (lower-case letters, digits and single . _ __ - separators between /-separated parts)", name)
}

// splitReference cuts ref into name, tag and digest without validating any
// of them: the tag is after the last colon that follows the last slash.
func splitReference(ref string) (name, tag, dgst string) {
	name = ref
	if i := strings.Index(name, "@"); i >= 0 {
		name, dgst = name[:i], name[i+1:]
	}
	if i := strings.LastIndex(name, ":"); i >= 0 && i > strings.LastIndex(name, "/") {
		name, tag = name[:i], name[i+1:]
	}
	return name, tag, dgst
}

// repoPath drops a registry host from name, as the kubelet's lower-case rule
// applies only to the path.
func repoPath(name string) string {
	if i := strings.Index(name, "/"); i > 0 && looksLikeHost(name[:i]) {
		return name[i+1:]
	}
	return name
}

// looksLikeHost applies the Docker rule for the first path component: it is
// a registry host if it is localhost or contains a dot or a colon.
func looksLikeHost(s string) bool {
	return s == "localhost" || strings.ContainsAny(s, ".:")
}

// RegistryHost returns the registry host an image is pulled from,
// normalised as the kubelet and containerd do: Docker Hub short names and
// its legacy host names become "docker.io". It returns "" when ref names
// nothing. It is pullfix's one registry-host normalisation: grouping,
// rendering, pull-secret matching and mirrors all go through it (or
// NormalizeHost for a bare host).
func RegistryHost(ref string) string { return registryOf(ref) }

func registryOf(ref string) string {
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return ""
	}
	if named, err := reference.ParseNormalizedNamed(ref); err == nil {
		return normaliseHost(reference.Domain(named))
	}
	// Invalid references still usually say where they point: up to the
	// first blank or template, the kubelet's domain split applies.
	if i := strings.IndexAny(ref, " \t{}$"); i >= 0 {
		ref = ref[:i]
	}
	if ref == "" {
		return ""
	}
	if i := strings.Index(ref, "/"); i > 0 && looksLikeHost(ref[:i]) {
		return normaliseHost(ref[:i])
	}
	return "docker.io"
}

// NormalizeHost maps Docker Hub's several host names (index.docker.io,
// registry-1.docker.io, registry.hub.docker.com, any case) to the one
// Kubernetes users see in image references, "docker.io"; other hosts are
// returned as given.
func NormalizeHost(h string) string {
	switch strings.ToLower(strings.TrimSpace(h)) {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com", "docker.io":
		return "docker.io"
	}
	return h
}

func normaliseHost(h string) string { return NormalizeHost(h) }

// isDigestRef reports whether a reference pins a digest: the runtime then
// pulls by digest and ignores any tag.
func isDigestRef(ref string) bool {
	return strings.Contains(ref, "@sha256:") || strings.Contains(ref, "@sha512:")
}
