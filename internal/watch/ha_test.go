package watch

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/watch/incident"
	"github.com/pullfix/pullfix/internal/watch/leader"
)

// testLease is a fast Lease for tests: a cleanly stopped leader is
// replaced within RetryPeriod (the Lease is released on cancel).
func testLease(ns, identity string) leader.Config {
	return leader.Config{Namespace: ns, Identity: identity, LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond}
}

// waitReady waits until the Deployment's pods all run and are ready.
func (e *env) waitReady(name string, replicas int32) {
	e.t.Helper()
	poll(e.t, 90*time.Second, name+" ready", func(ctx context.Context) (bool, error) {
		d, err := e.cs.AppsV1().Deployments(e.ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return d.Status.ObservedGeneration >= d.Generation && d.Status.ReadyReplicas == replicas &&
			d.Status.UpdatedReplicas == replicas && d.Status.Replicas == replicas, nil
	})
}

// activeIncident polls until w tracks an incident of the workload with n
// failing pods, and returns it.
func activeIncident(t *testing.T, w *Watcher, workload string, pods int) Incident {
	t.Helper()
	var got Incident
	poll(t, 60*time.Second, fmt.Sprintf("incident of %s with %d pods", workload, pods), func(context.Context) (bool, error) {
		for _, inc := range w.Incidents() {
			if inc.Key.Name == workload && len(inc.Pods) == pods {
				got = inc
				return true, nil
			}
		}
		return false, nil
	})
	return got
}

// TestLeaderElection: two replicas against one cluster post one
// notification; when the leader stops, the follower takes over from the
// state ConfigMap, posts nothing again, and reports the fix.
func TestLeaderElection(t *testing.T) {
	e := newCluster(t)
	a := e.start(e.rec, WithStateConfigMap(e.ns, ""), WithLeaderElection(testLease(e.ns, "replica-a")))
	b := e.start(e.rec, WithStateConfigMap(e.ns, ""), WithLeaderElection(testLease(e.ns, "replica-b")))
	var leader, follower *running
	poll(t, 30*time.Second, "one leader", func(context.Context) (bool, error) {
		switch {
		case a.w.IsLeader() && !b.w.IsLeader():
			leader, follower = a, b
		case b.w.IsLeader() && !a.w.IsLeader():
			leader, follower = b, a
		default:
			return false, nil
		}
		return true, nil
	})

	e.deployment("ui-new", badImage, 3)
	first := activeIncident(t, leader.w, "ui-new", 3)
	poll(t, 30*time.Second, "one notification", func(context.Context) (bool, error) {
		return len(e.rec.openedFor("ui-new")) >= 1, nil
	})
	if n := len(e.rec.openedFor("ui-new")); n != 1 {
		t.Fatalf("%d notifications from two replicas, want 1", n)
	}
	if follower.w.IsLeader() || len(follower.w.Incidents()) != 0 {
		t.Errorf("follower leads (%v) or tracks incidents %v: followers must stay quiet", follower.w.IsLeader(), follower.w.Incidents())
	}
	if _, err := follower.w.Recheck(t.Context(), first.ID); err == nil {
		t.Error("a follower rechecked an incident: only the leader holds them")
	}

	// On a loaded machine the first post may carry the kubelet's words only
	// (the diagnosis budget ran out) and the registry's verdict arrive as a
	// refinement later. What the takeover promises is to keep what the
	// leader had saved, so wait until the state holds the verified candidate.
	poll(t, 60*time.Second, "the verified candidate saved in the state", func(ctx context.Context) (bool, error) {
		cm, err := e.cs.CoreV1().ConfigMaps(e.ns).Get(ctx, incident.DefaultStateConfigMap, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		rec, ok := cm.Data[first.ID]
		return ok && strings.Contains(rec, goodImage), nil
	})

	stopped := time.Now()
	if err := leader.stop(); err != nil {
		t.Fatal(err)
	}
	poll(t, 30*time.Second, "follower takes over", func(context.Context) (bool, error) { return follower.w.IsLeader(), nil })
	t.Logf("takeover after a clean stop: %s", time.Since(stopped).Round(time.Millisecond))
	taken := activeIncident(t, follower.w, "ui-new", 3)
	if taken.ID != first.ID || taken.State != StateNotified || taken.NotifyRef != "ref-1" {
		t.Errorf("new leader's incident %+v, want id %s notified with ref-1 from the state", taken, first.ID)
	}
	if taken.Diagnosis == nil || taken.Diagnosis.Cause != diagnose.RepoNotFound || len(taken.Diagnosis.Candidates) == 0 || taken.Diagnosis.Candidates[0].Image != goodImage {
		t.Errorf("new leader lost the verified candidates: %+v", taken.Diagnosis)
	}

	e.setImage("ui-new", goodImage)
	poll(t, 90*time.Second, "resolved by the new leader", func(context.Context) (bool, error) {
		_, resolved := e.rec.snapshot()
		return len(resolved) == 1, nil
	})
	opened, resolved := e.rec.snapshot()
	if len(opened) != 1 {
		t.Errorf("%d notifications after the takeover, want still 1", len(opened))
	}
	if resolved[0].ID != first.ID || resolved[0].NotifyRef != "ref-1" {
		t.Errorf("resolved %+v, want %s with the original ref-1", resolved[0], first.ID)
	}
}

// TestRestartNoDuplicate: a bot stopped after it notified and started
// again posts nothing twice, and reports the incident fixed while it was
// down as resolved, with the reference of its message.
func TestRestartNoDuplicate(t *testing.T) {
	e := newCluster(t)
	first := e.start(e.rec, WithStateConfigMap(e.ns, "state"))
	e.deployment("still-broken", badImage, 2)
	e.deployment("fixed-meanwhile", badImage, 1)
	poll(t, 60*time.Second, "both notified", func(context.Context) (bool, error) {
		opened, _ := e.rec.snapshot()
		return len(opened) == 2, nil
	})
	refs := map[string]string{}
	for _, inc := range first.w.Incidents() {
		refs[inc.Key.Name] = inc.NotifyRef
	}
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}

	e.setImage("fixed-meanwhile", goodImage)
	e.waitReady("fixed-meanwhile", 1)

	second := e.start(e.rec, WithStateConfigMap(e.ns, "state"))
	poll(t, 60*time.Second, "resolution reported after the restart", func(context.Context) (bool, error) {
		_, resolved := e.rec.snapshot()
		return len(resolved) == 1, nil
	})
	still := activeIncident(t, second.w, "still-broken", 2)
	opened, resolved := e.rec.snapshot()
	if len(opened) != 2 {
		t.Errorf("%d notifications after the restart, want still 2", len(opened))
	}
	if r := resolved[0]; r.Key.Name != "fixed-meanwhile" || r.State != StateResolved || r.NotifyRef != refs["fixed-meanwhile"] || r.NotifyRef == "" {
		t.Errorf("resolved %+v, want fixed-meanwhile with its message ref %q", r, refs["fixed-meanwhile"])
	}
	if still.State != StateNotified || still.NotifyRef != refs["still-broken"] {
		t.Errorf("still-broken after restart: %+v, want notified with ref %q", still, refs["still-broken"])
	}
	if inc, ok := second.w.Incident(resolved[0].ID); !ok || inc.State != StateResolved {
		t.Errorf("Incident(%s) = %+v, %v: a resolved incident stays known until the TTL", resolved[0].ID, inc, ok)
	}
}

// TestAPIServerRestart: the API server restarts mid-watch; informers
// recover, a failure created after the restart is posted once, and the
// one posted before is not posted again. The watcher runs with leader
// election on a 2s renew deadline: the outage (3-11s here) usually
// outlasts it, so the watcher also loses the Lease, campaigns again and
// reloads its state before it leads again (logged "lost leadership"). The
// control plane is shared by the package, whose tests are not parallel.
func TestAPIServerRestart(t *testing.T) {
	e := newCluster(t)
	r := e.start(e.rec, WithStateConfigMap(e.ns, ""), WithLeaderElection(testLease(e.ns, "only")))
	poll(t, 30*time.Second, "leading", func(context.Context) (bool, error) { return r.w.IsLeader(), nil })
	e.deployment("before", badImage, 1)
	poll(t, 60*time.Second, "before notified", func(context.Context) (bool, error) { return len(e.rec.openedFor("before")) == 1, nil })

	began := time.Now()
	if err := cp.RestartAPIServer(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Logf("API server restarted in %s", time.Since(began).Round(time.Millisecond))
	e.deployment("after", badImage, 1)
	poll(t, 90*time.Second, "after notified", func(context.Context) (bool, error) { return len(e.rec.openedFor("after")) == 1, nil })
	t.Logf("failure created after the restart notified %s after the restart began", time.Since(began).Round(time.Millisecond))

	e.setImage("before", goodImage)
	poll(t, 90*time.Second, "before resolved", func(context.Context) (bool, error) {
		_, resolved := e.rec.snapshot()
		return len(resolved) == 1, nil
	})
	if n := len(e.rec.openedFor("before")); n != 1 {
		t.Errorf("before notified %d times across the restart, want 1", n)
	}
	if n := len(e.rec.openedFor("after")); n != 1 {
		t.Errorf("after notified %d times, want 1", n)
	}
	if !r.w.HasSynced() || !r.w.IsLeader() {
		t.Error("watcher not synced or not leading after the API server restart")
	}
}
