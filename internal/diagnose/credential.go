package diagnose

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Credentials: resolving the pod's keychain for one registry, bounded in
// time, into an authenticator and a secret-free identity for cache keys.

// credential is a resolved authenticator and a stable, secret-free
// identity for cache keys.
type credential struct {
	auth      authn.Authenticator
	identity  string
	anonymous bool
}

// resolve runs keychain resolution under the probe timeout: keychains
// (credential helpers, the ECR helper probing IMDS) take no deadline of
// their own (facts §1.4).
func (p *Prober) resolve(ctx context.Context, kc authn.Keychain, res authn.Resource) (credential, error) {
	if kc == nil {
		return credential{auth: authn.Anonymous, identity: "anonymous", anonymous: true}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.o.timeout)
	defer cancel()
	type out struct {
		cfg *authn.AuthConfig
		err error
	}
	ch := make(chan out, 1)
	go func() {
		a, err := authn.Resolve(ctx, kc, res)
		if err != nil {
			ch <- out{err: err}
			return
		}
		cfg, err := authn.Authorization(ctx, a)
		ch <- out{cfg: cfg, err: err}
	}()
	select {
	case o := <-ch:
		if o.err != nil {
			return credential{}, fmt.Errorf("resolving the pod's credentials for %s: %w", res.RegistryStr(), o.err)
		}
		if o.cfg == nil || *o.cfg == (authn.AuthConfig{}) {
			return credential{auth: authn.Anonymous, identity: "anonymous", anonymous: true}, nil
		}
		b, _ := json.Marshal(o.cfg)
		sum := sha256.Sum256(append([]byte(res.RegistryStr()+"\x00"), b...))
		return credential{auth: authn.FromConfig(*o.cfg), identity: hex.EncodeToString(sum[:12])}, nil
	case <-ctx.Done():
		return credential{}, fmt.Errorf("resolving the pod's credentials for %s: %w", res.RegistryStr(), ctx.Err())
	}
}
