package creds

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// DefaultECRTimeout bounds one ECR credential resolution (loading the AWS
// configuration and GetAuthorizationToken): keychain resolution has no
// deadline of its own, and an identity that cannot reach AWS must not hold
// a diagnosis up.
const DefaultECRTimeout = 5 * time.Second

// ecrHost matches private ECR registry hosts and captures the region:
// 123456789012.dkr.ecr.us-west-2.amazonaws.com (also -fips and .com.cn).
var ecrHost = regexp.MustCompile(`^[0-9]{12}\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?$`)

// ECRKeychain is the kubelet's ECR credential provider for the bot's own
// AWS identity: images on *.dkr.ecr.<region>.amazonaws.com are probed with
// the token GetAuthorizationToken returns (user "AWS"). It answers
// anonymous for every other registry. Tokens are cached per region until
// shortly before they expire. Safe for concurrent use.
type ECRKeychain struct {
	timeout time.Duration
	opts    []func(*config.LoadOptions) error

	loadOnce sync.Once
	cfg      aws.Config
	loadErr  error

	mu     sync.Mutex
	tokens map[string]ecrToken // region → token
}

type ecrToken struct {
	user, pass string
	expires    time.Time
}

// ECROption configures an ECRKeychain.
type ECROption func(*ECRKeychain)

// WithECRTimeout bounds each resolution; default DefaultECRTimeout. A
// bound that is not positive is ignored (the default stands): the option
// is the SDK-facing one of a provider that must never fail the probe it
// serves.
func WithECRTimeout(d time.Duration) ECROption {
	return func(k *ECRKeychain) {
		if d > 0 {
			k.timeout = d
		}
	}
}

// WithAWSConfigOptions adds options to the AWS SDK's default configuration
// loading (e.g. config.WithBaseEndpoint); the environment applies too.
func WithAWSConfigOptions(opts ...func(*config.LoadOptions) error) ECROption {
	return func(k *ECRKeychain) { k.opts = append(k.opts, opts...) }
}

// NewECRKeychain returns a keychain for the bot's AWS identity, found the
// SDK's usual way (environment, IRSA web identity, EKS Pod Identity,
// profile). The configuration is loaded at first use.
func NewECRKeychain(opts ...ECROption) *ECRKeychain {
	k := &ECRKeychain{timeout: DefaultECRTimeout, tokens: map[string]ecrToken{}}
	for _, o := range opts {
		o(k)
	}
	return k
}

// ECRKeychainFromEnv is the default: an ECRKeychain when the process
// environment names AWS credentials, nil otherwise. Only the environment
// is read — no IMDS probe — so a bot outside AWS pays nothing.
func ECRKeychainFromEnv(getenv func(string) string) *ECRKeychain {
	if !awsCredentialsInEnv(getenv) {
		return nil
	}
	return NewECRKeychain()
}

// awsCredentialsInEnv reports whether the environment names an AWS
// identity: static keys, IRSA (web identity token and role), EKS Pod
// Identity / container credentials, or a profile.
func awsCredentialsInEnv(getenv func(string) string) bool {
	switch {
	case getenv("AWS_ACCESS_KEY_ID") != "" && getenv("AWS_SECRET_ACCESS_KEY") != "":
		return true
	case getenv("AWS_WEB_IDENTITY_TOKEN_FILE") != "" && getenv("AWS_ROLE_ARN") != "":
		return true
	case getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI") != "" || getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") != "":
		return true
	case getenv("AWS_PROFILE") != "":
		return true
	}
	return false
}

// IsECR reports whether host is a private ECR registry, and its region.
func IsECR(host string) (region string, ok bool) {
	m := ecrHost.FindStringSubmatch(strings.ToLower(host))
	if m == nil {
		return "", false
	}
	return m[1], true
}

// Resolve implements authn.Keychain, bounded by the keychain's timeout.
func (k *ECRKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), r)
}

// ResolveContext implements authn.ContextKeychain: the prober's deadline
// and the keychain's own timeout both bound the AWS calls.
func (k *ECRKeychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	region, ok := IsECR(r.RegistryStr())
	if !ok {
		return authn.Anonymous, nil
	}
	tok, err := k.token(ctx, region)
	if err != nil {
		return nil, err
	}
	return &authn.Basic{Username: tok.user, Password: tok.pass}, nil
}

func (k *ECRKeychain) token(ctx context.Context, region string) (ecrToken, error) {
	k.mu.Lock()
	tok, ok := k.tokens[region]
	k.mu.Unlock()
	if ok && time.Now().Before(tok.expires) {
		return tok, nil
	}
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	k.loadOnce.Do(func() {
		opts := append([]func(*config.LoadOptions) error{config.WithRetryMaxAttempts(1)}, k.opts...)
		k.cfg, k.loadErr = config.LoadDefaultConfig(ctx, opts...)
	})
	if k.loadErr != nil {
		return ecrToken{}, fmt.Errorf("ECR credentials: loading the AWS configuration: %w", k.loadErr)
	}
	client := ecr.NewFromConfig(k.cfg, func(o *ecr.Options) { o.Region = region })
	out, err := client.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return ecrToken{}, fmt.Errorf("ECR credentials for %s: GetAuthorizationToken: %w", region, err)
	}
	if len(out.AuthorizationData) == 0 || out.AuthorizationData[0].AuthorizationToken == nil {
		return ecrToken{}, fmt.Errorf("ECR credentials for %s: GetAuthorizationToken returned no token", region)
	}
	d := out.AuthorizationData[0]
	raw, err := base64.StdEncoding.DecodeString(aws.ToString(d.AuthorizationToken))
	if err != nil {
		return ecrToken{}, fmt.Errorf("ECR credentials for %s: token is not base64", region)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return ecrToken{}, errors.New("ECR credentials for " + region + ": token is not user:password")
	}
	// Renew well before expiry (tokens last 12 h); without an expiry,
	// an hour.
	tok = ecrToken{user: user, pass: pass, expires: time.Now().Add(time.Hour)}
	if d.ExpiresAt != nil {
		tok.expires = d.ExpiresAt.Add(-10 * time.Minute)
	}
	k.mu.Lock()
	k.tokens[region] = tok
	k.mu.Unlock()
	return tok, nil
}

// podKeychain is what the kubelet consults for one pod: the pod's pull
// secrets first, then the node's credential provider (here the bot's own
// ECR identity) for the registries it serves.
type podKeychain struct {
	secrets *PullSecretKeychain
	ecr     *ECRKeychain
}

var _ diagnose.MultiKeychain = podKeychain{}

// ForPod is the keychain the kubelet would use for one pod: it combines the pod's pull secrets with the ECR provider when
// there is one.
func ForPod(secrets *PullSecretKeychain, e *ECRKeychain) authn.Keychain {
	if e == nil {
		return secrets
	}
	return podKeychain{secrets: secrets, ecr: e}
}

// Resolve returns the most specific pull secret, or the provider's token.
func (p podKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return p.ResolveContext(context.Background(), r)
}

// ResolveContext is Resolve under the caller's deadline.
func (p podKeychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	if len(p.secrets.Matching(r.RegistryStr(), repoPath(r))) > 0 {
		return p.secrets.Resolve(r)
	}
	return p.ecr.ResolveContext(ctx, r)
}

// Alternatives lists the matching pull secrets, then the provider for the
// registries it serves.
func (p podKeychain) Alternatives(r authn.Resource) []authn.Keychain {
	out := p.secrets.Alternatives(r)
	if _, ok := IsECR(r.RegistryStr()); ok {
		out = append(out, p.ecr)
	}
	return out
}
