package watch

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/testenv/registries"
)

// TestRegistryOf: the registry host a group is keyed by, in diagnose's one
// normalisation (Docker Hub's names are "docker.io").
func TestRegistryOf(t *testing.T) {
	for _, c := range []struct{ image, want string }{
		{"nginx:1", "docker.io"},
		{"docker.io/library/nginx", "docker.io"},
		{"index.docker.io/library/nginx", "docker.io"},
		{"public.ecr.aws/a/b:1", "public.ecr.aws"},
		{"127.0.0.1:5000/x/y:1", "127.0.0.1:5000"},
		{"Registry.Example.com/UPPER:1", "Registry.Example.com"}, // invalid reference: host kept as written
	} {
		if got := registryOf(c.image); got != c.want {
			t.Errorf("diagnose.RegistryHost(%q) = %q, want %q", c.image, got, c.want)
		}
	}
}

// TestStormGrouped: ten Deployments whose images live on a black-holed
// registry make one post, edited into a group listing all ten, and ten
// incidents; two missing repositories at one registry are two posts.
// Dismissing the group closes every member.
func TestStormGrouped(t *testing.T) {
	e := newCluster(t)
	hole := registries.BlackHole(t)
	r := e.start(e.rec, WithStateConfigMap(e.ns, ""))
	const n = 10
	began := time.Now()
	for i := range n {
		e.deployment(fmt.Sprintf("svc-%d", i), fmt.Sprintf("%s/team/svc-%d:1.0", hole.Host, i), 1)
	}
	e.deployment("typo-a", badImage, 1)
	e.deployment("typo-b", otherBadImage, 1)

	var last Group
	defer func() {
		if t.Failed() {
			opened, _ := e.rec.snapshot()
			for _, inc := range opened {
				t.Logf("posted %s %s cause %s group %q", inc.ID, inc.Key.Name, inc.Diagnosis.Cause, inc.GroupID)
			}
			for _, inc := range r.w.Incidents() {
				t.Logf("tracked %s %s pods %d state %s group %q", inc.ID, inc.Key.Name, len(inc.Pods), inc.State, inc.GroupID)
			}
		}
	}()
	poll(t, 60*time.Second, "one group of ten", func(context.Context) (bool, error) {
		gs := e.rec.groupUpdates()
		if len(gs) == 0 {
			return false, nil
		}
		last = gs[len(gs)-1]
		return len(last.Members) == n, nil
	})
	t.Logf("storm of %d grouped in %s, %d group edits", n, time.Since(began).Round(time.Millisecond), len(e.rec.groupUpdates()))
	poll(t, 30*time.Second, "typos notified", func(context.Context) (bool, error) {
		return len(e.rec.openedFor("typo-a")) == 1 && len(e.rec.openedFor("typo-b")) == 1, nil
	})

	opened, _ := e.rec.snapshot()
	var stormPosts []Incident
	for _, inc := range opened {
		if inc.Key.Image != badImage && inc.Key.Image != otherBadImage {
			stormPosts = append(stormPosts, inc)
		}
	}
	if len(stormPosts) != 1 {
		t.Fatalf("%d posts for the storm, want 1", len(stormPosts))
	}
	if last.Cause != diagnose.NetworkTimeout || last.Registry != hole.Host || last.NotifyRef == "" || last.Open() != n {
		t.Errorf("group %s: cause %s registry %s ref %q open %d", last.ID, last.Cause, last.Registry, last.NotifyRef, last.Open())
	}
	grouped := 0
	for _, inc := range r.w.Incidents() {
		switch {
		case inc.Key.Image == badImage || inc.Key.Image == otherBadImage:
			if inc.GroupID != "" {
				t.Errorf("%s (%s) grouped: per-image causes are not", inc.Key.Name, inc.Diagnosis.Cause)
			}
		case inc.GroupID == last.ID && inc.NotifyRef == last.NotifyRef && inc.State == StateNotified:
			grouped++
		default:
			t.Errorf("storm incident %s: group %q ref %q state %s", inc.Key.Name, inc.GroupID, inc.NotifyRef, inc.State)
		}
	}
	if grouped != n {
		t.Errorf("%d incidents tracked in the group, want %d", grouped, n)
	}

	if err := r.w.Dismiss(t.Context(), last.ID, "U-oncall"); err != nil {
		t.Fatal(err)
	}
	poll(t, 10*time.Second, "group reported dismissed", func(context.Context) (bool, error) {
		gs := e.rec.groupUpdates()
		g := gs[len(gs)-1]
		return len(g.Members) == n && g.Open() == 0, nil
	})
	if u := e.rec.updates(); len(u) != 0 {
		t.Errorf("grouped members reported one by one: %d Updated calls", len(u))
	}
}

// TestChained: a detection joins a group's burst when the detections at
// the registry leave no gap wider than the window.
func TestChained(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	w := &Watcher{groupWindow: 2 * time.Second}
	w.resetLocked()
	for _, s := range []float64{0, 1, 2.5, 4, 9, 10} {
		w.noteDetectionLocked("reg.example.com/a:1", at(s))
	}
	g := &group{first: at(0), last: at(1)}
	for _, c := range []struct {
		detected float64
		want     bool
	}{
		{0.5, true},  // inside the span
		{2.9, true},  // within the window of the span
		{4, true},    // chained through 2.5
		{9, false},   // 4 → 9 is a 5s gap
		{10, false},  // same
		{-1.5, true}, // before, within the window
		{-5, false},
	} {
		if got := w.chainedLocked("reg.example.com", g, at(c.detected)); got != c.want {
			t.Errorf("detected at %+.1fs: chained = %v, want %v", c.detected, got, c.want)
		}
	}
}

// TestGroupKeyByCause: a storm of a registry answering 5xx is one incident
// per registry; not-found causes (image_not_found included) are per image
// and never grouped.
func TestGroupKeyByCause(t *testing.T) {
	w := &Watcher{groupWindow: DefaultGroupWindow}
	key := func(c diagnose.Cause, image string) (groupKey, bool) {
		return w.groupKeyOf(&diagnose.Diagnosis{Cause: c}, Key{Cluster: "c", Image: image})
	}
	a, okA := key(diagnose.RegistryUnavailable, "quay.io/org/a:1")
	b, okB := key(diagnose.RegistryUnavailable, "quay.io/org/b:2")
	c, okC := key(diagnose.RegistryUnavailable, "ghcr.io/org/a:1")
	if !okA || !okB || !okC || a != b || a == c {
		t.Errorf("registry_unavailable: keys %+v %+v %+v (grouped %t %t %t), want one group per registry", a, b, c, okA, okB, okC)
	}
	for _, cause := range []diagnose.Cause{diagnose.ImageNotFound, diagnose.RepoNotFound, diagnose.TagNotFound, diagnose.NotFoundOrUnauthorized} {
		if _, ok := key(cause, "quay.io/org/a:1"); ok {
			t.Errorf("%s grouped: it is per image", cause)
		}
	}
}
