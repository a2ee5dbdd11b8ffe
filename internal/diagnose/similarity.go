package diagnose

import (
	"strconv"
	"strings"
)

// editDistance is the Damerau-Levenshtein distance (optimal string
// alignment: insertions, deletions, substitutions and adjacent
// transpositions each cost 1). Typos in image names are mostly these:
// "ngnix", "retailing-store" for "retail-store".
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	n, m := len(ra), len(rb)
	if n == 0 {
		return m
	}
	if m == 0 {
		return n
	}
	// Three rolling rows: i-2, i-1, i.
	prev2 := make([]int, m+1)
	prev := make([]int, m+1)
	cur := make([]int, m+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= n; i++ {
		cur[0] = i
		for j := 1; j <= m; j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[m]
}

// repoDistance compares repository paths segment by segment, so a typo in
// the last segment is not drowned by a long shared namespace, and a name
// in another namespace costs that namespace's difference too. Paths with a
// different number of segments compare as whole strings plus one per
// missing segment.
func repoDistance(a, b string) int {
	sa, sb := strings.Split(a, "/"), strings.Split(b, "/")
	if len(sa) != len(sb) {
		d := len(sa) - len(sb)
		if d < 0 {
			d = -d
		}
		return editDistance(a, b) + d
	}
	total := 0
	for i := range sa {
		total += editDistance(sa[i], sb[i])
	}
	return total
}

// closeEnough bounds how different a suggested name may be: a fifth of the
// shorter name, at least 2, so "retailing-store-sample-ui" (3 edits from
// "retail-store-sample-ui") qualifies while a sibling service
// ("retail-store-sample-cart", 7 edits) does not.
func closeEnough(a, b string, d int) bool {
	short := min(len(a), len(b))
	return d <= max(2, short/5)
}

// plausibleRepo says whether have could be what want meant: close in
// edits overall (closeEnough on the last segment), every other path segment
// nearly equal, and the last segment differing only word by word, each
// differing word being a typo or a word form of the other ("retailing" →
// "retail", "asset" → "assets"), or one word added or dropped. A sibling
// service ("retail-store-sample-cart" for "retail-store-sample-ui") is a
// different word, not a typo, and is refused.
func plausibleRepo(want, have string) (int, bool) {
	d := repoDistance(want, have)
	ws, hs := strings.Split(want, "/"), strings.Split(have, "/")
	if !closeEnough(ws[len(ws)-1], hs[len(hs)-1], d) {
		return d, false
	}
	if len(ws) != len(hs) {
		return d, false
	}
	for i := 0; i < len(ws)-1; i++ {
		if ws[i] != hs[i] && !similarWord(ws[i], hs[i]) {
			return d, false
		}
	}
	return d, similarWords(words(ws[len(ws)-1]), words(hs[len(hs)-1]))
}

func words(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == '-' || r == '_' || r == '.' })
}

func similarWords(a, b []string) bool {
	switch len(a) - len(b) {
	case 0:
		for i := range a {
			if a[i] != b[i] && !similarWord(a[i], b[i]) {
				return false
			}
		}
		return true
	case 1, -1:
		long, short := a, b
		if len(b) > len(a) {
			long, short = b, a
		}
		for skip := range long {
			rest := append(append([]string(nil), long[:skip]...), long[skip+1:]...)
			if slicesEqual(rest, short) {
				return true
			}
		}
	}
	return false
}

// similarWord: one word is a prefix of the other, or they are a typo apart
// (at most a third of the shorter word, at least 1).
func similarWord(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	if strings.HasPrefix(a, b) || strings.HasPrefix(b, a) {
		return true
	}
	return editDistance(a, b) <= max(1, min(len(a), len(b))/3)
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// version is a parsed "v1.2.3[-suffix]" tag.
type version struct {
	major, minor, patch int
	parts               int
	suffix              string
}

func parseVersion(tag string) (version, bool) {
	s := strings.TrimPrefix(strings.TrimPrefix(tag, "v"), "V")
	s, suffix, _ := strings.Cut(s, "-")
	fields := strings.Split(s, ".")
	if len(fields) == 0 || len(fields) > 3 {
		return version{}, false
	}
	var nums [3]int
	for i, f := range fields {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			return version{}, false
		}
		nums[i] = n
	}
	return version{major: nums[0], minor: nums[1], patch: nums[2], parts: len(fields), suffix: suffix}, true
}

// tagNearness scores how near candidate is to the wanted tag; lower is
// nearer, ok=false means not a plausible replacement. Version tags compare
// by version (same major first, then minor, then patch, an older release
// before a newer one at equal distance); other tags by edit distance.
func tagNearness(want, candidate string) (score int, ok bool) {
	if candidate == want || isSignatureTag(candidate) {
		return 0, false
	}
	wv, wok := parseVersion(want)
	cv, cok := parseVersion(candidate)
	if wok && cok && wv.major != cv.major {
		// Another major version is another API, however close the text.
		return 0, false
	}
	if wok && cok {
		dm := abs(wv.minor - cv.minor)
		dp := abs(wv.patch - cv.patch)
		score = dm*100 + dp*2
		if cv.minor > wv.minor || (cv.minor == wv.minor && cv.patch > wv.patch) {
			score++ // prefer the release just before a missing one
		}
		if cv.suffix != wv.suffix {
			score += 50
		}
		return score, true
	}
	d := editDistance(want, candidate)
	if !closeEnough(want, candidate, d) {
		return 0, false
	}
	return 1000 + d, true
}

// isSignatureTag skips cosign/notation artefacts stored as tags.
func isSignatureTag(tag string) bool {
	return strings.HasPrefix(tag, "sha256-") && (strings.HasSuffix(tag, ".sig") || strings.HasSuffix(tag, ".att") || strings.HasSuffix(tag, ".sbom"))
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}
