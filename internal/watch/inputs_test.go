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

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
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
// those of workloads that rolled out and have Ready pods, same repository
// only, deduplicated, bounded; known repositories from the failing image's
// registry only, ready or not.
func TestClusterImages(t *testing.T) {
	const repo = "registry.example.com/team/app"
	spec := func(images ...string) corev1.PodTemplateSpec {
		var tpl corev1.PodTemplateSpec
		for i, img := range images {
			tpl.Spec.Containers = append(tpl.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: img})
		}
		return tpl
	}
	deploy := func(name string, ready, updated int32, images ...string) runtime.Object {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Spec: appsv1.DeploymentSpec{Template: spec(images...)},
			Status: appsv1.DeploymentStatus{Replicas: 2, ReadyReplicas: ready, UpdatedReplicas: updated}}
	}
	sts := func(name string, ready int32, rolledOut bool, images ...string) runtime.Object {
		s := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Spec: appsv1.StatefulSetSpec{Template: spec(images...)},
			Status: appsv1.StatefulSetStatus{ReadyReplicas: ready, CurrentRevision: "r1", UpdateRevision: "r1"}}
		if !rolledOut {
			s.Status.UpdateRevision = "r2"
		}
		return s
	}
	ds := func(name string, ready int32, images ...string) runtime.Object {
		return &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Spec: appsv1.DaemonSetSpec{Template: spec(images...)},
			Status: appsv1.DaemonSetStatus{NumberReady: ready, DesiredNumberScheduled: 3, UpdatedNumberScheduled: 3}}
	}
	cases := []struct {
		name      string
		failing   string
		objects   []runtime.Object
		wantHints []string
		wantNotes []string
		wantRepos []string
	}{
		{
			name:    "ready same repository, other tag",
			failing: repo + ":9.9.9",
			objects: []runtime.Object{
				deploy("a", 2, 2, repo+":1.0", "registry.example.com/team/sidecar:1", "quay.io/x/y:1"),
				deploy("b", 2, 2, repo+":1.0"),                        // duplicate
				deploy("c", 0, 2, repo+":2.0"),                        // no Ready pod
				deploy("d", 2, 1, repo+":3.0"),                        // rolling out: the Ready pods may run another image
				deploy("e", 2, 2, repo+":9.9.9"),                      // the failing image itself
				deploy("f", 2, 2, "registry.example.com/team/app2:1"), // other repository
				sts("g", 1, false, repo+":4.0"),                       // mid-rollout
			},
			wantHints: []string{repo + ":1.0"},
			wantNotes: []string{"running Ready in Deployment a"},
			wantRepos: []string{repo, "registry.example.com/team/app2", "registry.example.com/team/sidecar"},
		},
		{
			name:      "stateful sets and daemon sets count",
			failing:   repo + ":0",
			objects:   []runtime.Object{sts("db", 1, true, repo+":5"), ds("agent", 3, repo+":6"), ds("idle", 0, repo+":7")},
			wantHints: []string{repo + ":5", repo + ":6"},
			wantNotes: []string{"running Ready in StatefulSet db", "running Ready in DaemonSet agent"},
			wantRepos: []string{repo},
		},
		{
			name:    "docker hub short names normalised",
			failing: "nginx:1.99",
			objects: []runtime.Object{
				deploy("a", 0, 2, "docker.io/library/nginx:1.27"), // no Ready pod
				deploy("b", 2, 2, "docker.io/library/nginx:1.27"),
				deploy("c", 2, 2, "index.docker.io/library/nginx:1.99"), // same as failing
			},
			wantHints: []string{"docker.io/library/nginx:1.27"},
			wantNotes: []string{"running Ready in Deployment b"},
			wantRepos: []string{"index.docker.io/library/nginx"},
		},
		{
			name:    "at most five",
			failing: repo + ":0",
			objects: []runtime.Object{
				deploy("a", 2, 2, repo+":1", repo+":2", repo+":3"),
				deploy("b", 2, 2, repo+":4", repo+":5", repo+":6"),
			},
			wantHints: []string{repo + ":1", repo + ":2", repo + ":3", repo + ":4", repo + ":5"},
			wantRepos: []string{repo},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := newInputs(fake.NewClientset(c.objects...))
			hints, repos := in.clusterImages(t.Context(), slog.New(slog.DiscardHandler), Key{Namespace: "ns", Image: c.failing})
			var got, notes []string
			for _, h := range hints {
				if h.Kind != diagnose.CandidateInCluster || h.Note == "" {
					t.Errorf("hint %+v: want kind in_cluster with a note", h)
				}
				got = append(got, h.Image)
				notes = append(notes, h.Note)
			}
			if !slices.Equal(got, c.wantHints) {
				t.Errorf("hints %v, want %v", got, c.wantHints)
			}
			if c.wantNotes != nil && !slices.Equal(notes, c.wantNotes) {
				t.Errorf("notes %q, want %q", notes, c.wantNotes)
			}
			if !slices.Equal(repos, c.wantRepos) {
				t.Errorf("repositories %v, want %v", repos, c.wantRepos)
			}
		})
	}
}

// TestNamespaceImagesPagedAndShared lists a namespace of 250 Deployments
// on the real API server: each kind is read in pages of clusterListPage,
// and concurrent diagnoses in the namespace share one listing.
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
	const deployments = 250
	var wg sync.WaitGroup
	for i := range deployments {
		wg.Go(func() {
			name := fmt.Sprintf("d-%03d", i)
			labels := map[string]string{"app": name}
			_, err := admin.AppsV1().Deployments(ns).Create(t.Context(), &appsv1.Deployment{
				ObjectMeta: metav1.ObjectMeta{Name: name},
				Spec: appsv1.DeploymentSpec{Replicas: ptr(int32(0)), Selector: &metav1.LabelSelector{MatchLabels: labels},
					Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
						Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: fmt.Sprintf("registry.example.com/team/app:%d", i)}}}}},
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
			if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/namespaces/"+ns+"/deployments") {
				lists.Add(1)
				if r.URL.Query().Get("limit") != fmt.Sprint(clusterListPage) {
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
	pages := int64((deployments + clusterListPage - 1) / clusterListPage)
	if got := lists.Load(); got != pages {
		t.Errorf("%d Deployment list requests for 8 concurrent diagnoses of %d, want %d (one listing, in pages)", got, deployments, pages)
	}
	if listed.Load() != deployments {
		t.Errorf("listed %d images, want %d", listed.Load(), deployments)
	}
	// Fresh: from the cache, no request.
	if _, err := in.namespaceImages(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	if got := lists.Load(); got != pages {
		t.Errorf("a fresh listing was read again (%d requests)", got)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
