package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pullfix/pullfix/internal/slackapp"
	"github.com/pullfix/pullfix/internal/testenv/registries"
)

// TestRecheckAfterRolloutUsesPodCredentials: a private registry, the pod's
// pull secret (from its ServiceAccount), a tag typo. The verified tag is
// deleted between the diagnosis and the click, so the fix rolls out and
// still fails; the diagnosis the message then shows is made with the pod's
// own credentials — the tag is missing — and not anonymously, which would
// read as "credentials missing".
func TestRecheckAfterRolloutUsesPodCredentials(t *testing.T) {
	const password = "ecr-token-for-tests"
	ecr := registries.New(t, registries.WithBasicAuth(registries.BasicAuth{Users: map[string]registries.BasicUser{"AWS": {Password: password}}}))
	ecr.Push(t, "retail-store-sample-ui:1.2.1", registries.MultiArch...)
	ecr.Push(t, "retail-store-sample-ui:1.1.0", registries.MultiArch...)
	bad, fix := ecrHost+"/retail-store-sample-ui:1.2.9", ecrHost+"/retail-store-sample-ui:1.2.1"
	e := newE2E(t, world{mirrors: map[string]string{ecrHost: ecr.Host}})
	e.env["PULLFIX_ROLLOUT_DEADLINE"] = "15s"

	e.createPullSecret(t, "regcred", ecrHost, "AWS", password)
	ctx := t.Context()
	// The ServiceAccount admission plugin copies the default account's pull
	// secrets into every pod created after this.
	sa, err := e.admin.CoreV1().ServiceAccounts(e.ns).Get(ctx, "default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sa.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "regcred"}}
	if _, err := e.admin.CoreV1().ServiceAccounts(e.ns).Update(ctx, sa, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	startBot(t, e)
	e.createDeployment(t, "ui-new", bad)
	root := e.waitRoot(t)
	pod := e.waitPullFailure(t, "ui-new", "ImagePullBackOff")
	if len(pod.Spec.ImagePullSecrets) != 1 {
		t.Fatalf("the pod has pull secrets %v, want regcred from its ServiceAccount", pod.Spec.ImagePullSecrets)
	}
	bs := parseBlocks(t, root.Blocks)
	if h := bs.header(); h != "ui-new: tag not found" {
		t.Fatalf("header %q, want the tag not found (probed with the pod's secret)", h)
	}
	set := bs.button(t, slackapp.ActionIDSetImage, "Set image to retail-store-sample-ui:1.2.1")

	// The verified tag disappears before the click: the fix rolls out and
	// fails.
	tag, err := name.NewTag(ecr.AdminHost()+"/retail-store-sample-ui:1.2.1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(tag, remote.WithTransport(http.DefaultTransport)); err != nil {
		t.Fatal(err)
	}
	e.click(t, approverID, root, set)
	var header string
	waitSlack(t, e.emu, 90*time.Second, "the root message to say the rollout still fails", func() bool {
		m, _ := e.emu.Message(channelID, root.TS)
		var bs blocks
		if json.Unmarshal(m.Blocks, &bs) != nil {
			return false
		}
		header = bs.header()
		return strings.HasPrefix(header, "Still failing")
	})
	t.Logf("after the rollout deadline: %q", header)
	if header != "Still failing — ui-new: tag not found" {
		t.Errorf("header %q, want the tag not found again, diagnosed with the pod's credentials", header)
	}
	if img := e.deployment(t, "ui-new").Spec.Template.Spec.Containers[0].Image; img != fix {
		t.Errorf("image %q, want the applied fix %q", img, fix)
	}
	e.checkNoForbidden(t)
}
