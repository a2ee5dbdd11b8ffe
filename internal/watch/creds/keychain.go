package creds

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"path"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// PullSecretKeychain is an authn.Keychain built from a pod's
// imagePullSecrets the way the kubelet reads them (pkg/credentialprovider):
// keys may be hosts, host:port, host/path prefixes, URLs or globs
// ("*.example.com"), and Docker Hub keys ("https://index.docker.io/v1/",
// "docker.io") match Docker Hub images. go-containerregistry's own Kubernetes
// keychain ignores docker.io keys and keeps only the first match, which is
// why pullfix carries its own (design §4 pitfalls).
type PullSecretKeychain struct {
	entries []credEntry
}

type credEntry struct {
	host   string // lower case, may hold a glob and a port
	path   string // path prefix, no leading slash
	secret string // namespace/name, for evidence (never the credential)
	cfg    authn.AuthConfig
}

// dockerConfigJSON is the payload of kubernetes.io/dockerconfigjson secrets;
// kubernetes.io/dockercfg secrets hold only the inner map.
type dockerConfigJSON struct {
	Auths map[string]dockerConfigEntry `json:"auths"`
}

type dockerConfigEntry struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	Auth          string `json:"auth,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// KeychainFromSecrets parses pull secrets into a keychain. Secrets of other
// types, and malformed ones, are skipped and reported in the returned error
// list so the caller can say why a credential was not used; they never stop
// the others from being used.
func KeychainFromSecrets(secrets []*corev1.Secret) (*PullSecretKeychain, []error) {
	kc := &PullSecretKeychain{}
	var errs []error
	for _, s := range secrets {
		if s == nil {
			continue
		}
		var auths map[string]dockerConfigEntry
		switch s.Type {
		case corev1.SecretTypeDockerConfigJson:
			var cfg dockerConfigJSON
			if err := json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
				errs = append(errs, fmt.Errorf("secret %s/%s: %s is not valid JSON: %w", s.Namespace, s.Name, corev1.DockerConfigJsonKey, err))
				continue
			}
			auths = cfg.Auths
		case corev1.SecretTypeDockercfg:
			if err := json.Unmarshal(s.Data[corev1.DockerConfigKey], &auths); err != nil {
				errs = append(errs, fmt.Errorf("secret %s/%s: %s is not valid JSON: %w", s.Namespace, s.Name, corev1.DockerConfigKey, err))
				continue
			}
		default:
			errs = append(errs, fmt.Errorf("secret %s/%s has type %q, not a pull secret", s.Namespace, s.Name, s.Type))
			continue
		}
		for key, e := range auths {
			host, p := splitCredKey(key)
			if host == "" {
				continue
			}
			cfg := authn.AuthConfig{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken, RegistryToken: e.RegistryToken}
			if e.Auth != "" && cfg.Username == "" {
				if raw, err := base64.StdEncoding.DecodeString(e.Auth); err == nil {
					if u, pw, ok := strings.Cut(string(raw), ":"); ok {
						cfg.Username, cfg.Password = u, pw
					}
				}
			}
			kc.entries = append(kc.entries, credEntry{host: host, path: p, secret: s.Namespace + "/" + s.Name, cfg: cfg})
		}
	}
	// Most specific first, as the kubelet's lookup does: longer path, then
	// exact host before glob; ties keep secret order.
	sort.SliceStable(kc.entries, func(i, j int) bool {
		a, b := kc.entries[i], kc.entries[j]
		if len(a.path) != len(b.path) {
			return len(a.path) > len(b.path)
		}
		return !strings.Contains(a.host, "*") && strings.Contains(b.host, "*")
	})
	return kc, errs
}

// splitCredKey turns a dockercfg key into host and path prefix.
func splitCredKey(key string) (host, p string) {
	key = strings.TrimSpace(key)
	if !strings.Contains(key, "://") {
		key = "https://" + key
	}
	u, err := url.Parse(key)
	if err != nil {
		return "", ""
	}
	host = strings.ToLower(u.Host)
	p = strings.Trim(u.Path, "/")
	if isDockerHub(host) {
		host, p = "docker.io", ""
	}
	return host, p
}

func isDockerHub(host string) bool { return diagnose.NormalizeHost(host) == "docker.io" }

// Resolve implements authn.Keychain with the most specific match.
func (k *PullSecretKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	all := k.Matching(r.RegistryStr(), repoPath(r))
	if len(all) == 0 {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(all[0].Config), nil
}

// Alternatives implements diagnose.MultiKeychain: every matching
// credential, most specific first, each as a keychain of its own, so the
// prober tries them in the kubelet's order until one is accepted.
func (k *PullSecretKeychain) Alternatives(r authn.Resource) []authn.Keychain {
	var out []authn.Keychain
	for _, c := range k.Matching(r.RegistryStr(), repoPath(r)) {
		out = append(out, staticKeychain{authn.FromConfig(c.Config)})
	}
	return out
}

// repoPath is the repository path of a resource ("" for a registry, which
// every credential of the host matches).
func repoPath(r authn.Resource) string {
	if repo, ok := r.(name.Repository); ok {
		return repo.RepositoryStr()
	}
	return ""
}

// staticKeychain resolves every resource to one authenticator.
type staticKeychain struct{ auth authn.Authenticator }

func (s staticKeychain) Resolve(authn.Resource) (authn.Authenticator, error) { return s.auth, nil }

// Credential is one matching credential and the secret it came from.
type Credential struct {
	Secret string // namespace/name
	Config authn.AuthConfig
}

// Matching lists every credential that applies to an image in registry host
// with repository path repo ("" matches any), most specific first: the
// kubelet tries each in turn until one pulls.
func (k *PullSecretKeychain) Matching(host, repo string) []Credential {
	if k == nil {
		return nil
	}
	host = strings.ToLower(host)
	if isDockerHub(host) {
		host = "docker.io"
	}
	var out []Credential
	for _, e := range k.entries {
		if !hostMatches(e.host, host) {
			continue
		}
		if e.path != "" && repo != "" && repo != e.path && !strings.HasPrefix(repo, e.path+"/") {
			continue
		}
		out = append(out, Credential{Secret: e.secret, Config: e.cfg})
	}
	return out
}

// hostMatches matches a key host (possibly "*.example.com", with or without
// port) against an image host the way the kubelet does: globs per label,
// ports must agree.
func hostMatches(pattern, host string) bool {
	ph, pp := splitPort(pattern)
	hh, hp := splitPort(host)
	if pp != hp {
		return false
	}
	pl, hl := strings.Split(ph, "."), strings.Split(hh, ".")
	if len(pl) != len(hl) {
		return false
	}
	for i := range pl {
		if ok, _ := path.Match(pl[i], hl[i]); !ok {
			return false
		}
	}
	return true
}

func splitPort(h string) (string, string) {
	if i := strings.LastIndex(h, ":"); i >= 0 && !strings.Contains(h[i:], "]") {
		return h[:i], h[i+1:]
	}
	return h, ""
}

var _ diagnose.MultiKeychain = (*PullSecretKeychain)(nil)
