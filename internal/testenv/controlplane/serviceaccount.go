package controlplane

import (
	"context"
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// serviceAccountTokenTTL is how long tokens from ServiceAccountConfig live;
// longer than any test, shorter than the API server's maximum.
const serviceAccountTokenTTL = 3600

// ServiceAccountConfig returns a client configuration that authenticates as
// the service account namespace/name with a real, signed token obtained
// through the TokenRequest API — the same kind of token a pod mounts — so
// RBAC is enforced exactly as for the bot in a cluster. The service account
// must exist.
func (cp *ControlPlane) ServiceAccountConfig(ctx context.Context, namespace, name string) (*rest.Config, error) {
	client, err := kubernetes.NewForConfig(cp.AdminConfig())
	if err != nil {
		return nil, fmt.Errorf("admin client: %w", err)
	}
	ttl := int64(serviceAccountTokenTTL)
	tr, err := client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &ttl},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("request token for service account %s/%s: %w", namespace, name, err)
	}
	cfg := cp.AdminConfig()
	cfg.BearerToken = tr.Status.Token
	return cfg, nil
}
