package controlplane

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"
)

// NodeKubeconfig writes a kubeconfig for a kubelet named nodeName and
// returns its path: a client certificate signed by the test CA for
// system:node:<nodeName> in group system:nodes, which is what a kubelet
// has after TLS bootstrap. kube-apiserver authorizes it with the Node
// authorizer and NodeRestriction, so a real kubelet (internal/testenv/node)
// can read a pull Secret only when a pod bound to it names it — as in a
// real cluster.
func (cp *ControlPlane) NodeKubeconfig(nodeName string) (string, error) {
	if nodeName == "" {
		return "", errors.New("node kubeconfig: empty node name")
	}
	caCert, caKey, err := cp.loadCA()
	if err != nil {
		return "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generate node key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return "", fmt.Errorf("create node certificate: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	b64 := base64.StdEncoding.EncodeToString
	path := cp.path("node-" + nodeName + ".kubeconfig")
	creds := "    client-certificate-data: " + b64(certPEM) + "\n    client-key-data: " + b64(ecKeyPEM(key)) + "\n"
	if err := writeKubeconfigFor(path, cp.host, cp.pki.caPEM, nodeName, creds); err != nil {
		return "", fmt.Errorf("node %s: %w", nodeName, err)
	}
	return path, nil
}

// loadCA reads the test CA's certificate and key back from disk.
func (cp *ControlPlane) loadCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(cp.pki.caPEM)
	if block == nil {
		return nil, nil, errors.New("parse test CA certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse test CA certificate: %w", err)
	}
	kp, err := os.ReadFile(cp.pki.caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("read test CA key: %w", err)
	}
	kb, _ := pem.Decode(kp)
	if kb == nil {
		return nil, nil, errors.New("parse test CA key")
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse test CA key: %w", err)
	}
	return cert, key, nil
}

// CAFile is the path of the test CA's certificate (PEM), e.g. for a
// kubelet's --client-ca-file.
func (cp *ControlPlane) CAFile() string { return cp.pki.caCert }
