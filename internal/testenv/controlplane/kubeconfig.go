package controlplane

import (
	"encoding/base64"
	"fmt"
	"os"
)

// writeKubeconfig writes a single-context kubeconfig for a bearer-token
// user. It is written by hand rather than through clientcmd to keep that
// dependency (and its auth plugins) out of every test binary.
func writeKubeconfig(path, server string, caPEM []byte, token string) error {
	data := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: pullfix-test
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: %s
  user:
    token: %s
contexts:
- name: pullfix-test
  context:
    cluster: pullfix-test
    user: %s
current-context: pullfix-test
`, server, base64.StdEncoding.EncodeToString(caPEM), adminUser, token, adminUser)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}
