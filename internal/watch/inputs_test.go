package watch

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/testenv/controlplane"
	"github.com/pullfix/pullfix/internal/testenv/registries"
)

// TestInClusterImageIsCandidate: a broken tag of a repository that runs
// healthy elsewhere in the namespace is diagnosed with that running image
// offered as an in_cluster candidate, and the namespace's repositories on
// the same registry reach the diagnoser.
func TestInClusterImageIsCandidate(t *testing.T) {
	e := newEnv(t)
	stable := registries.PublicECR + "/" + registries.RetailUI + ":1.2.0"
	catalog := registries.PublicECR + "/" + registries.RetailCatalog + ":" + registries.RunbookTag
	broken := registries.PublicECR + "/" + registries.RetailUI + ":9.9.9"
	e.deployment("ui-stable", stable, 1)
	e.deployment("catalog", catalog, 1)
	poll(t, 60*time.Second, "ui-stable and catalog ready", func(ctx context.Context) (bool, error) {
		for _, n := range []string{"ui-stable", "catalog"} {
			d, err := e.cs.AppsV1().Deployments(e.ns).Get(ctx, n, metav1.GetOptions{})
			if err != nil || d.Status.ReadyReplicas != 1 {
				return false, nil
			}
		}
		return true, nil
	})
	e.deployment("ui-broken", broken, 1)
	poll(t, 60*time.Second, "ui-broken notified", func(context.Context) (bool, error) {
		return len(e.rec.openedFor("ui-broken")) > 0, nil
	})
	d := e.rec.openedFor("ui-broken")[0].Diagnosis
	if d == nil {
		t.Fatal("notified without a diagnosis")
	}
	if d.Cause != diagnose.TagNotFound {
		t.Errorf("cause = %s, want tag_not_found (%q)", d.Cause, d.Summary)
	}
	var found *diagnose.Candidate
	for i := range d.Candidates {
		if d.Candidates[i].Image == stable {
			found = &d.Candidates[i]
		}
	}
	if found == nil {
		t.Fatalf("candidates %+v lack the in-cluster image %s", d.Candidates, stable)
	}
	if found.Kind != diagnose.CandidateInCluster {
		t.Errorf("candidate %s kind %s, want in_cluster", stable, found.Kind)
	}
	if d.Candidates[0].Image != stable {
		t.Errorf("first candidate %s, want the running image %s before nearest tags", d.Candidates[0].Image, stable)
	}
	for _, want := range []string{registries.PublicECR + "/" + registries.RetailUI, registries.PublicECR + "/" + registries.RetailCatalog} {
		if !slices.Contains(d.Target.KnownRepositories, want) {
			t.Errorf("known repositories %v lack %s", d.Target.KnownRepositories, want)
		}
	}
}

// TestClusterImages: which running images become hints and repositories —
// Ready and Running only, same repository only, deduplicated, bounded,
// known repositories from the failing image's registry only.
func TestClusterImages(t *testing.T) {
	const repo = "registry.example.com/team/app"
	pod := func(name string, phase corev1.PodPhase, ready bool, images ...string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Status: corev1.PodStatus{Phase: phase}}
		for i, img := range images {
			c := fmt.Sprintf("c%d", i)
			p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c, Image: img})
			st := corev1.ContainerStatus{Name: c, Ready: ready}
			if phase == corev1.PodRunning {
				st.State.Running = &corev1.ContainerStateRunning{}
			}
			p.Status.ContainerStatuses = append(p.Status.ContainerStatuses, st)
		}
		return p
	}
	cases := []struct {
		name      string
		failing   string
		pods      []*corev1.Pod
		wantHints []string
		wantRepos []string
	}{
		{
			name:    "ready same repository, other tag",
			failing: repo + ":9.9.9",
			pods: []*corev1.Pod{
				pod("a", corev1.PodRunning, true, repo+":1.0", "registry.example.com/team/sidecar:1", "quay.io/x/y:1"),
				pod("b", corev1.PodRunning, true, repo+":1.0"),                        // duplicate
				pod("c", corev1.PodRunning, false, repo+":2.0"),                       // not ready
				pod("d", corev1.PodPending, false, repo+":3.0"),                       // not running
				pod("e", corev1.PodRunning, true, repo+":9.9.9"),                      // the failing image itself
				pod("f", corev1.PodRunning, true, "registry.example.com/team/app2:1"), // other repository
			},
			wantHints: []string{repo + ":1.0"},
			wantRepos: []string{repo, "registry.example.com/team/app2", "registry.example.com/team/sidecar"},
		},
		{
			name:    "docker hub short names normalised",
			failing: "nginx:1.99",
			pods: []*corev1.Pod{
				pod("a", corev1.PodRunning, true, "docker.io/library/nginx:1.27"),
				pod("b", corev1.PodRunning, true, "index.docker.io/library/nginx:1.99"), // same as failing
			},
			wantHints: []string{"docker.io/library/nginx:1.27"},
			wantRepos: []string{"index.docker.io/library/nginx"},
		},
		{
			name:    "at most five",
			failing: repo + ":0",
			pods: []*corev1.Pod{
				pod("a", corev1.PodRunning, true, repo+":1", repo+":2", repo+":3"),
				pod("b", corev1.PodRunning, true, repo+":4", repo+":5", repo+":6"),
			},
			wantHints: []string{repo + ":1", repo + ":2", repo + ":3", repo + ":4", repo + ":5"},
			wantRepos: []string{repo},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cs := fake.NewClientset()
			for _, p := range c.pods {
				if _, err := cs.CoreV1().Pods("ns").Create(t.Context(), p, metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			in := newInputs(cs)
			hints, repos := in.clusterImages(t.Context(), slog.New(slog.DiscardHandler), Key{Namespace: "ns", Image: c.failing})
			var got []string
			for _, h := range hints {
				if h.Kind != diagnose.CandidateInCluster || h.Note == "" {
					t.Errorf("hint %+v: want kind in_cluster with a note", h)
				}
				got = append(got, h.Image)
			}
			if !slices.Equal(got, c.wantHints) {
				t.Errorf("hints %v, want %v", got, c.wantHints)
			}
			if !slices.Equal(repos, c.wantRepos) {
				t.Errorf("repositories %v, want %v", repos, c.wantRepos)
			}
		})
	}
}

// TestNamespaceImagesPagedAndShared lists a namespace of 250 pods on the
// real API server: the listing is read in pages of clusterPodPage (so no
// more than a page of full pods is held at once), stops at
// clusterPodLimit, and concurrent diagnoses in the namespace share one
// listing.
func TestNamespaceImagesPagedAndShared(t *testing.T) {
	controlplane.Require(t, cp)
	cfg := cp.AdminConfig()
	cfg.QPS, cfg.Burst = 500, 1000
	admin, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ns := "images-" + strings.ToLower(rand.Text()[:6])
	if _, err := admin.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	poll(t, 30*time.Second, "default ServiceAccount", func(ctx context.Context) (bool, error) {
		_, err := admin.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	const pods = 250
	var wg sync.WaitGroup
	for i := range pods {
		wg.Go(func() {
			_, err := admin.CoreV1().Pods(ns).Create(t.Context(), &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p-%03d", i)},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: fmt.Sprintf("registry.example.com/team/app:%d", i)}}},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()

	var lists, listed atomic.Int64
	counting := cp.AdminConfig()
	counting.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/namespaces/"+ns+"/pods") {
				lists.Add(1)
				if r.URL.Query().Get("limit") != fmt.Sprint(clusterPodPage) {
					t.Errorf("list without the page limit: %s", r.URL.RawQuery)
				}
			}
			return rt.RoundTrip(r)
		})
	}
	cs, err := kubernetes.NewForConfig(counting)
	if err != nil {
		t.Fatal(err)
	}
	in := newInputs(cs)
	for range 8 {
		wg.Go(func() {
			items, err := in.namespaceImages(t.Context(), ns)
			if err != nil {
				t.Error(err)
			}
			listed.Store(int64(len(items)))
		})
	}
	wg.Wait()
	if got, want := lists.Load(), int64((pods+clusterPodPage-1)/clusterPodPage); got != want {
		t.Errorf("%d list requests for 8 concurrent diagnoses of %d pods, want %d (one listing, in pages)", got, pods, want)
	}
	if listed.Load() != pods {
		t.Errorf("listed %d images, want %d", listed.Load(), pods)
	}
	// Fresh: from the cache, no request.
	if _, err := in.namespaceImages(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	if got := lists.Load(); got != int64((pods+clusterPodPage-1)/clusterPodPage) {
		t.Errorf("a fresh listing was read again (%d requests)", got)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
