package slackapp

import (
	"fmt"
	"strings"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// What a diagnosis shows as evidence: how each candidate was found and
// verified, the kubelet's words, and what each registry request answered.

// how it was found and what verified it.
func (b *builder) candidatesFound(in MessageInput) {
	d := in.Diagnosis
	var lines []string
	for i, c := range d.Candidates {
		if i == maxCandidatesShown {
			lines = append(lines, fmt.Sprintf("_%d more candidates not shown._", len(d.Candidates)-i))
			break
		}
		// The reason of a catalog or tag candidate says how it was
		// found; a revision's or another workload's needs its origin.
		how := candidateOrigin(c.Kind)
		switch {
		case c.Reason == "":
		case c.Kind == diagnose.CandidateTag || c.Kind == diagnose.CandidateRepository:
			how = esc(shorten(c.Reason, 400))
		default:
			how += ": " + esc(shorten(c.Reason, 400))
		}
		l := "• " + code(shorten(c.Image, 300)) + " — " + how
		if c.Digest != "" && !strings.Contains(c.Reason, "verified") {
			l += "; verified " + code(shortDigest(c.Digest)) + " for " + esc(platformOf(d))
		}
		lines = append(lines, l)
	}
	for i, s := range in.ProvenSecrets {
		if i == maxSecretsShown {
			lines = append(lines, fmt.Sprintf("_%d more pull secrets not shown._", len(in.ProvenSecrets)-i))
			break
		}
		lines = append(lines, "• pull secret "+code(s)+" — the registry accepted its credentials for this image")
	}
	if len(lines) == 0 {
		return
	}
	b.section("found", "*How the fix was found:*\n"+joinCapped(lines, maxCandidatesShown+maxSecretsShown+2, maxText-40, func(more int) string {
		return fmt.Sprintf("_…and %d more not shown_", more)
	}))
}

// candidateOrigin is where a candidate came from, in plain words.
func candidateOrigin(k diagnose.CandidateKind) string {
	switch k {
	case diagnose.CandidateLastHealthy:
		return "the workload's last healthy revision"
	case diagnose.CandidateInCluster:
		return "runs elsewhere in the cluster"
	case diagnose.CandidateTag:
		return "the nearest existing tag in the registry"
	case diagnose.CandidateRepository:
		return "the closest existing repository in the registry"
	}
	return "found by pullfix"
}

func platformOf(d diagnose.Diagnosis) string {
	p := d.Target.Platform
	if p.OS == "" || p.Architecture == "" {
		return "linux/amd64"
	}
	return p.String()
}

// fixReason is the one line beside the primary button: "same tag,
// repository 3 letters away, verified for linux/amd64".
func fixReason(in MessageInput, c diagnose.Candidate) string {
	var parts []string
	oldName, oldTag := splitRef(in.Image)
	newName, newTag := splitRef(c.Image)
	switch c.Kind {
	case diagnose.CandidateLastHealthy:
		if c.Reason != "" {
			parts = append(parts, shorten(c.Reason, 80))
		} else {
			parts = append(parts, "the last healthy revision")
		}
	case diagnose.CandidateInCluster:
		parts = append(parts, "runs elsewhere in the cluster")
	default:
		if oldTag != "" && oldTag == newTag {
			parts = append(parts, "same tag")
		} else if oldName == newName && newTag != "" {
			parts = append(parts, "nearest existing tag")
		}
		if oldName != newName && oldName != "" {
			// A few letters away reads as a typo fixed; further away,
			// the distance says nothing to a person.
			if n := editDistance(oldName, newName); n <= 5 {
				parts = append(parts, fmt.Sprintf("repository %d %s away", n, plural(n, "letter", "letters")))
			} else {
				parts = append(parts, "closest existing repository")
			}
		}
	}
	if c.Digest != "" {
		parts = append(parts, "verified for "+platformOf(in.Diagnosis))
	}
	return strings.Join(parts, ", ")
}

// splitRef splits "host/path:tag@digest" into "host/path" and "tag".
func splitRef(ref string) (name, tag string) {
	ref, _, _ = strings.Cut(ref, "@")
	i := strings.LastIndex(ref, ":")
	if i > strings.LastIndex(ref, "/") {
		return ref[:i], ref[i+1:]
	}
	return ref, ""
}

// editDistance is the Levenshtein distance in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// evidenceLine is the root message's one line of evidence: the registry's
// own answer when it gave one ("public.ecr.aws: NAME_UNKNOWN for
// aws-containers/retailing-store-sample-ui"), else the kubelet's words.
func evidenceLine(d diagnose.Diagnosis, image string) string {
	if d.Certainty == diagnose.CertaintyRegistry {
		for _, p := range d.Probes {
			host, repo, ping := stepTarget(p.Request)
			if reg := diagnose.RegistryHost(image); reg != "" {
				// A mirror answers for the registry: name the one in
				// the image (the details show the mirror's requests).
				host = reg
			}
			status, codes := stepStatus(p.Result)
			if status < 400 || (ping && status == 401) {
				continue
			}
			said := codes
			if said == "" {
				said = fmt.Sprintf("HTTP %d", status)
			}
			line := "*Registry said:* " + code(said)
			if host != "" {
				line = "*Registry said:* " + esc(host) + ": " + code(said)
			}
			if repo != "" {
				line += " for " + code(repo)
			}
			return line
		}
	}
	for _, e := range d.Evidence {
		if e.Source == diagnose.FromKubelet && e.Text != "" {
			return "*Kubelet said:* " + code(keyWords(e.Text, 200))
		}
	}
	if d.Target.Message != "" {
		return "*Kubelet said:* " + code(keyWords(d.Target.Message, 200))
	}
	for _, e := range d.Evidence {
		if e.Text != "" {
			return "*Registry said:* " + code(shorten(oneLine(e.Text), 200))
		}
	}
	return ""
}

// keyWords is the end of the kubelet's message, at most n characters: the
// runtime wraps the cause in layers of context ("failed to pull and unpack
// image …: failed to resolve reference …: dial tcp …: i/o timeout"), so
// the last layers are the words that say what failed. The cut falls on a
// ": " boundary where one is near, and is marked with "…".
func keyWords(s string, n int) string {
	s = oneLine(s)
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	tail := string(r[len(r)-(n-1):])
	if i := strings.Index(tail, ": "); i >= 0 && i < len(tail)/2 {
		tail = tail[i+2:]
	}
	return "…" + tail
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// stepTarget reads a probe request ("GET host/v2/repo/manifests/tag",
// "GET host/token?scope=repository:repo:pull") into its host and
// repository; ping is the version check "GET host/v2/".
func stepTarget(req string) (host, repo string, ping bool) {
	_, rest, _ := strings.Cut(req, " ")
	rest, query, _ := strings.Cut(rest, "?")
	host, path, ok := strings.Cut(rest, "/")
	if !ok { // "GET nginx:1.27.9": a reference, no host named
		name, _ := splitRef(rest)
		return "", name, false
	}
	if path == "v2/" || path == "v2" {
		return host, "", true
	}
	if s, ok := strings.CutPrefix(query, "scope=repository:"); ok {
		if i := strings.LastIndex(s, ":"); i > 0 {
			s = s[:i]
		}
		return host, s, false
	}
	if p, ok := strings.CutPrefix(path, "v2/"); ok {
		for _, sep := range []string{"/manifests/", "/blobs/", "/tags/list"} {
			if i := strings.Index(p, sep); i >= 0 {
				return host, p[:i], false
			}
		}
		return host, p, false
	}
	name, _ := splitRef(path)
	return host, name, false
}

// stepStatus reads a probe result ("404 NAME_UNKNOWN", "200 sha256:…",
// "error: …") into its HTTP status (0 for none) and registry error codes.
func stepStatus(res string) (status int, codes string) {
	head, rest, _ := strings.Cut(res, " ")
	if _, err := fmt.Sscanf(head, "%d", &status); err != nil || len(head) != 3 {
		return 0, ""
	}
	if !strings.HasPrefix(rest, "sha256:") {
		codes = rest
	}
	return status, codes
}

// stepMeaning says what one probe request established, in plain words:
// an HTTPS attempt answered by a plain-HTTP registry is the probe's normal
// fallback, not a fault, and the version check's 401 asks for the token
// that follows.
func stepMeaning(p diagnose.ProbeStep) string {
	if e, ok := strings.CutPrefix(p.Result, "error: "); ok {
		switch {
		case strings.Contains(e, "does not look like a TLS handshake"), strings.Contains(e, "HTTP response to HTTPS client"):
			return "registry speaks plain HTTP (as configured)"
		case strings.Contains(e, "no such host"):
			return "host name does not resolve: " + e
		case strings.Contains(e, "timeout"), strings.Contains(e, "deadline exceeded"):
			return "no answer in time: " + e
		case strings.Contains(e, "connection refused"):
			return "connection refused: " + e
		case strings.Contains(e, "x509"), strings.Contains(e, "certificate"):
			return "certificate not trusted: " + e
		}
		return "failed: " + e
	}
	if rest, ok := strings.CutPrefix(p.Result, "ok"); ok {
		return "ok" + rest
	}
	_, _, ping := stepTarget(p.Request)
	status, codes := stepStatus(p.Result)
	with := func(s string) string {
		if codes != "" {
			return fmt.Sprintf("%s (%d %s)", s, status, codes)
		}
		return fmt.Sprintf("%s (%d)", s, status)
	}
	switch {
	case status == 0:
		return p.Result
	case status < 300:
		if ping {
			return "registry answers"
		}
		if d, ok := strings.CutPrefix(p.Result, fmt.Sprintf("%d ", status)); ok && strings.HasPrefix(d, "sha256:") {
			return "exists: " + shortDigest(d)
		}
		return fmt.Sprintf("ok (%d)", status)
	case ping && status == 401:
		return "registry asks for a token (normal; the token request follows)"
	case strings.Contains(codes, "NAME_UNKNOWN"):
		return with("repository does not exist")
	case strings.Contains(codes, "MANIFEST_UNKNOWN"):
		return with("tag or manifest does not exist")
	case status == 404:
		return with("not found")
	case status == 401:
		return with("credentials missing or refused")
	case status == 403:
		return with("access denied")
	case status == 429:
		return with("rate limited")
	case status >= 500:
		return with("registry error")
	}
	return with("refused")
}
