package kubeletsim

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"path"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// dockerAuth is one entry of a docker config file.
type dockerAuth struct {
	Username      string `json:"username"`
	Password      string `json:"password"`
	Auth          string `json:"auth"`
	IdentityToken string `json:"identitytoken"`
	RegistryToken string `json:"registrytoken"`
}

// credentials returns what the kubelet would try for the image, in its
// order: the pod's imagePullSecrets (most specific key first), then the
// node's keychain. missing names the Secrets that could not be read, for
// the FailedToRetrieveImagePullSecret event.
func (s *Simulator) credentials(ctx context.Context, pod *corev1.Pod, r imageRef) (creds []credential, missing []string) {
	type match struct {
		key string
		c   credential
	}
	var matches []match
	for _, ref := range pod.Spec.ImagePullSecrets {
		if ref.Name == "" {
			continue
		}
		sec, err := s.cs.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
				missing = append(missing, ref.Name)
			}
			continue
		}
		for key, a := range dockerAuths(sec) {
			if !keyMatches(key, r) {
				continue
			}
			matches = append(matches, match{key: key, c: credential{auth: authn.FromConfig(a.config()), secret: pod.Namespace + "/" + ref.Name}})
		}
	}
	// The kubelet's keyring orders matches most specific first.
	sort.SliceStable(matches, func(i, j int) bool { return len(normaliseKey(matches[i].key)) > len(normaliseKey(matches[j].key)) })
	for _, m := range matches {
		creds = append(creds, m.c)
	}
	if s.cfg.keychain != nil {
		reg, err := name.NewRegistry(r.domain)
		if err == nil {
			if a, err := s.cfg.keychain.Resolve(reg); err == nil && a != nil && a != authn.Anonymous {
				creds = append(creds, credential{auth: a})
			}
		}
	}
	return creds, missing
}

func (a dockerAuth) config() authn.AuthConfig {
	c := authn.AuthConfig{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}
	if c.Username == "" && a.Auth != "" {
		if b, err := base64.StdEncoding.DecodeString(a.Auth); err == nil {
			c.Username, c.Password, _ = strings.Cut(string(b), ":")
		}
	}
	return c
}

// dockerAuths reads a Secret of type kubernetes.io/dockerconfigjson (or the
// legacy kubernetes.io/dockercfg), as the kubelet does.
func dockerAuths(sec *corev1.Secret) map[string]dockerAuth {
	switch sec.Type {
	case corev1.SecretTypeDockerConfigJson:
		var f struct {
			Auths map[string]dockerAuth `json:"auths"`
		}
		if json.Unmarshal(sec.Data[corev1.DockerConfigJsonKey], &f) == nil {
			return f.Auths
		}
	case corev1.SecretTypeDockercfg:
		var m map[string]dockerAuth
		if json.Unmarshal(sec.Data[corev1.DockerConfigKey], &m) == nil {
			return m
		}
	}
	return nil
}

// normaliseKey strips the scheme, the /v1/ and /v2/ suffixes and maps Docker
// Hub's aliases to docker.io.
func normaliseKey(key string) string {
	k := strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	k = strings.TrimSuffix(k, "/")
	k = strings.TrimSuffix(strings.TrimSuffix(k, "/v1"), "/v2")
	host, rest, _ := strings.Cut(k, "/")
	switch host {
	case "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com":
		host = "docker.io"
	}
	if rest != "" {
		return host + "/" + rest
	}
	return host
}

// keyMatches is the kubelet keyring's matching: host labels with globs, the
// same port, and a path prefix.
func keyMatches(key string, r imageRef) bool {
	k := normaliseKey(key)
	khost, kpath, _ := strings.Cut(k, "/")
	if !hostMatches(khost, r.domain) {
		return false
	}
	if kpath == "" {
		return true
	}
	return r.path == kpath || strings.HasPrefix(r.path, kpath+"/")
}

func hostMatches(pattern, host string) bool {
	pp, pport, _ := strings.Cut(pattern, ":")
	hp, hport, _ := strings.Cut(host, ":")
	if pport != hport {
		return false
	}
	pl, hl := strings.Split(pp, "."), strings.Split(hp, ".")
	if len(pl) != len(hl) {
		return false
	}
	for i := range pl {
		if ok, err := path.Match(pl[i], hl[i]); err != nil || !ok {
			return false
		}
	}
	return true
}
