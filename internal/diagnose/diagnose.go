package diagnose

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Defaults of a Diagnoser.
const (
	// DefaultMaxCandidates is how many verified candidates a diagnosis offers.
	DefaultMaxCandidates = 3
	// DefaultVerifyLimit bounds the candidate verifications per diagnosis,
	// so a typo never costs more than a handful of registry requests.
	DefaultVerifyLimit = 6
)

// Diagnoser turns a failing container into a Diagnosis: the kubelet's
// words, classified offline, then confirmed (or corrected) at the registry
// with the pod's own credentials, plus verified replacement images.
type Diagnoser struct {
	p             *Prober
	maxCandidates int
	verifyLimit   int
	logger        *slog.Logger
}

// DiagnoserOption configures a Diagnoser.
type DiagnoserOption func(*Diagnoser)

// WithMaxCandidates sets how many verified candidates are offered (at
// least 1). Default DefaultMaxCandidates (3).
func WithMaxCandidates(n int) DiagnoserOption {
	return func(d *Diagnoser) { d.maxCandidates = max(1, n) }
}

// WithVerifyLimit bounds candidate verifications per diagnosis. Default
// DefaultVerifyLimit (6).
func WithVerifyLimit(n int) DiagnoserOption {
	return func(d *Diagnoser) { d.verifyLimit = max(0, n) }
}

// WithDiagnoserLogger sets the logger. Default: discard.
func WithDiagnoserLogger(l *slog.Logger) DiagnoserOption {
	return func(d *Diagnoser) {
		if l != nil {
			d.logger = l
		}
	}
}

// NewDiagnoser returns a Diagnoser that probes with p. A nil p gives a
// Diagnoser that never touches the network (Diagnose = DiagnoseOffline).
func NewDiagnoser(p *Prober, opts ...DiagnoserOption) *Diagnoser {
	d := &Diagnoser{
		p:             p,
		maxCandidates: DefaultMaxCandidates,
		verifyLimit:   DefaultVerifyLimit,
		logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, o := range opts {
		o(d)
	}
	return d
}

// DiagnoseOffline decides from the kubelet's words and the reference text
// alone: no registry, no cluster.
func DiagnoseOffline(t Target) Diagnosis {
	diag, _, _ := offline(t)
	return diag
}

// Diagnose classifies t's kubelet message, validates its reference as the
// kubelet does (an invalid one never reaches the network), probes the
// registry with kc (the pod's pull credentials; nil is anonymous), combines
// the two, and for causes fixed by another image offers verified
// candidates. It always returns a Diagnosis; registry trouble becomes
// evidence, not an error.
func (d *Diagnoser) Diagnose(ctx context.Context, t Target, kc authn.Keychain) Diagnosis {
	diag, cls, image := offline(t)
	if d == nil || d.p == nil || !probeable(diag.Cause, image) {
		return diag
	}
	platform := defaultPlatform(t.Platform)
	start := time.Now()
	// Two follow-ups cost a request only when the kubelet's words call for
	// them: a dangling index child, a single-platform image of the wrong
	// architecture.
	res := d.p.probe(ctx, image, kc, platform, probeMode{
		checkChild: cls.Cause == DigestNotFound || cls.Cause == PlatformMismatch,
		readConfig: cls.Cause == PlatformMismatch,
	})
	diag.Probes = append(diag.Probes, res.Steps...)
	combine(&diag, cls.Cause, res, image, registryOf(image))

	if wantsCandidates(diag.Cause) {
		if t.Lookup != nil {
			hints, known := t.Lookup(ctx)
			t.Hints = append(slices.Clip(t.Hints), hints...)
			t.KnownRepositories = append(slices.Clip(t.KnownRepositories), known...)
			t.Lookup = nil
			diag.Target = t
		}
		cands, steps := d.candidates(ctx, t, image, diag.Cause, kc, platform)
		diag.Candidates = cands
		diag.Probes = append(diag.Probes, steps...)
	}
	diag.ProbeDuration = time.Since(start)
	d.logger.LogAttrs(ctx, slog.LevelInfo, "diagnosis",
		slog.String("image", image), slog.String("kubelet", string(cls.Cause)),
		slog.String("cause", string(diag.Cause)), slog.String("confidence", string(diag.Confidence)),
		slog.Bool("nodeSide", diag.NodeSide), slog.Int("candidates", len(diag.Candidates)),
		slog.Int("requests", len(diag.Probes)), slog.Duration("elapsed", diag.ProbeDuration))
	return diag
}

// offline is the diagnosis before any probe, with the classification and
// the image it is about.
func offline(t Target) (Diagnosis, Classification, string) {
	cls := Classify(t.Reason, t.Message)
	image := strings.TrimSpace(t.Image)
	if image == "" {
		image = cls.Image
	}
	t.Lookup = nil // a Diagnosis keeps what was looked up, not how
	diag := Diagnosis{Target: t, Cause: cls.Cause, Confidence: ConfidenceMedium, Certainty: CertaintyWords}
	if cls.Evidence != "" {
		diag.Evidence = append(diag.Evidence, Evidence{Source: FromKubelet, Text: cls.Evidence})
	} else if msg := strings.TrimSpace(t.Message); msg != "" {
		diag.Evidence = append(diag.Evidence, Evidence{Source: FromKubelet, Text: msg})
	}
	if cls.Cause == Unknown {
		diag.Confidence = ConfidenceLow
	}
	diag.Summary, diag.Remedy = cls.Summary, cls.Remedy
	if cls.Image != image || cls.Summary == "" {
		diag.Summary, diag.Remedy = Describe(cls.Cause, image, registryOf(image))
	}

	if image != "" {
		var re *ReferenceError
		if err := CheckReference(image); errors.As(err, &re) {
			if cls.Cause != InvalidReference {
				diag.Confidence = ConfidenceMedium
			} else {
				diag.Confidence = ConfidenceHigh
			}
			diag.Cause = InvalidReference
			diag.Summary, diag.Remedy = Describe(InvalidReference, image, registryOf(image))
			diag.Summary = strings.TrimSuffix(diag.Summary, ".") + ": " + re.Reason + "."
			diag.Evidence = append(diag.Evidence, Evidence{Source: FromProbe,
				Text: "reference check (the kubelet's parser, no network): " + re.Reason})
		} else if err != nil {
			diag.Cause = InvalidReference
			diag.Summary, diag.Remedy = Describe(InvalidReference, image, registryOf(image))
		}
	}
	return diag, cls, image
}

// probeable says whether the registry can add anything.
func probeable(c Cause, image string) bool {
	if image == "" {
		return false
	}
	switch c {
	case InvalidReference, NeverPull, UnpackFailed:
		// Invalid: nothing to ask. Never: no pull happened. Unpack: the
		// pull itself worked.
		return false
	}
	return true
}

// Cause families used to combine the kubelet's view with the probe's
// (see families.go).
func notFound(c Cause) bool     { return c.NotFound() }
func authCause(c Cause) bool    { return c.Credentials() }
func networkCause(c Cause) bool { return c.Network() }
func connectCause(c Cause) bool { return c.Connect() }

// combine settles the cause from the kubelet's cause k and the probe.
// The kubelet saw the node's side (its network, its credentials, its
// runtime configuration); the probe sees the registry from the bot's pod
// with the pod's credentials. Where they agree the diagnosis is sure;
// where the probe is more precise it wins; where only the node can know
// (node IAM role, node network) the kubelet's words stay the evidence.
func combine(diag *Diagnosis, k Cause, res ProbeResult, image, registry string) {
	diag.Evidence = append(diag.Evidence, Evidence{Source: FromProbe, Text: probeEvidence(res)})
	// The registry decided when its answer is the cause given; otherwise
	// the kubelet's words stand and the probe is only context.
	set := func(c Cause, conf Confidence) {
		diag.Cause, diag.Confidence = c, conf
		diag.Certainty = CertaintyWords
		diag.Summary, diag.Remedy = Describe(c, image, registry)
		if !res.OK && c == res.Cause {
			diag.Certainty = CertaintyRegistry
			diag.Summary, diag.Remedy = DescribeSettled(c, image, registry)
		}
	}
	reg := registry
	if reg == "" {
		reg = "the registry"
	}
	p := res.Cause

	switch {
	case connectCause(k) && res.Reached():
		// The node could not connect; the bot can. The nodes' path is at fault.
		set(k, ConfidenceHigh)
		diag.NodeSide = true
		diag.Summary, diag.Remedy = nodeSideText(k, image, reg)
		if !res.OK && p != "" {
			diag.Summary += fmt.Sprintf(" (Once the nodes reach it, note the registry also answers: %s.)", p.Title())
		}

	case res.OK:
		switch {
		case k == Unknown:
			set(Unknown, ConfidenceLow)
			diag.Summary += " The registry serves the image to the pod's credentials, so look at the node (runtime logs, disk, node-level credentials)."
		case k == RegistryUnavailable:
			set(k, ConfidenceLow)
			diag.Summary += fmt.Sprintf(" pullfix gets the image from %s now: it may have recovered, or the nodes pull through a proxy or mirror that is failing.", reg)
		case authCause(k) && k != NotFoundOrUnauthorized:
			// ECR and other node-identity registries: the node's role is
			// invisible to the bot; the kubelet's words are the evidence.
			set(k, ConfidenceMedium)
			diag.Summary += " pullfix pulls it with the pod's own credentials, so the node's credentials (IAM role, kubelet credential provider) are what lack access."
		default:
			set(k, ConfidenceLow)
			diag.Summary += fmt.Sprintf(" But pullfix finds the image on %s with the pod's credentials: it may have been pushed since, or the nodes pull through another mirror or with other credentials.", reg)
		}

	case p == PlatformMismatch:
		conf := ConfidenceMedium
		if k == PlatformMismatch {
			conf = ConfidenceHigh
		}
		set(PlatformMismatch, conf)
		diag.Summary = strings.TrimSuffix(diag.Summary, ".") + ": " + res.Detail + "."

	case p == RepoNotFound || p == TagNotFound || p == DigestNotFound:
		switch {
		case notFound(k):
			set(p, ConfidenceHigh)
		case k == Unknown:
			set(p, ConfidenceMedium)
		default:
			set(k, ConfidenceLow)
			diag.Summary += fmt.Sprintf(" The registry, asked with the pod's credentials, says: %s.", p.Title())
		}

	case authCause(p):
		switch {
		case k == p && p == NotFoundOrUnauthorized:
			set(p, ConfidenceMedium)
		case k == p:
			set(p, ConfidenceHigh)
		case k == NotFoundOrUnauthorized || k == ImageNotFound || k == Unknown:
			// The registry's refusal covers the kubelet's "not found":
			// the image is missing or private, it will not say which.
			set(p, ConfidenceMedium)
		case authCause(k):
			// The kubelet used the node's credentials too (IAM role,
			// credential provider), which the bot cannot see: its words
			// stand, the probe only corroborates.
			set(k, ConfidenceMedium)
			diag.Summary += fmt.Sprintf(" pullfix could not confirm it with the pod's credentials (%s answered: %s); the node's own credentials are invisible to it.", reg, strings.ToLower(p.Title()))
		default:
			set(k, ConfidenceMedium)
			diag.Summary += fmt.Sprintf(" pullfix could not confirm it: %s answered %s to the pod's credentials.", reg, p.Title())
		}

	case p == RateLimited:
		switch k {
		case RateLimited:
			set(p, ConfidenceHigh)
		case Unknown:
			set(p, ConfidenceMedium)
		default:
			set(k, ConfidenceLow)
			diag.Summary += " pullfix's own probe was rate-limited, so the registry could not confirm it."
		}
		if res.Err != nil && res.Err.RetryAfter != "" {
			diag.Summary += fmt.Sprintf(" The registry asks to retry after %s seconds.", res.Err.RetryAfter)
		}

	case p == RegistryUnavailable:
		switch {
		case k == p:
			set(p, ConfidenceHigh)
		case k == Unknown:
			set(p, ConfidenceMedium)
		default:
			set(k, ConfidenceMedium)
			diag.Summary += fmt.Sprintf(" (pullfix could not confirm it: %s answers pullfix a server error: %s.)", reg, res.Detail)
		}

	case connectCause(p):
		switch {
		case networkCause(k) && networkCause(p):
			set(k, ConfidenceHigh)
			diag.Certainty = CertaintyRegistry
			diag.Summary, diag.Remedy = outageText(k, image, reg, res.Detail)
		case k == p:
			set(k, ConfidenceHigh)
		case k == Unknown:
			set(p, ConfidenceMedium)
		default:
			// The node reached the registry, the bot did not: the bot's
			// own network differs; the kubelet's words stand.
			set(k, ConfidenceMedium)
			diag.Summary += fmt.Sprintf(" (pullfix could not reach %s from its own pod to confirm: %s.)", reg, p.Title())
		}

	default:
		// The probe could not decide (a credential lookup that timed
		// out, an answer nothing maps): the kubelet's words stand.
		conf := ConfidenceMedium
		if k == Unknown {
			conf = ConfidenceLow
		}
		set(k, conf)
	}
}

// nodeSideText: the nodes cannot reach the registry, the bot can.
func nodeSideText(k Cause, image, reg string) (summary, remedy string) {
	what := map[Cause]string{
		DNSFailure:        "cannot resolve",
		NetworkTimeout:    "time out reaching",
		ConnectionRefused: "are refused by",
		TLSError:          "do not trust the certificate of",
		HTTPVsHTTPS:       "speak HTTPS to the plain-HTTP",
	}[k]
	summary = fmt.Sprintf("The nodes %s %s while pulling %q, but pullfix reaches it from its pod and the image is there: the problem is the nodes' path to the registry, not the registry.", what, reg, image)
	switch k {
	case TLSError:
		remedy = "Trust the registry's CA on the nodes (containerd certs.d / the system trust store) the way the bot's pod already does, or check for a TLS-intercepting proxy on the nodes' path."
	case HTTPVsHTTPS:
		remedy = "Configure the registry as an HTTP (insecure) registry in the nodes' container runtime (containerd hosts.toml, CRI-O registries.conf), or serve it over TLS."
	default:
		remedy = fmt.Sprintf("Check the nodes' egress to %s: the route tables of the nodes' subnets (NAT gateway, internet gateway or transit gateway), "+
			"the security groups and network ACLs of the nodes' subnets (outbound 443), the container runtime's HTTP(S) proxy settings, "+
			"and the nodes' DNS resolver. The bot's pod reaches it, so compare its subnet and proxy with the nodes'.", reg)
		if isECR(reg) {
			remedy += " For ECR from private subnets, VPC endpoints for ecr.api, ecr.dkr and S3 are required."
		}
	}
	return summary, remedy
}

// outageText: neither the nodes nor the bot reach the registry.
func outageText(k Cause, image, reg, detail string) (summary, remedy string) {
	summary = fmt.Sprintf("Neither the nodes nor pullfix can reach %s to pull %q (%s): the registry, or the network in front of it, is down.", reg, image, strings.ToLower(k.Title()))
	if detail != "" {
		summary += " pullfix saw: " + detail
	}
	remedy = fmt.Sprintf("Check %s's status (status page, or its pods/load balancer if it is yours) and the shared network path (DNS, proxy, firewall); "+
		"pulls resume by themselves once it is back. A mirror or pull-through cache removes this dependency.", reg)
	return summary, remedy
}

// probeEvidence is the probe's evidence line.
func probeEvidence(res ProbeResult) string {
	via := ""
	if res.Fetched != "" {
		via = " (through the nodes' mirror " + strings.SplitN(res.Fetched, "/", 2)[0] + ")"
	}
	switch {
	case res.OK:
		pl := ""
		if len(res.Platforms) > 0 {
			pl = ", platforms " + platformList(res.Platforms)
		}
		return fmt.Sprintf("registry probe%s: %s exists (%s%s)", via, res.Image, shortDigest(res.Digest), pl)
	case res.Cached:
		return fmt.Sprintf("registry probe%s (cached): %s: %s", via, res.Cause.Title(), res.Detail)
	default:
		return fmt.Sprintf("registry probe%s: %s: %s", via, res.Cause.Title(), res.Detail)
	}
}
