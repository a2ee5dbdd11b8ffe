package diagnose

import (
	"fmt"
	"maps"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Mirrors maps a registry host as written in image references
// ("docker.io", "public.ecr.aws") to the host the nodes actually pull from
// ("mirror.internal:5000"). The probe fetches from the mirror, because that
// is where the kubelet's bytes come from, while every message and candidate
// keeps naming the original reference.
type Mirrors map[string]string

// ParseMirrors reads the PULLFIX_REGISTRY_MIRRORS form
// "docker.io=mirror:5000,public.ecr.aws=127.0.0.1:5001". Whitespace around
// entries is ignored; an empty string is no mirrors. Docker Hub may be
// named docker.io, index.docker.io or registry-1.docker.io.
func ParseMirrors(s string) (Mirrors, error) {
	m := Mirrors{}
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		from, to, ok := strings.Cut(entry, "=")
		from, to = strings.TrimSpace(from), strings.TrimSpace(to)
		if !ok || from == "" || to == "" {
			return nil, fmt.Errorf("registry mirror %q: want registry=mirror-host[:port]", entry)
		}
		if strings.Contains(to, "://") || strings.Contains(to, "/") {
			return nil, fmt.Errorf("registry mirror %q: the mirror must be a host[:port], without scheme or path", entry)
		}
		if _, err := name.NewRegistry(to); err != nil {
			return nil, fmt.Errorf("registry mirror %q: %w", entry, err)
		}
		key := normalizeRegistry(from)
		if prev, dup := m[key]; dup && prev != to {
			return nil, fmt.Errorf("registry mirror %q: %s is already mirrored to %s", entry, from, prev)
		}
		m[key] = to
	}
	return m, nil
}

// String renders the mirrors in ParseMirrors form, sorted.
func (m Mirrors) String() string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

// Lookup returns the mirror for a registry host, if one is configured.
func (m Mirrors) Lookup(registry string) (string, bool) {
	to, ok := m[normalizeRegistry(registry)]
	return to, ok
}

func (m Mirrors) clone() Mirrors {
	out := make(Mirrors, len(m))
	for k, v := range m {
		out[normalizeRegistry(k)] = v
	}
	return maps.Clone(out)
}

// normalizeRegistry folds the spellings of one registry into the form
// go-containerregistry uses, so "docker.io" in a mirror list matches an
// image written "nginx".
func normalizeRegistry(host string) string {
	host = strings.ToLower(strings.TrimSpace(host))
	if NormalizeHost(host) == "docker.io" {
		return name.DefaultRegistry
	}
	return host
}
