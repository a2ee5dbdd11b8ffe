package registries

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// PushMultiArch pushes a small linux/amd64 + linux/arm64 index to ref
// ("127.0.0.1:port/repo:tag"). Unlike Push it needs no testing.TB, for
// programs (the demo, the benchmark) that seed a registry.
func PushMultiArch(ref string) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return err
	}
	var idx v1.ImageIndex = empty.Index
	for _, arch := range []string{"amd64", "arm64"} {
		img, err := randomImage("linux", arch)
		if err != nil {
			return err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: arch}}})
	}
	if err := remote.WriteIndex(r, idx); err != nil {
		return fmt.Errorf("push %s: %w", r, err)
	}
	return nil
}

// randomImage is a small random image whose config names os/arch.
func randomImage(os, arch string) (v1.Image, error) {
	img, err := random.Image(256, 1)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = os, arch
	return mutate.ConfigFile(img, cf)
}
