package admission_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pullfix/pullfix/internal/testenv/registries"
)

// TestAdmissionUsesThePodsPullCredentials: a private registry answers 401
// to anyone without the team's credentials and "repository not found" to
// the team. A typo is warned about only when the check runs with the
// credentials the pods would use: the pod template's imagePullSecrets, or
// — when it names none — its service account's. Without credentials the
// 401 is not warned about (the nodes may hold credentials of their own).
func TestAdmissionUsesThePodsPullCredentials(t *testing.T) {
	const host = "registry.corp.example"
	private := registries.New(t, registries.WithBasicAuth(registries.BasicAuth{Users: map[string]registries.BasicUser{"ci": {Password: "s3cret"}}}))
	private.Push(t, "team/app:1")
	pub := registries.New(t)
	e := newEnv(t, envConfig{registryHost: pub.Host, mirrors: map[string]string{host: private.Host}, namespaces: []string{"private"}})
	ctx := t.Context()
	admin := e.cs

	auth := base64.StdEncoding.EncodeToString([]byte("ci:s3cret"))
	if _, err := admin.CoreV1().Secrets(e.ns("private")).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "regcred"}, Type: corev1.SecretTypeDockerConfigJson,
		Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth))},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().ServiceAccounts(e.ns("private")).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "builder"}, ImagePullSecrets: []corev1.LocalObjectReference{{Name: "regcred"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	typo := host + "/team/apq:1"
	e.warn.Take()
	for _, tc := range []struct {
		name  string
		spec  func(*corev1.PodSpec)
		warns bool
	}{
		{"service account's pull secret", func(s *corev1.PodSpec) { s.ServiceAccountName = "builder" }, true},
		{"pod's own pull secret", func(s *corev1.PodSpec) { s.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}} }, true},
		{"no credentials: 401, not warned", func(*corev1.PodSpec) {}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := deployment(strings.ReplaceAll(strings.ReplaceAll(tc.name, " ", "-"), "'", "")[:12]+"x", typo)
			tc.spec(&d.Spec.Template.Spec)
			if _, err := e.cs.AppsV1().Deployments(e.ns("private")).Create(ctx, d, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Fatal(err)
			}
			got := e.warn.Take()
			prefix := "image " + typo + ": repository not found at " + host
			switch {
			case tc.warns && (len(got) != 1 || !strings.HasPrefix(got[0], prefix)):
				t.Errorf("warnings = %q, want one starting %q", got, prefix)
			case !tc.warns && len(got) != 0:
				t.Errorf("warnings = %q, want none", got)
			}
		})
	}
}

// TestAdmissionChecksNodePlatforms: with linux/amd64 and linux/arm64
// nodes, an index without arm64 is warned about (the arm64 nodes' pulls
// fail "no match for platform"); a multi-arch index is not; a
// single-platform image is not either (the runtime pulls it on any node;
// it is not a pull failure).
func TestAdmissionChecksNodePlatforms(t *testing.T) {
	reg := registries.New(t)
	registries.SeedRunbook(t, reg)
	nodes := newAdmin(t).CoreV1().Nodes()
	for i, arch := range []string{"amd64", "amd64", "arm64"} {
		name := fmt.Sprintf("platform-node-%d", i)
		if _, err := nodes.Create(t.Context(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name,
			Labels: map[string]string{corev1.LabelOSStable: "linux", corev1.LabelArchStable: arch}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nodes.Delete(context.Background(), name, metav1.DeleteOptions{}) })
	}
	e := newEnv(t, envConfig{registryHost: reg.Host, namespaces: []string{"platforms"}})
	for _, tc := range []struct {
		image string
		want  string
	}{
		{"public.ecr.aws/" + registries.RetailUtilsAMD64Index + ":1.2.1",
			"image public.ecr.aws/" + registries.RetailUtilsAMD64Index + ":1.2.1: public.ecr.aws offers linux/amd64, not linux/arm64, which nodes run"},
		{goodImage, ""},
		{"public.ecr.aws/" + registries.RetailAssetsAMD64 + ":1.2.1", ""},
	} {
		if _, err := e.cs.AppsV1().Deployments(e.ns("platforms")).Create(t.Context(), deployment("p", tc.image), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Fatal(err)
		}
		got := e.warn.Take()
		if (tc.want == "" && len(got) != 0) || (tc.want != "" && (len(got) != 1 || got[0] != tc.want)) {
			t.Errorf("%s: warnings = %q, want %q", tc.image, got, tc.want)
		}
	}
}

// TestAdmissionFindsCandidateWithoutCatalog: public.ecr.aws has no
// /v2/_catalog; the replacement comes from what the namespace already runs
// on that registry (the watcher's in-cluster look-up), verified at the
// registry before it is named.
func TestAdmissionFindsCandidateWithoutCatalog(t *testing.T) {
	reg := registries.New(t, registries.WithoutCatalog())
	registries.SeedRunbook(t, reg)
	e := newEnv(t, envConfig{registryHost: reg.Host, namespaces: []string{"nocatalog"}})
	deps := e.cs.AppsV1().Deployments(e.ns("nocatalog"))
	if _, err := deps.Create(t.Context(), deployment("ui", goodImage), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := deps.Create(t.Context(), deployment("ui-new", badImage), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := "image " + badImage + ": repository not found at public.ecr.aws; " + goodImage + " exists"
	got := e.warn.Take()
	if len(got) != 1 || got[0] != want {
		t.Fatalf("warnings = %q, want [%q]", got, want)
	}
}

// TestAdmissionDoesNotCacheAnUnreachedRegistry: a registry answering 503
// is not warned about, and its answer is not kept: the next apply asks
// again, so a recovered registry's verdict is seen at once.
func TestAdmissionDoesNotCacheAnUnreachedRegistry(t *testing.T) {
	reg := registries.New(t, registries.WithServerError(registries.ServerError{Status: 503}))
	e := newEnv(t, envConfig{registryHost: reg.Host, deny: []string{"failing"}, namespaces: []string{"failing"}})
	for i := range 2 {
		if _, err := e.cs.AppsV1().Deployments(e.ns("failing")).Create(t.Context(), deployment("ui-new", badImage), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			t.Fatalf("apply %d while the registry answers 503 (deny mode on): %v", i+1, err)
		}
		if got := e.warn.Take(); len(got) != 0 {
			t.Errorf("apply %d: warnings %q", i+1, got)
		}
	}
	if probed, cached := e.metrics.Images(); probed != 2 || cached != 0 {
		t.Errorf("images probed %v, from cache %v; want 2 and 0", probed, cached)
	}
}
