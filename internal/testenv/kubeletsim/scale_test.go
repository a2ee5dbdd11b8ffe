package kubeletsim

import (
	"context"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pullfix/pullfix/internal/testenv/registries"
)

// TestScaleSmall drives a few hundred pods over several nodes: healthy ones
// become Ready, failing ones each get a failing status write that the hook
// sees. It guards the informer/workqueue path the 10,000-pod benchmark uses.
func TestScaleSmall(t *testing.T) {
	reg := registries.New(t)
	registries.SeedRunbook(t, reg)
	var mu sync.Mutex
	failing := map[types.NamespacedName]time.Time{}
	e := newEnv(t, WithNodeCount("", 0), WithNodeNames("scale-0", "scale-1", "scale-2", "scale-3"),
		WithMirrors(map[string]string{registries.PublicECR: reg.Host}))
	e.sim.OnStatusWrite(func(w StatusWrite) {
		p, reason, at := w.Pod, w.Reason, w.Written
		if reason == "ErrImagePull" {
			mu.Lock()
			if _, ok := failing[p]; !ok {
				failing[p] = at
			}
			mu.Unlock()
		}
	})
	deploy := func(name, image string, replicas int32) {
		labels := map[string]string{"app": name}
		_, err := e.cs.AppsV1().Deployments(e.ns).Create(t.Context(), &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: appsv1.DeploymentSpec{
				Replicas: &replicas,
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: image}}},
				},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	deploy("good", "public.ecr.aws/"+registries.RetailUI+":1.2.1", 200)
	deploy("bad", "public.ecr.aws/"+registries.RetailingUI+":1.2.1", 50)
	poll(t, 120*time.Second, "200 ready and 50 failing", func(ctx context.Context) (bool, error) {
		d, err := e.cs.AppsV1().Deployments(e.ns).Get(ctx, "good", metav1.GetOptions{})
		if err != nil || d.Status.ReadyReplicas != 200 {
			return false, nil
		}
		mu.Lock()
		defer mu.Unlock()
		return len(failing) == 50, nil
	})
	t.Logf("250 pods settled in %s", time.Since(start).Round(time.Millisecond))
	nodes := map[string]int{}
	l, err := e.cs.CoreV1().Pods(e.ns).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range l.Items {
		nodes[p.Spec.NodeName]++
	}
	if len(nodes) != 4 {
		t.Errorf("pods per node %v", nodes)
	}
}
