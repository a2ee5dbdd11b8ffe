package creds

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/pullfix/pullfix/internal/diagnose"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestCandidateSecretsBounded (client-go fake: a unit test of the order
// and the bound): ServiceAccounts' secrets first, "default" first, then
// pods' by use; never a list of Secrets.
func TestCandidateSecretsBounded(t *testing.T) {
	cs := fake.NewClientset(
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "z"}, ImagePullSecrets: []corev1.LocalObjectReference{{Name: "sa-z"}}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "default"}, ImagePullSecrets: []corev1.LocalObjectReference{{Name: "sa-default"}, {Name: "shared"}}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a"}, Spec: corev1.PodSpec{ImagePullSecrets: []corev1.LocalObjectReference{{Name: "rare"}, {Name: "shared"}}}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "b"}, Spec: corev1.PodSpec{ImagePullSecrets: []corev1.LocalObjectReference{{Name: "common"}}}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c"}, Spec: corev1.PodSpec{ImagePullSecrets: []corev1.LocalObjectReference{{Name: "common"}}}},
		&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "d"}, Spec: corev1.PodSpec{ImagePullSecrets: []corev1.LocalObjectReference{{Name: "elsewhere"}}}},
	)
	quiet := slog.New(slog.DiscardHandler)
	got, err := candidateSecrets(t.Context(), cs, "ns", quiet)
	if err != nil {
		t.Fatal(err)
	}
	if want := "sa-default,shared,sa-z,common,rare"; strings.Join(got, ",") != want {
		t.Errorf("candidates %v, want %s", got, want)
	}
	prober, err := diagnose.NewProber()
	if err != nil {
		t.Fatal(err)
	}
	cs.ClearActions()
	if _, err := FindWorkingPullSecrets(t.Context(), cs, "ns", "registry.example.com/app:1", diagnose.Platform{}, prober, WithMaxSecrets(3), WithFindLogger(quiet)); err != nil {
		t.Fatal(err)
	}
	gets := 0
	for _, a := range cs.Actions() {
		if a.GetResource().Resource == "secrets" {
			if a.GetVerb() != "get" {
				t.Errorf("%s secrets: only get is allowed", a.GetVerb())
			}
			if _, ok := a.(k8stesting.GetAction); ok {
				gets++
			}
		}
	}
	if gets != 3 {
		t.Errorf("%d secrets read, want the bound of 3", gets)
	}
}
