// Package diagnose names why a container image cannot be pulled, confirms it
// at the registry, and offers fixes that are verified to work.
//
// It is pure: the standard library and go-containerregistry only. Kubernetes
// and Slack live at the edges (internal/watch, internal/slackapp), which hand
// it plain values (Target, an authn.Keychain) and receive plain values
// (Classification, Diagnosis) back. A test fences its imports.
package diagnose

import (
	"context"
	"time"
)

// Cause is the root cause of an image-pull failure. The string values are a
// public contract: `bot explain --jsonl` prints them, Slack messages and
// metrics are keyed by them.
type Cause string

// The causes of design §3.
const (
	// RepoNotFound: the repository does not exist (NAME_UNKNOWN, 404 on the repository).
	RepoNotFound Cause = "repo_not_found"
	// TagNotFound: the tag does not exist in the repository (MANIFEST_UNKNOWN
	// where the registry says it only of a missing tag, or the probe found
	// the repository and not the tag).
	TagNotFound Cause = "tag_not_found"
	// DigestNotFound: a pinned digest, or a manifest an index points to, is missing.
	DigestNotFound Cause = "digest_not_found"
	// ImageNotFound: the repository or the tag does not exist at this
	// registry, and the words do not say which: containerd's resolver
	// reports a bare "…: not found" for both (it drops the registry's
	// NAME_UNKNOWN / MANIFEST_UNKNOWN body), and some registries (GCR)
	// answer MANIFEST_UNKNOWN for a missing repository too. The registry
	// probe settles it into RepoNotFound or TagNotFound.
	ImageNotFound Cause = "image_not_found"
	// NotFoundOrUnauthorized: the registry will not say whether the image is
	// missing or private (Docker Hub's "pull access denied ... may require
	// authorization", insufficient_scope).
	NotFoundOrUnauthorized Cause = "not_found_or_unauthorized"
	// Unauthorized: no valid credentials were presented (no basic auth
	// credentials, a 401 to a registry that never serves anonymously, a
	// token service rejecting the username or password).
	Unauthorized Cause = "unauthorized"
	// AccessDenied: credentials were presented and refused for this image
	// (an IAM denial such as ecr:BatchGetImage, a 403 to a credentialed
	// token request). A refusal of an anonymous pull is NotFoundOrUnauthorized.
	AccessDenied Cause = "access_denied"
	// CredentialsExpired: the token expired (ECR tokens last 12 h).
	CredentialsExpired Cause = "credentials_expired"
	// RateLimited: 429 / toomanyrequests.
	RateLimited Cause = "rate_limited"
	// RegistryUnavailable: the registry answered 5xx (500, 502, 503, 504) or
	// the runtime classed the error RegistryUnavailable: the registry, or
	// the proxy in front of it, is failing, not the image.
	RegistryUnavailable Cause = "registry_unavailable"
	// DNSFailure: the registry host did not resolve.
	DNSFailure Cause = "dns_failure"
	// NetworkTimeout: dial or TLS-handshake timeout, context deadline exceeded.
	NetworkTimeout Cause = "network_timeout"
	// ConnectionRefused: nothing listens, or the connection was reset.
	ConnectionRefused Cause = "connection_refused"
	// TLSError: the certificate is not trusted, expired or for another host.
	TLSError Cause = "tls_error"
	// HTTPVsHTTPS: the server gave an HTTP response to an HTTPS client.
	HTTPVsHTTPS Cause = "http_vs_https"
	// PlatformMismatch: no manifest for the node's OS/architecture.
	PlatformMismatch Cause = "platform_mismatch"
	// InvalidReference: the reference text itself is invalid (InvalidImageName).
	InvalidReference Cause = "invalid_reference"
	// NeverPull: ErrImageNeverPull: pull policy Never and the image is
	// absent on the node, or (KubeletEnsureSecretPulledImages, KEP-2535)
	// present but pulled with credentials this pod is not shown to hold;
	// the kubelet's message is the same for both.
	NeverPull Cause = "never_pull"
	// UnpackFailed: the pull worked but unpacking failed (disk full, layer extraction).
	UnpackFailed Cause = "unpack_failed"
	// Unknown: none of the above; the raw message is shown.
	Unknown Cause = "unknown"
)

// Causes lists every cause, in the order of design §3.
func Causes() []Cause {
	return []Cause{
		RepoNotFound, TagNotFound, DigestNotFound, ImageNotFound, NotFoundOrUnauthorized,
		Unauthorized, AccessDenied, CredentialsExpired, RateLimited, RegistryUnavailable,
		DNSFailure, NetworkTimeout, ConnectionRefused, TLSError, HTTPVsHTTPS,
		PlatformMismatch, InvalidReference, NeverPull, UnpackFailed, Unknown,
	}
}

// Runtime names the container runtime whose words a message carries.
type Runtime string

// Runtimes recognised from their error fingerprints (facts/kubelet.md).
const (
	RuntimeUnknown    Runtime = ""
	RuntimeContainerd Runtime = "containerd"
	RuntimeCRIO       Runtime = "cri-o"
	RuntimeDocker     Runtime = "docker"
)

// Classification is what the offline classifier decides from the kubelet's
// words alone: no network, no cluster.
type Classification struct {
	Cause Cause `json:"cause"`
	// Evidence is the part of the message that decided the cause, verbatim.
	Evidence string `json:"evidence,omitempty"`
	// Image is the image reference named by the message, as written there.
	Image string `json:"image,omitempty"`
	// Registry is the registry host of Image ("docker.io" for Docker Hub).
	Registry string `json:"registry,omitempty"`
	// Runtime is the runtime recognised from the message, if any.
	Runtime Runtime `json:"runtime,omitempty"`
	// Summary is one line for a person on call.
	Summary string `json:"summary"`
	// Remedy says what to do about it.
	Remedy string `json:"remedy"`
	// Certainty is always CertaintyWords: no registry was asked.
	Certainty Certainty `json:"certainty"`
}

// Platform is an OS/architecture pair as the node reports it.
type Platform struct {
	OS           string `json:"os,omitempty"`
	Architecture string `json:"architecture,omitempty"`
	Variant      string `json:"variant,omitempty"`
}

// String renders "linux/arm64" or "linux/arm/v7".
func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// Hint is an image the caller already knows about, offered for verification
// as a candidate: the workload's last healthy revision, the same repository
// running elsewhere in the cluster.
type Hint struct {
	Image string `json:"image"`
	// Kind says where the hint came from.
	Kind CandidateKind `json:"kind"`
	// Note is shown as part of the reason, e.g. "revision 3 of ui-new".
	Note string `json:"note,omitempty"`
}

// Target is everything diagnosis needs to know about one failing container.
// The watcher fills it from the cluster; `bot explain` fills only Reason and
// Message.
type Target struct {
	Cluster   string `json:"cluster,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Kind      string `json:"kind,omitempty"` // Deployment, StatefulSet, DaemonSet, CronJob, Job, Pod
	Name      string `json:"name,omitempty"`
	Container string `json:"container,omitempty"`
	// Image is the reference in the pod spec.
	Image string `json:"image"`
	// PullSecrets and ServiceAccount name the credentials the kubelet uses;
	// the keychain handed to Diagnose is built from them.
	PullSecrets    []string `json:"pullSecrets,omitempty"`
	ServiceAccount string   `json:"serviceAccount,omitempty"`
	// Platform is the node's OS/architecture (linux/amd64 when unknown).
	Platform Platform `json:"platform"`
	// Reason and Message are the kubelet's last words: the container's waiting
	// reason and message, or the Failed event's message on older clusters.
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// Hints are images to verify as candidates (last healthy revision first).
	Hints []Hint `json:"hints,omitempty"`
	// KnownRepositories are repository names seen in the cluster
	// ("registry/path" without tag), used to find the closest existing name.
	KnownRepositories []string `json:"knownRepositories,omitempty"`
	// Lookup, when set, supplies more Hints and KnownRepositories on
	// demand. Diagnose calls it at most once, and only when the cause calls
	// for candidates, so a caller whose hints cost requests (a cluster's
	// pods and revision history) pays for them only then; what it returns
	// is added after Hints and KnownRepositories. It is never kept in a
	// Diagnosis.
	Lookup func(ctx context.Context) (hints []Hint, known []string) `json:"-"`
}

// CandidateKind says how a candidate was found.
type CandidateKind string

// Candidate kinds, cheapest first.
const (
	CandidateLastHealthy CandidateKind = "last_healthy"
	CandidateInCluster   CandidateKind = "in_cluster"
	CandidateTag         CandidateKind = "nearest_tag"
	CandidateRepository  CandidateKind = "closest_repository"
)

// Candidate is a replacement image that was verified before it is offered:
// its manifest answered a HEAD with the pod's credentials and it has the
// node's platform.
type Candidate struct {
	// ID is stable within one Diagnosis ("c1", "c2", …); Slack buttons carry
	// only this, never the image.
	ID    string        `json:"id"`
	Image string        `json:"image"`
	Kind  CandidateKind `json:"kind"`
	// Digest is the manifest digest the verification saw.
	Digest string `json:"digest,omitempty"`
	// Reason says why it was chosen, for the person approving.
	Reason string `json:"reason"`
}

// EvidenceSource says who said it.
type EvidenceSource string

// Evidence sources.
const (
	FromKubelet EvidenceSource = "kubelet"
	FromProbe   EvidenceSource = "probe"
)

// Evidence is one line that supports the diagnosis.
type Evidence struct {
	Source EvidenceSource `json:"source"`
	Text   string         `json:"text"`
}

// ProbeStep records one registry request the probe made.
type ProbeStep struct {
	// Request is e.g. "HEAD public.ecr.aws/v2/aws-containers/x/manifests/1.2.1".
	Request string `json:"request"`
	// Result is e.g. "404 NAME_UNKNOWN" or "ok sha256:…".
	Result   string        `json:"result"`
	Duration time.Duration `json:"duration"`
}

// Confidence grades how sure the diagnosis is.
type Confidence string

// Confidence levels: high when the registry confirmed the kubelet's words,
// medium when only one of them spoke, low when they disagree or neither was clear.
const (
	ConfidenceHigh   Confidence = "high"
	ConfidenceMedium Confidence = "medium"
	ConfidenceLow    Confidence = "low"
)

// Certainty says who decided the cause: the kubelet's words alone, or the
// registry, asked by the probe. Scripts and people use it to tell a guess
// bounded by the words from an answer the registry gave.
type Certainty string

// Certainties.
const (
	// CertaintyWords: decided from the kubelet's (runtime's) words only.
	CertaintyWords Certainty = "words"
	// CertaintyRegistry: the registry probe answered this cause.
	CertaintyRegistry Certainty = "registry"
)

// Diagnosis is the full answer for one Target.
type Diagnosis struct {
	Target Target `json:"target"`
	Cause  Cause  `json:"cause"`
	// Certainty is CertaintyRegistry when the probe's answer decided or
	// confirmed Cause, CertaintyWords otherwise.
	Certainty  Certainty   `json:"certainty"`
	Summary    string      `json:"summary"`
	Evidence   []Evidence  `json:"evidence"`
	Remedy     string      `json:"remedy"`
	Candidates []Candidate `json:"candidates,omitempty"`
	Probes     []ProbeStep `json:"probes,omitempty"`
	// ProbeDuration is the wall time spent at registries.
	ProbeDuration time.Duration `json:"probeDuration"`
	Confidence    Confidence    `json:"confidence"`
	// NodeSide is true when the bot reached the registry but the node did not:
	// the problem is the nodes' network path, not the registry.
	NodeSide bool `json:"nodeSide,omitempty"`
}
