package registries

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image builds a small random image whose config names platform
// ("linux/arm64", "linux/arm/v7"; "" means linux/amd64).
func Image(t testing.TB, platform string) v1.Image {
	t.Helper()
	p := parsePlatform(t, platform)
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Index builds an OCI index with one image per platform, each entry
// carrying its platform as buildx writes it. "unknown/unknown" adds an
// attestation-like entry.
func Index(t testing.TB, platforms ...string) v1.ImageIndex {
	t.Helper()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, ps := range platforms {
		p := parsePlatform(t, ps)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        Image(t, ps),
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	return idx
}

func parsePlatform(t testing.TB, s string) v1.Platform {
	t.Helper()
	if s == "" {
		s = "linux/amd64"
	}
	p, err := v1.ParsePlatform(s)
	if err != nil {
		t.Fatal(err)
	}
	return *p
}

// Push writes repoTag ("repo:tag") to the plain-HTTP registry at host
// ("127.0.0.1:port"): a single image for zero or one platform, an index for
// several. It returns the digest of what the tag points to.
func Push(t testing.TB, host, repoTag string, platforms ...string) v1.Hash {
	t.Helper()
	ref, err := name.ParseReference(host+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	opts := []remote.Option{remote.WithTransport(http.DefaultTransport)}
	if len(platforms) > 1 {
		idx := Index(t, platforms...)
		if err := remote.WriteIndex(ref, idx, opts...); err != nil {
			t.Fatal(err)
		}
		d, err := idx.Digest()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	p := ""
	if len(platforms) == 1 {
		p = platforms[0]
	}
	img := Image(t, p)
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatal(err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Push seeds this registry directly (no auth, not logged). See Push.
func (r *Registry) Push(t testing.TB, repoTag string, platforms ...string) v1.Hash {
	t.Helper()
	return Push(t, r.AdminHost(), repoTag, platforms...)
}

// DeleteManifest removes repo@digest, e.g. a child of an index, to make a
// dangling index.
func (r *Registry) DeleteManifest(t testing.TB, repo string, digest v1.Hash) {
	t.Helper()
	ref, err := name.NewDigest(r.AdminHost()+"/"+repo+"@"+digest.String(), name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(ref, remote.WithTransport(http.DefaultTransport)); err != nil {
		t.Fatal(err)
	}
}

// ChildDigest returns the digest of the child of the index at repoTag for
// platform.
func (r *Registry) ChildDigest(t testing.TB, repoTag, platform string) v1.Hash {
	t.Helper()
	ref, err := name.ParseReference(r.AdminHost()+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Index(ref, remote.WithTransport(http.DefaultTransport))
	if err != nil {
		t.Fatal(err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	want := parsePlatform(t, platform)
	for _, m := range im.Manifests {
		if m.Platform != nil && m.Platform.OS == want.OS && m.Platform.Architecture == want.Architecture &&
			strings.EqualFold(m.Platform.Variant, want.Variant) {
			return m.Digest
		}
	}
	t.Fatalf("%s has no child for %s", repoTag, platform)
	return v1.Hash{}
}
