package diagnose

import (
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Platforms: matching an image index against the nodes' OS/architecture.

func defaultPlatform(p Platform) Platform {
	if p.OS == "" {
		p.OS = "linux"
	}
	if p.Architecture == "" {
		p.Architecture = "amd64"
	}
	return p
}

// descriptorPlatform reads an index entry's platform; go-containerregistry
// (and containerd) treat an entry without one as linux/amd64.
func descriptorPlatform(d *v1.Descriptor) Platform {
	if d.Platform == nil {
		return Platform{OS: "linux", Architecture: "amd64"}
	}
	return Platform{OS: d.Platform.OS, Architecture: d.Platform.Architecture, Variant: d.Platform.Variant}
}

// platformMatches compares OS and architecture strictly and the variant
// leniently, as containerd's matcher does: a node that does not state a
// variant takes any, and arm64's default variant is v8.
func platformMatches(have, want Platform) bool {
	if !strings.EqualFold(have.OS, want.OS) || !strings.EqualFold(have.Architecture, want.Architecture) {
		return false
	}
	hv, wv := normVariant(have), normVariant(want)
	return wv == "" || hv == "" || hv == wv
}

func normVariant(p Platform) string {
	v := strings.ToLower(p.Variant)
	if strings.EqualFold(p.Architecture, "arm64") && v == "v8" {
		return ""
	}
	return v
}

func platformList(ps []Platform) string {
	if len(ps) == 0 {
		return "no platforms"
	}
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}
