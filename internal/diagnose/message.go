package diagnose

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// The kubelet quotes the image in its own wrappers; when such a message is
// itself quoted (the FailedSync events of Kubernetes ≤1.5) the quotes arrive
// escaped, hence the optional backslashes.
const q = `\\*"`

// imagePatterns find the image reference in a message, most authoritative
// first: the kubelet's own words carry the reference as the pod spec wrote
// it; the runtime's words may have normalised it (docker.io/library/…).
var imagePatterns = []*regexp.Regexp{
	regexp.MustCompile(`Failed to pull image ` + q + `([^"\\]*)` + q),
	regexp.MustCompile(`Back-off pulling image ` + q + `([^"\\]*)` + q),
	regexp.MustCompile(`Failed to apply default image tag ` + q + `([^"\\]*)` + q),
	regexp.MustCompile(`[Cc]ontainer image ` + q + `([^"\\]*)` + q + ` is not present`),
	regexp.MustCompile(`couldn't parse image (?:reference|name) ` + q + `([^"\\]*)` + q),
	regexp.MustCompile(`[Ii]mage pull failed for ([^\s,"\\]+)(?:,| because)`),
	regexp.MustCompile(`[Pp]ulling image ` + q + `([^"\\]*)` + q),
	regexp.MustCompile(`failed to (?:pull and unpack image|resolve reference|resolve image) ` + q + `([^"\\]*)` + q),
	regexp.MustCompile(`(?:initializing|Error initializing) source docker://([^\s"\\]+?):? `),
	regexp.MustCompile(`pull access denied for ([^\s,"\\]+)`),
	regexp.MustCompile(`manifest for ([^\s"\\]+) not found`),
	regexp.MustCompile(`[Ii]mage ([^\s"\\]+) not found`),
	regexp.MustCompile(`[Rr]epository ([^\s"\\]+) not found`),
}

// readingManifestRE is containers/image's (CRI-O's) way to name the image:
// "Error reading manifest TAG in REPO".
var readingManifestRE = regexp.MustCompile(`[Rr]eading manifest (\S+) in ([^\s:]+(?::\d+)?[^\s:]*)`)

// hostPatterns find the registry when no image is named: the URL the runtime
// requested, the registry it pinged, the host it looked up.
var hostPatterns = []*regexp.Regexp{
	regexp.MustCompile(`https?://([^/\s"'\\]+)/v[12]/`),
	regexp.MustCompile(`pinging (?:container|docker) registry ([^\s:"]+(?::\d+)?)`),
	regexp.MustCompile(`lookup ([^\s:]+)`),
}

// extractImage returns the image reference the message names, as written
// there, or "".
func extractImage(msg string) string {
	for _, re := range imagePatterns {
		if m := re.FindStringSubmatch(msg); m != nil && strings.TrimSpace(m[1]) != "" {
			return m[1]
		}
	}
	if m := readingManifestRE.FindStringSubmatch(msg); m != nil {
		sep := ":"
		if strings.Contains(m[1], ":") {
			sep = "@"
		}
		return strings.TrimPrefix(m[2], "docker://") + sep + m[1]
	}
	return ""
}

// extractHost returns the registry host the message talks to when it names
// no image.
func extractHost(msg string) string {
	for _, re := range hostPatterns {
		if m := re.FindStringSubmatch(msg); m != nil {
			return normaliseHost(m[1])
		}
	}
	return ""
}

// Runtime fingerprints (facts/kubelet.md): each runtime wraps registry
// errors in its own words. Docker is tested first because Docker Engine with
// the containerd image store quotes containerd's words inside its own.
var (
	dockerRE = regexp.MustCompile(`Error response from daemon|API error \(\d+\)|[Ii]mage pull failed for \S+, this may be because|may require 'docker login'|unable to ping registry endpoint|manifest for \S+ not found|in the manifest list entries|Tag \S+ not found in repository|failed to register layer|Error: image \S+ not found|Error: Status \d+ trying to pull|does not exist or no pull access`)
	crioRE   = regexp.MustCompile(`(?i)reading manifest \S+ in |pinging (?:container|docker) registry|choosing (?:an )?image (?:instance|from manifest list)|initializing source docker://|determining manifest MIME type|unable to retrieve auth token|requesting bear(?:er)? token|copying system image from manifest list|Source image rejected|short-name .* did not resolve|writing blob: |reading blob sha256|trying to reuse blob|can't talk to a V1 container registry`)
	ctrdRE   = regexp.MustCompile(`failed to pull and unpack image|failed to resolve reference|failed to resolve image|httpRead(?:er)?Seeker|failed to extract layer|failed to copy: |failed to fetch (?:anonymous|oauth) token|failed to authorize: |failed to do request: |unexpected status from (?:HEAD|GET|POST) request|unexpected status code \[manifests|no match for platform in manifest|failed to unpack image on snapshotter|failed to prepare extraction snapshot|content at \S+ not found|failed to get reader from content store|pulling from host \S+ failed with status code`)
)

// detectRuntime names the runtime whose words the message carries.
func detectRuntime(msg string) Runtime {
	switch {
	case dockerRE.MatchString(msg):
		return RuntimeDocker
	case crioRE.MatchString(msg):
		return RuntimeCRIO
	case ctrdRE.MatchString(msg):
		return RuntimeContainerd
	}
	return RuntimeUnknown
}

// elementHeadRE marks where one error of the kubelet's aggregated list
// begins: each element is a whole CRI error, and those start with a runtime
// or gRPC head. Splitting on ", " alone would cut errors that contain commas
// ("pull access denied for X, repository does not exist…").
var elementHeadRE = regexp.MustCompile(`, (?:rpc error: |failed to pull and unpack image|failed to resolve reference|Error response from daemon|(?:Error )?initializing source|(?:Error )?reading manifest|pinging (?:container|docker) registry|unable to retrieve auth token|[A-Z][A-Za-z]+: image pull failed|RegistryUnavailable|Get |Head |unauthorized|denied|toomanyrequests)`)

// span is a part of the message: [start, end) byte offsets.
type span struct{ start, end int }

// splitElements returns the spans of the elements of a bracketed
// multi-credential list "[err1, err2]" (kubelet kuberuntime_image.go
// aggregates one error per credential tried), or the whole message as one
// span when there is no such list.
func splitElements(msg string) []span {
	open := strings.Index(msg, "[")
	// The list follows the kubelet's `Failed to pull image "X": ` wrapper or
	// the back-off wrapper; a "[" elsewhere (IPv6 hosts, "status code
	// [manifests v1]") is not one.
	if open < 0 || !(strings.HasPrefix(msg[open:], "[rpc error") || strings.HasPrefix(msg[:open], "Failed to pull image") || strings.Contains(msg[:open], "ErrImagePull: ")) {
		return []span{{0, len(msg)}}
	}
	if !strings.HasSuffix(strings.TrimRight(msg[:open], " "), ":") {
		return []span{{0, len(msg)}}
	}
	end := strings.LastIndex(msg, "]")
	if end < open {
		end = len(msg)
	}
	var spans []span
	base, start := open+1, open+1
	for _, loc := range elementHeadRE.FindAllStringIndex(msg[base:end], -1) {
		spans = append(spans, span{start, base + loc[0]})
		start = base + loc[0] + 2 // skip ", "
	}
	spans = append(spans, span{start, end})
	if len(spans) == 1 {
		return []span{{0, len(msg)}}
	}
	return spans
}

// maxEvidence bounds the evidence so a Slack section or a log line stays
// readable; the raw message is kept elsewhere.
const maxEvidence = 400

// evidenceAt returns the verbatim text from start to the end of its line,
// within limit, without the closing quotes and parentheses of the wrappers
// around it. It is always a substring of msg.
func evidenceAt(msg string, start, limit int) string {
	end := limit
	if i := strings.IndexByte(msg[start:end], '\n'); i >= 0 {
		end = start + i
	}
	if end-start > maxEvidence {
		end = start + maxEvidence
		for end > start && !utf8.RuneStart(msg[end]) {
			end--
		}
	}
	ev := trimWrapper(msg[start:end])
	if ev == "" {
		// Nothing but wrapper punctuation: keep the matched text itself.
		return strings.TrimSpace(msg[start:end])
	}
	return ev
}

// trimWrapper drops the trailing quotes, brackets and unbalanced closing
// parentheses that belong to the wrappers around an error, not to it.
func trimWrapper(s string) string {
	for {
		t := strings.TrimSuffix(strings.TrimRight(s, " \t\r\"],"), `\n`)
		t = strings.TrimRight(t, "\\")
		if strings.HasSuffix(t, ")") && strings.Count(t, ")") > strings.Count(t, "(") {
			t = t[:len(t)-1]
		}
		if t == s {
			return s
		}
		s = t
	}
}

// maxScan bounds the text the patterns read. Kubelet events are at most
// 1 KiB and waiting messages a few KiB; a longer input (a pasted log) is read
// at its head, where the kubelet's wrapper and the image are, and its tail,
// where a multi-line body ends, so a megabyte of noise costs no more than a
// real message.
const maxScan = 8 << 10

// scanWindows returns the head and tail of msg when it is longer than
// maxScan, cut on rune boundaries; otherwise msg itself.
func scanWindows(msg string) []string {
	if len(msg) <= maxScan {
		return []string{msg}
	}
	h := maxScan / 2
	for h > 0 && !utf8.RuneStart(msg[h]) {
		h--
	}
	t := len(msg) - maxScan/2
	for t < len(msg) && !utf8.RuneStart(msg[t]) {
		t++
	}
	return []string{msg[:h], msg[t:]}
}
