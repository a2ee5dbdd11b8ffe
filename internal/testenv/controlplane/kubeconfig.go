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
	return writeKubeconfigFor(path, server, caPEM, adminUser, "    token: "+token+"\n")
}

// writeKubeconfigFor writes a single-context kubeconfig for user, whose
// credentials are the given lines of its "user:" section.
func writeKubeconfigFor(path, server string, caPEM []byte, user, credentials string) error {
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
%scontexts:
- name: pullfix-test
  context:
    cluster: pullfix-test
    user: %s
current-context: pullfix-test
`, server, base64.StdEncoding.EncodeToString(caPEM), user, credentials, user)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}
