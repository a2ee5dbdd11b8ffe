package watch

import (
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
)

// PodKeychain is the keychain the kubelet would pull with, for callers
// outside the watcher (the admission webhook): the pod's pull secrets,
// matched the kubelet's way, then ecr (the bot's own AWS identity, standing
// in for the nodes' credential provider on private ECR); ecr may be nil.
func PodKeychain(secrets *PullSecretKeychain, ecr *ECRKeychain) authn.Keychain {
	return withProvider(secrets, ecr)
}

// ECRKeychainFromEnv is the ECR keychain the watcher uses, built the same
// way: nil unless the environment names AWS credentials, so a bot outside
// AWS never waits for them. Share one: it caches tokens.
func ECRKeychainFromEnv() *ECRKeychain { return ecrKeychainFromEnv(os.Getenv) }
