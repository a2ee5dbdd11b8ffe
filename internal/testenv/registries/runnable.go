package registries

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// RunnableImage is a linux/amd64 OCI image that a real container runtime
// can start: one layer holding the static binary at bin as /<base name>,
// which is also the entrypoint. title goes into the config's
// org.opencontainers.image.title label, so two images of the same binary
// differ (containerd reports a container's image by the image's config
// digest, so identical images would be reported under one name). The real test node (internal/testenv/node)
// runs such images — the pod sandbox and the runbook's application — where
// the kubelet simulator only resolves manifests of random ones.
func RunnableImage(bin, title string) (v1.Image, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	base := filepath.Base(bin)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: base, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(data); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(mutate.ConfigMediaType(empty.Image, types.OCIConfigJSON), types.OCIManifestSchema1)
	if img, err = mutate.AppendLayers(img, layer); err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = []string{"/" + base}
	cf.Config.Env = []string{"PATH=/"}
	cf.Config.Labels = map[string]string{"org.opencontainers.image.title": title}
	return mutate.ConfigFile(img, cf)
}

// PushRunnable pushes ref ("127.0.0.1:port/repo:tag", plain HTTP) as an
// index of the runnable linux/amd64 image built from bin and a random
// linux/arm64 one, the shape of the runbook's multi-arch images. It needs
// no testing.TB, for the demo too, and returns the index digest.
func PushRunnable(ref, bin string) (v1.Hash, error) {
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return v1.Hash{}, err
	}
	img, err := RunnableImage(bin, r.Context().RepositoryStr()+":"+r.Identifier())
	if err != nil {
		return v1.Hash{}, err
	}
	arm, err := randomImage("linux", "arm64")
	if err != nil {
		return v1.Hash{}, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	idx = mutate.AppendManifests(idx,
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}},
		mutate.IndexAddendum{Add: arm, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "arm64"}}},
	)
	if err := remote.WriteIndex(r, idx, remote.WithTransport(http.DefaultTransport)); err != nil {
		return v1.Hash{}, fmt.Errorf("push %s: %w", r, err)
	}
	return idx.Digest()
}

// PushRunnable pushes repoTag to this registry (unwrapped, not logged) as a
// runnable image; see the package function.
func (r *Registry) PushRunnable(t testing.TB, repoTag, bin string) v1.Hash {
	t.Helper()
	d, err := PushRunnable(r.AdminHost()+"/"+repoTag, bin)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// SeedRunbookRunnable is SeedRunbook with retail-store-sample-ui:1.2.1 (the
// runbook's fix) runnable on linux/amd64, so a real node can start it.
func SeedRunbookRunnable(t testing.TB, r *Registry, bin string) Runbook {
	t.Helper()
	out := SeedRunbook(t, r)
	out[RetailUI+":"+RunbookTag] = r.PushRunnable(t, RetailUI+":"+RunbookTag, bin)
	return out
}
