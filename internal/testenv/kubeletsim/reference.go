package kubeletsim

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
)

// imageRef is an image reference as the kubelet and containerd see it.
type imageRef struct {
	requested string // as written in the pod spec
	withTag   string // the kubelet's applyDefaultImageTag result
	full      string // containerd's normalised form: docker.io/library/nginx:latest, repo@digest when digested
	domain    string // registry host as named: docker.io, public.ecr.aws
	path      string // repository path: library/nginx
	tag       string
	digest    string
}

// parseImage does what the kubelet (applyDefaultImageTag, parsers.ParseImageName,
// both on distribution/reference) and then containerd's CRI plugin do with an
// image string. The error text is the kubelet v1.37 one
// (pkg/util/parsers/parsers.go: `couldn't parse image name %q: %v`).
func parseImage(image string) (imageRef, error) {
	named, err := reference.ParseNormalizedNamed(image)
	if err != nil {
		return imageRef{}, fmt.Errorf("couldn't parse image name %q: %v", image, err)
	}
	r := imageRef{requested: image, withTag: image, domain: reference.Domain(named), path: reference.Path(named)}
	if t, ok := named.(reference.Tagged); ok {
		r.tag = t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		r.digest = d.Digest().String()
	}
	if r.tag == "" && r.digest == "" {
		r.tag = "latest"
	}
	if r.digest == "" && r.tag != "" && !strings.HasSuffix(image, ":"+r.tag) {
		r.withTag = image + ":" + r.tag
	}
	// containerd (CRI) normalises with ParseDockerRef: a digest wins over a tag.
	switch {
	case r.digest != "":
		r.full = named.Name() + "@" + r.digest
	default:
		r.full = named.Name() + ":" + r.tag
	}
	return r, nil
}

// identifier is what goes after /manifests/ in a resolve request.
func (r imageRef) identifier() string {
	if r.digest != "" {
		return r.digest
	}
	return r.tag
}

// requestHost is the host containerd sends requests to for the registry:
// Docker Hub's API lives on registry-1.docker.io.
func (r imageRef) requestHost() string {
	if r.domain == "docker.io" {
		return "registry-1.docker.io"
	}
	return r.domain
}

// manifestURL is the URL containerd names in its messages.
func (r imageRef) manifestURL(identifier string) string {
	return "https://" + r.requestHost() + "/v2/" + r.path + "/manifests/" + identifier
}

// repoDigest is containerd's imageID for a pulled image.
func (r imageRef) repoDigest(digest string) string {
	return r.domain + "/" + r.path + "@" + digest
}

// name is the image name containerd reports for a running container.
func (r imageRef) name() string {
	if r.digest != "" && r.tag == "" {
		return r.domain + "/" + r.path + "@" + r.digest
	}
	if r.tag != "" {
		return r.domain + "/" + r.path + ":" + r.tag
	}
	return r.full
}
