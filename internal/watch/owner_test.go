package watch

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pullfix/pullfix/internal/watch/workload"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestOwnerResolverReads checks which pods cost a ReplicaSet read: none
// for a pod named by the Deployment controller's rule, one for the rest,
// and one for a burst of pods of the same new owner.
func TestOwnerResolverReads(t *testing.T) {
	ctrl := true
	rs := func(name, deploy string) *appsv1.ReplicaSet {
		r := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}
		if deploy != "" {
			r.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "Deployment", Name: deploy, Controller: &ctrl}}
		}
		return r
	}
	pod := func(rsName, hash string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: rsName + "-x1", Labels: map[string]string{},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: rsName, Controller: &ctrl}}}}
		if hash != "" {
			p.Labels[appsv1.DefaultDeploymentUniqueLabelKey] = hash
		}
		return p
	}
	long := strings.Repeat("a", 243) // truncated by the controller: 243+1+9 = 253
	for _, tc := range []struct {
		name      string
		pod       *corev1.Pod
		objects   []runtime.Object
		want      Workload
		wantReads int64
	}{
		{name: "deployment's replica set", pod: pod("ui-new-7d9f8c6b5", "7d9f8c6b5"), want: Workload{Kind: "Deployment", Name: "ui-new"}},
		{name: "bare replica set", pod: pod("frontend", ""), objects: []runtime.Object{rs("frontend", "")},
			want: Workload{Kind: "ReplicaSet", Name: "frontend"}, wantReads: 1},
		{name: "adopted replica set under another name", pod: pod("legacy-rs", "abc123"), objects: []runtime.Object{rs("legacy-rs", "web")},
			want: Workload{Kind: "Deployment", Name: "web"}, wantReads: 1},
		{name: "name at the length limit", pod: pod(long+"-5d4f7c9b8", "5d4f7c9b8"), objects: []runtime.Object{rs(long+"-5d4f7c9b8", long+"bcdef")},
			want: Workload{Kind: "Deployment", Name: long + "bcdef"}, wantReads: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset(tc.objects...)
			var reads atomic.Int64
			cs.PrependReactor("get", "replicasets", func(k8stesting.Action) (bool, runtime.Object, error) {
				reads.Add(1)
				return false, nil, nil
			})
			// As the informer caches it.
			slim, _ := slimPod(tc.pod)
			got, err := workload.NewOwnerResolver(cs, 0).Resolve(context.Background(), slim.(*corev1.Pod))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("resolved %+v, want %+v", got, tc.want)
			}
			if reads.Load() != tc.wantReads {
				t.Errorf("%d ReplicaSet reads, want %d", reads.Load(), tc.wantReads)
			}
		})
	}

	t.Run("a burst of one owner's pods reads it once", func(t *testing.T) {
		cs := fake.NewClientset(rs("frontend", ""))
		var reads atomic.Int64
		cs.PrependReactor("get", "replicasets", func(k8stesting.Action) (bool, runtime.Object, error) {
			reads.Add(1)
			time.Sleep(50 * time.Millisecond) // a loaded API server
			return false, nil, nil
		})
		r := workload.NewOwnerResolver(cs, 0)
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				if w, err := r.Resolve(context.Background(), pod("frontend", "")); err != nil || w.Name != "frontend" {
					t.Errorf("resolved %+v, %v", w, err)
				}
			})
		}
		wg.Wait()
		if n := reads.Load(); n != 1 {
			t.Errorf("%d reads for 20 pods of one ReplicaSet, want 1", n)
		}
	})
}
