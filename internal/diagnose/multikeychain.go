package diagnose

import (
	"context"

	"github.com/google/go-containerregistry/pkg/authn"
)

// MultiKeychain is a keychain that knows several credentials for one image.
// The kubelet tries every credential that matches an image, in order, until
// one pulls (pull secrets with overlapping keys, then a credential
// provider); an authn.Keychain hands out only one. When the keychain given
// to the Prober implements MultiKeychain, a probe refused for lack of
// authorisation is retried with each alternative in turn, so pullfix does
// not report "unauthorized" for an image the kubelet would pull.
//
// The interface is declared here, by its user; the watcher's pull-secret
// keychain implements it.
type MultiKeychain interface {
	authn.Keychain
	// Alternatives lists keychains that each resolve one credential for
	// the resource, in the order the kubelet tries them (the one Resolve
	// returns may be among them; it is not tried twice). Resolving an
	// alternative may be slow (a credential helper); the Prober bounds it.
	Alternatives(authn.Resource) []authn.Keychain
}

// maxAlternatives bounds the credentials tried for one image: each costs a
// probe of its own.
const maxAlternatives = 8

// authRefused reports a refusal another credential might overcome.
func authRefused(c Cause) bool { return c.Credentials() }

// otherCredentials calls try with each further credential kc offers for
// res, skipping first and duplicates, until try returns true. Keychain
// failures are skipped: the kubelet too moves on to the next credential.
// It returns how many credentials were tried, first included.
func (p *Prober) otherCredentials(ctx context.Context, kc authn.Keychain, res authn.Resource, first credential, try func(credential) bool) int {
	mk, ok := kc.(MultiKeychain)
	if !ok {
		return 1
	}
	seen := map[string]bool{first.identity: true}
	tried := 1
	for i, alt := range mk.Alternatives(res) {
		if i >= maxAlternatives || ctx.Err() != nil {
			break
		}
		cred, err := p.resolve(ctx, alt, res)
		if err != nil {
			p.o.logger.DebugContext(ctx, "alternative credential unresolvable", "registry", res.RegistryStr(), "err", err)
			continue
		}
		if seen[cred.identity] {
			continue
		}
		seen[cred.identity] = true
		tried++
		if try(cred) {
			break
		}
	}
	return tried
}
