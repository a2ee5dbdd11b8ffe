package diagnose

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Classify decides why an image pull failed from the kubelet's words alone:
// the container's waiting reason and message, or a Failed/BackOff event's
// reason and message. It needs no network and no cluster, so `bot explain`
// and the watcher's first message share it.
//
// It reads every wording the kubelet has used (FailedSync events of
// Kubernetes ≤1.5, "image pull failed for … details:" of ≤1.3, numeric and
// named gRPC codes, the stripped prefix of 1.28+, RegistryUnavailable class
// prefixes, the 1.32+ back-off message that repeats the last error, the
// bracketed list of one error per credential tried) around the errors of
// containerd, CRI-O and Docker. Where the text cannot tell a missing image
// from a private one it says so (NotFoundOrUnauthorized) rather than guess,
// and a message without an error (a bare "Back-off pulling image") is
// Unknown with a summary that points at the events.
func Classify(reason, message string) Classification {
	windows := scanWindows(message)
	c := Classification{Cause: Unknown, Image: extractImage(windows[0])}
	for _, w := range windows {
		if c.Runtime == RuntimeUnknown {
			c.Runtime = detectRuntime(w)
		}
		if cause, ev := decide(w); c.Cause == Unknown || informativeness(resolvedRank(cause)) > informativeness(resolvedRank(c.Cause)) {
			c.Cause, c.Evidence = cause, ev
		}
	}
	c.Registry = registryOf(c.Image)
	if c.Registry == "" {
		c.Registry = extractHost(windows[0])
	}

	switch c.Cause {
	case manifestMissing, genericNotFound:
		c.Cause = notFoundCause(c.Cause, c.Evidence, c.Image)
	case forbidden:
		c.Cause = forbiddenCause(c.Registry, windows[0])
	case Unknown:
		c.Cause, c.Evidence = fromReason(reason, c.Image)
	}
	c.Certainty = CertaintyWords

	c.Summary, c.Remedy = Describe(c.Cause, c.Image, c.Registry)
	switch {
	case c.Cause == InvalidReference:
		var re *ReferenceError
		if errors.As(CheckReference(c.Image), &re) {
			c.Summary = strings.TrimSuffix(c.Summary, ".") + ": " + re.Reason + "."
		}
	case c.Cause == Unknown && carriesNoError(reason, message):
		c.Summary, c.Remedy = noErrorText(c.Image)
	}
	return c
}

// decide runs the rules over each element of the message (one element
// unless it holds a multi-credential list) and keeps the most informative
// element's verdict. It returns the cause and the verbatim evidence.
func decide(msg string) (Cause, string) {
	best, evidence := Unknown, ""
	for _, sp := range splitElements(msg) {
		cause, start := firstRule(msg[sp.start:sp.end])
		if cause == Unknown {
			continue
		}
		if best == Unknown || informativeness(resolvedRank(cause)) > informativeness(resolvedRank(best)) {
			best, evidence = cause, evidenceAt(msg, sp.start+start, sp.end)
		}
	}
	return best, evidence
}

// firstRule returns the first rule, in precedence order, that matches text,
// and where its match starts.
func firstRule(text string) (Cause, int) {
	for _, r := range rules {
		if loc := r.re.FindStringIndex(text); loc != nil {
			return r.cause, loc[0]
		}
	}
	return Unknown, 0
}

// resolvedRank stands in for the internal not-found verdicts when ranking,
// as both become a specific not-found cause.
func resolvedRank(c Cause) Cause {
	switch c {
	case manifestMissing, genericNotFound:
		return TagNotFound
	case forbidden:
		return AccessDenied
	}
	return c
}

// forbiddenCause settles a bare 403 or "denied". It is a refusal of
// credentials that were presented (AccessDenied) only where that is known:
// the kubelet's list of one error per credential tried, or a private ECR
// registry, which answers 401 to a request without credentials and 404 to
// a missing repository, so its 403 is an IAM or policy denial. Elsewhere
// (GHCR answers an anonymous pull of a private or missing package 403;
// GitLab and Harbor deny alike) the registry declines to say whether the
// image is missing or private.
func forbiddenCause(registry, msg string) Cause {
	if isECR(registry) || len(splitElements(msg)) > 1 {
		return AccessDenied
	}
	return NotFoundOrUnauthorized
}

// digestInTextRE finds a digest that the failing request named: a
// reference pinned by digest, a manifest or blob URL by digest, or CRI-O's
// "reading manifest sha256:… in …".
var digestInTextRE = regexp.MustCompile(`@sha(?:256|512):|/(?:manifests|blobs)/sha(?:256|512):|manifest sha256:|descriptor sha(?:256|512):|^content at `)

// notFoundCause turns "the manifest is missing" into the cause a person can
// act on. A pinned digest that is missing is DigestNotFound. The registry's
// MANIFEST_UNKNOWN for a tag is TagNotFound. containerd's bare "not found"
// (and a 404 status line) does not say whether the repository exists:
// ImageNotFound, which the registry probe settles; but a repository path
// that begins with another registry's host ("mirror.gcr.io/ghcr.io/…")
// names no repository anywhere.
func notFoundCause(c Cause, evidence, image string) Cause {
	if digestInTextRE.MatchString(evidence) || isDigestRef(image) {
		return DigestNotFound
	}
	if c == genericNotFound {
		if nestedRegistry(image) {
			return RepoNotFound
		}
		return ImageNotFound
	}
	return TagNotFound
}

// knownRegistryRE matches the hosts of the public registries people copy
// references from.
var knownRegistryRE = regexp.MustCompile(`^(?:(?:index\.|registry-1\.)?docker\.io|ghcr\.io|quay\.io|(?:[a-z0-9-]+\.)?gcr\.io|registry\.k8s\.io|public\.ecr\.aws|mcr\.microsoft\.com|nvcr\.io|registry\.gitlab\.com|[a-z0-9-]+\.azurecr\.io|[a-z0-9-]+-docker\.pkg\.dev|[0-9]+\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com|localhost(?::\d+)?|[^/]+:\d+)$`)

// nestedRegistry reports whether the repository path of image starts with a
// registry host, as when a mirror prefix was put before a full reference.
func nestedRegistry(image string) bool {
	parts := strings.Split(image, "/")
	return len(parts) > 2 && looksLikeHost(parts[0]) && knownRegistryRE.MatchString(parts[1])
}

// fromReason decides from the kubelet's reason when the message names no
// error: the reason alone is decisive for the kubelet's own verdicts. A
// reference the kubelet's parser refuses is invalid whatever else is said.
func fromReason(reason, image string) (Cause, string) {
	switch reason {
	case "InvalidImageName":
		return InvalidReference, ""
	case "ErrImageNeverPull":
		return NeverPull, ""
	case "RegistryUnavailable":
		return RegistryUnavailable, ""
	}
	if image != "" && CheckReference(image) != nil {
		return InvalidReference, image
	}
	return Unknown, ""
}

// noErrorRE matches the kubelet's messages that say a pull failed but not
// why: the back-off event and, before 1.32, the back-off waiting message,
// and the kuberuntime "Error: ErrImagePull" / "Error: ImagePullBackOff".
var noErrorRE = regexp.MustCompile(`Back-off pulling image|^\s*Error: (?:ErrImagePull|ImagePullBackOff)\s*$`)

// carriesNoError reports whether the message is one of those.
func carriesNoError(reason, message string) bool {
	if strings.TrimSpace(message) == "" {
		return reason == "BackOff" || reason == "ImagePullBackOff" || reason == "ErrImagePull"
	}
	return noErrorRE.MatchString(scanWindows(message)[0])
}

// noErrorText explains that the cause is elsewhere rather than guessing it.
func noErrorText(image string) (summary, remedy string) {
	img := "the image"
	if image != "" {
		img = fmt.Sprintf("%q", image)
	}
	summary = fmt.Sprintf("The kubelet is backing off pulling %s; this message does not say why: the pod's Failed events hold the reason.", img)
	remedy = "Read the `Failed to pull image` events (kubectl describe pod, or kubectl get events --field-selector reason=Failed) " +
		"and explain that message; from Kubernetes 1.32 the container's waiting message repeats the last error."
	return summary, remedy
}
