package watch

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// TestRunningPodWhoseNewImageFails: a Running pod (outside the Pending
// cache) whose image is changed in place to one that cannot be pulled is
// found through the kubelet's Failed event and reported once.
func TestRunningPodWhoseNewImageFails(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	tpl := podTemplate("bare", goodImage)
	if _, err := e.cs.CoreV1().Pods(e.ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "bare", Labels: tpl.Labels}, Spec: tpl.Spec}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, 60*time.Second, "bare Running", func(ctx context.Context) (bool, error) {
		p, err := e.cs.CoreV1().Pods(e.ns).Get(ctx, "bare", metav1.GetOptions{})
		return err == nil && p.Status.Phase == corev1.PodRunning, nil
	})
	patch := fmt.Sprintf(`[{"op":"replace","path":"/spec/containers/0/image","value":%q}]`, badImage)
	if _, err := e.cs.CoreV1().Pods(e.ns).Patch(ctx, "bare", types.JSONPatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	poll(t, 60*time.Second, "the in-place failure reported", func(context.Context) (bool, error) {
		return len(e.rec.openedFor("bare")) == 1, nil
	})
	inc := e.rec.openedFor("bare")[0]
	if inc.Key.Kind != "Pod" || inc.Key.Image != badImage || inc.Diagnosis == nil || inc.Diagnosis.Cause != "repo_not_found" {
		t.Errorf("incident %+v", inc)
	}
	if p, _ := e.cs.CoreV1().Pods(e.ns).Get(ctx, "bare", metav1.GetOptions{}); p.Status.Phase != corev1.PodRunning {
		t.Errorf("pod phase %s: the test meant a Running pod", p.Status.Phase)
	}
}
