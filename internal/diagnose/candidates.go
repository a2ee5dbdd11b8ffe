package diagnose

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// wantsCandidates reports whether a cause is fixed by changing the image.
func wantsCandidates(c Cause) bool {
	switch c {
	case RepoNotFound, TagNotFound, DigestNotFound, ImageNotFound, PlatformMismatch, NotFoundOrUnauthorized:
		return true
	}
	return false
}

// proposal is a candidate before verification.
type proposal struct {
	image  string
	kind   CandidateKind
	reason string
	rank   int // lower first
}

// candidateSearch gathers proposals from cheap to expensive and verifies
// them in rank order until enough are verified or the budget is spent.
type candidateSearch struct {
	d        *Diagnoser
	t        Target
	image    string
	ref      name.Reference
	cause    Cause
	kc       authn.Keychain
	platform Platform
	seen     map[string]bool
	verified int
	steps    []ProbeStep // listing requests
}

// candidates returns at most d.maxCandidates verified replacements for t's
// image. Each was fetched with the pod's credentials (through the mirrors)
// and has the node's platform; none is the failing image itself.
func (d *Diagnoser) candidates(ctx context.Context, t Target, image string, cause Cause, kc authn.Keychain, platform Platform) ([]Candidate, []ProbeStep) {
	ref, err := name.ParseReference(image)
	if err != nil {
		return nil, nil
	}
	s := &candidateSearch{d: d, t: t, image: image, ref: ref, cause: cause, kc: kc, platform: platform,
		seen: map[string]bool{canonicalImage(image): true}}

	props := s.fromHints()
	switch cause {
	case TagNotFound, PlatformMismatch:
		props = append(props, s.nearestTags(ctx)...)
	case RepoNotFound:
		props = append(props, s.closestRepositories(ctx)...)
	case DigestNotFound:
		// A tag written next to the digest (repo:tag@sha256:…) still names
		// what was meant.
		if tagged := taggedPart(image); tagged != "" {
			props = append(props, proposal{image: tagged, kind: CandidateTag, rank: 20,
				reason: "the tag written next to the missing digest"})
		}
	}
	// NotFoundOrUnauthorized left unsettled: the image may simply be
	// private, so only the caller's known-good images are offered; so is
	// an ImageNotFound the probe could not settle.
	sort.SliceStable(props, func(i, j int) bool { return props[i].rank < props[j].rank })

	var out []Candidate
	steps := s.steps
	for _, pr := range props {
		if len(out) >= d.maxCandidates || s.verified >= d.verifyLimit || ctx.Err() != nil {
			break
		}
		key := canonicalImage(pr.image)
		if s.seen[key] {
			continue
		}
		s.seen[key] = true
		s.verified++
		res := d.p.Verify(ctx, pr.image, kc, platform)
		steps = append(steps, res.Steps...)
		if !res.OK {
			d.logger.LogAttrs(ctx, slog.LevelDebug, "candidate rejected",
				slog.String("image", pr.image), slog.String("cause", string(res.Cause)), slog.String("detail", res.Detail))
			continue
		}
		out = append(out, Candidate{
			ID:     fmt.Sprintf("c%d", len(out)+1),
			Image:  pr.image,
			Kind:   pr.kind,
			Digest: res.Digest,
			Reason: fmt.Sprintf("%s; verified: the registry serves it to the pod's credentials (%s) with %s",
				pr.reason, shortDigest(res.Digest), platform),
		})
	}
	return out, steps
}

func (s *candidateSearch) fromHints() []proposal {
	var out []proposal
	for i, h := range s.t.Hints {
		if h.Image == "" {
			continue
		}
		kind, rank, why := h.Kind, 10+i, "an image known to the cluster"
		switch h.Kind {
		case CandidateLastHealthy:
			rank, why = i, "the image of the last healthy revision"
		case CandidateInCluster:
			why = "the same repository running elsewhere in the cluster"
		case "":
			kind = CandidateInCluster
		}
		if h.Note != "" {
			why += " (" + h.Note + ")"
		}
		out = append(out, proposal{image: h.Image, kind: kind, rank: rank, reason: why})
	}
	return out
}

// nearestTags proposes existing tags of the same repository, nearest
// first (one tags-list request).
func (s *candidateSearch) nearestTags(ctx context.Context) []proposal {
	want := identifierTag(s.ref)
	if want == "" {
		return nil
	}
	tags, steps, err := s.d.p.tags(ctx, s.ref.Context().Name(), s.kc)
	s.steps = append(s.steps, steps...)
	if err != nil {
		return nil
	}
	type scored struct {
		tag   string
		score int
	}
	var ranked []scored
	for _, tag := range tags {
		if sc, ok := tagNearness(want, tag); ok {
			ranked = append(ranked, scored{tag, sc})
		}
	}
	sort.SliceStable(ranked, func(i, j int) bool {
		if ranked[i].score != ranked[j].score {
			return ranked[i].score < ranked[j].score
		}
		return ranked[i].tag > ranked[j].tag
	})
	var out []proposal
	for i, r := range ranked {
		if i == s.d.maxCandidates+2 {
			break
		}
		why := fmt.Sprintf("the nearest existing tag to %q in the same repository", want)
		if s.cause == PlatformMismatch {
			why = fmt.Sprintf("a nearby tag of the same repository that includes %s", s.platform)
		}
		out = append(out, proposal{image: withIdentifier(s.image, s.ref, s.ref.Context().RepositoryStr(), ":"+r.tag),
			kind: CandidateTag, rank: 20 + i, reason: why})
	}
	return out
}

// closestRepositories proposes repositories whose names are a short edit
// away, with the original tag: from the registry's catalog where it offers
// one, the repositories seen in the cluster, and the hints' siblings.
func (s *candidateSearch) closestRepositories(ctx context.Context) []proposal {
	reg := s.ref.Context().Registry
	wantPath := s.ref.Context().RepositoryStr()
	names := map[string]string{} // repository path → where it was seen
	cat, steps, err := s.d.p.catalog(ctx, reg.Name(), s.kc)
	s.steps = append(s.steps, steps...)
	if err == nil {
		for _, n := range cat {
			names[n] = "the registry's catalog"
		}
	}
	add := func(image, source string) {
		r, err := name.NewRepository(image)
		if err != nil {
			ref, perr := name.ParseReference(image)
			if perr != nil {
				return
			}
			r = ref.Context()
		}
		if r.RegistryStr() == reg.RegistryStr() {
			if _, dup := names[r.RepositoryStr()]; !dup {
				names[r.RepositoryStr()] = source
			}
		}
	}
	for _, k := range s.t.KnownRepositories {
		add(k, "repositories used in the cluster")
	}
	for _, h := range s.t.Hints {
		add(h.Image, "images used in the cluster")
	}

	type scored struct {
		path, source string
		d            int
	}
	var ranked []scored
	for path, source := range names {
		if path == wantPath {
			continue
		}
		if d, ok := plausibleRepo(wantPath, path); ok {
			ranked = append(ranked, scored{path, source, d})
		}
	}
	sort.Slice(ranked, func(i, j int) bool {
		if ranked[i].d != ranked[j].d {
			return ranked[i].d < ranked[j].d
		}
		return ranked[i].path < ranked[j].path
	})
	id := ":" + identifierTag(s.ref)
	if dg, ok := s.ref.(name.Digest); ok {
		id = "@" + dg.DigestStr()
	}
	var out []proposal
	for i, r := range ranked {
		if i == s.d.maxCandidates+2 {
			break
		}
		out = append(out, proposal{
			image: withIdentifier(s.image, s.ref, r.path, id),
			kind:  CandidateRepository, rank: 30 + r.d,
			reason: fmt.Sprintf("the closest existing repository name to %q (%d %s away, from %s), with the same %s",
				lastSegment(wantPath), r.d, lettersWord(r.d), r.source, strings.TrimLeft(id, ":@")),
		})
	}
	return out
}

// withIdentifier renders a sibling of the original reference in the same
// style as it was written: same registry spelling (a Docker Hub image
// written "nginx" stays short), another repository path and identifier
// (":tag" or "@sha256:…").
func withIdentifier(original string, ref name.Reference, repoPath, id string) string {
	reg := ref.Context().RegistryStr()
	if reg == name.DefaultRegistry {
		for _, prefix := range []string{"docker.io/", "index.docker.io/", "registry-1.docker.io/"} {
			if strings.HasPrefix(original, prefix) {
				return prefix + repoPath + id
			}
		}
		return strings.TrimPrefix(repoPath, "library/") + id
	}
	host := original[:strings.Index(original, "/")]
	return host + "/" + repoPath + id
}

// identifierTag is the tag of ref ("latest" when none was written; "" for
// a digest without tag).
func identifierTag(ref name.Reference) string {
	if t, ok := ref.(name.Tag); ok {
		return t.TagStr()
	}
	return ""
}

// taggedPart turns "repo:tag@sha256:…" into "repo:tag", "" otherwise.
func taggedPart(image string) string {
	before, _, ok := strings.Cut(image, "@")
	if !ok {
		return ""
	}
	if i := strings.LastIndex(before, ":"); i > strings.LastIndex(before, "/") {
		return before
	}
	return ""
}

// canonicalImage makes references comparable ("nginx" = "docker.io/library/nginx:latest").
func canonicalImage(image string) string {
	if ref, err := name.ParseReference(image); err == nil {
		return ref.Name()
	}
	return image
}

func lastSegment(path string) string { return path[strings.LastIndex(path, "/")+1:] }

func shortDigest(d string) string {
	if len(d) > len("sha256:")+12 {
		return d[:len("sha256:")+12]
	}
	return d
}

// lettersWord is "letter" or "letters" for n: plain words, no "(s)".
func lettersWord(n int) string {
	if n == 1 {
		return "letter"
	}
	return "letters"
}
