package diagnose

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckReference(t *testing.T) {
	tests := []struct {
		ref    string
		reason string // "" means valid
	}{
		{"nginx", ""},
		{"nginx:1.27", ""},
		{"docker.io/library/nginx:1.27", ""},
		{"localhost:5000/a/b:c", ""},
		{"ACCOUNT.dkr.ecr.REGION.amazonaws.com/app:1", ""},
		{"quay.io/a/b@sha256:8d0bff43db3ce5c528cb6f957520511d263d7cceee012696e4afdc9087919bb9", ""},
		{"Nginx:latest", "upper-case"},
		{"quay.io/biocontainers/MiModD:0.1.9", "upper-case"},
		{"taigaio/taiga-back: {{ .Chart.AppVersion }}", "template"},
		{"${REGISTRY}/app:1", "template"},
		{"/cloudfoundry/app:1", "slash"},
		{"nginx :1", "whitespace"},
		{"https://ghcr.io/a/b:1", "URL scheme"},
		{"nginx:", "separator"},
		{"a//b", "empty path"},
		{"nginx:-bad", "tag"},
		{"nginx@sha256:abc", "digest"},
		{"", "empty"},
		{"8d0bff43db3ce5c528cb6f957520511d263d7cceee012696e4afdc9087919bb9", "hex"},
	}
	for _, tt := range tests {
		err := CheckReference(tt.ref)
		if tt.reason == "" {
			if err != nil {
				t.Errorf("CheckReference(%q) = %v, want nil", tt.ref, err)
			}
			continue
		}
		var re *ReferenceError
		if !errors.As(err, &re) {
			t.Errorf("CheckReference(%q) = %v, want a *ReferenceError", tt.ref, err)
			continue
		}
		if re.Ref != tt.ref || !strings.Contains(re.Reason, tt.reason) {
			t.Errorf("CheckReference(%q) = %+v, want reason containing %q", tt.ref, re, tt.reason)
		}
		if re.Err == nil {
			t.Errorf("CheckReference(%q) lost the parser error", tt.ref)
		}
	}
}

func TestRegistryOf(t *testing.T) {
	tests := map[string]string{
		"nginx":                         "docker.io",
		"library/nginx:1":               "docker.io",
		"index.docker.io/library/nginx": "docker.io",
		"docker.io/bitnami/jenkins:1":   "docker.io",
		"ghcr.io/a/b:1":                 "ghcr.io",
		"localhost:5000/a":              "localhost:5000",
		"taigaio/taiga-back: {{ x }}":   "docker.io",
		"${REGISTRY}/app:1":             "",
		"":                              "",
	}
	for in, want := range tests {
		if got := registryOf(in); got != want {
			t.Errorf("registryOf(%q) = %q, want %q", in, got, want)
		}
	}
}
