package watch

import (
	"context"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/pullfix/pullfix/internal/watch/incident"
	"github.com/pullfix/pullfix/internal/watch/workload"
)

// syncPod recomputes which incidents a pod belongs to.
func (w *Watcher) syncPod(ctx context.Context, podKey string) error {
	ns, name, _ := strings.Cut(podKey, "/")
	pod, err := w.getPod(ctx, ns, name)
	if err != nil {
		return err
	}
	var keys []string
	if pod != nil && pod.DeletionTimestamp == nil {
		failing := workload.FailingContainers(pod)
		if len(failing) > 0 {
			if cached, _ := w.cachedPod(ns, name); cached == nil {
				// Outside the Pending cache (a Running pod: an ephemeral
				// container, an in-place image change), nothing tells us
				// when it is fixed or deleted; look again while it fails.
				w.enqueueAfter(item{kind: itemPod, key: podKey}, outsideResync)
			}
			began := time.Now()
			wl, err := w.owners.Resolve(ctx, pod)
			if err != nil {
				return err
			}
			for _, fc := range failing {
				k := Key{Cluster: w.cluster, Namespace: ns, Workload: sourceWorkload(wl, pod, fc), Container: fc.Name, Image: fc.Image}
				keys = append(keys, k.String())
				if w.ensureIncident(k, podKey) {
					w.log.Debug("incident opened", "key", k.String(), "pod", podKey, "owner", time.Since(began).Round(time.Millisecond))
				}
			}
		}
	}
	w.mu.Lock()
	old := w.podKeys[podKey]
	if len(keys) == 0 {
		delete(w.podKeys, podKey)
	} else {
		w.podKeys[podKey] = keys
	}
	affected := map[string]bool{}
	for _, k := range old {
		affected[k] = true
	}
	for _, k := range keys {
		affected[k] = true
	}
	for k := range affected {
		e := w.incidents[k]
		if e == nil {
			continue
		}
		if slices.Contains(keys, k) {
			e.pods[podKey] = struct{}{}
		} else {
			delete(e.pods, podKey)
		}
	}
	w.mu.Unlock()
	for k := range affected {
		w.enqueue(item{kind: itemIncident, key: k})
	}
	return nil
}

// outsideResync is how often a failing pod outside the Pending cache is
// read again, so its fix or deletion is observed.
const outsideResync = 15 * time.Second

// sourceWorkload is the workload of an incident: the pod's owner, except
// for an ephemeral container, which belongs to this one pod (`kubectl
// debug` added it there; no controller knows of it).
func sourceWorkload(owner Workload, pod *corev1.Pod, fc workload.FailingContainer) Workload {
	if fc.Ephemeral {
		return Workload{Kind: "Pod", Name: pod.Name}
	}
	return owner
}

// ensureIncident adds the pod to the key's incident, creating it — or
// bringing back a persisted one, so a dismissed key stays quiet — when
// there is none.
//
// It reports whether it opened a new incident.
func (w *Watcher) ensureIncident(k Key, podKey string) (opened bool) {
	w.mu.Lock()
	ks := k.String()
	e := w.incidents[ks]
	if e == nil {
		id := IncidentID(k)
		if r, ok := w.store.Get(id); ok && r.Key == k && r.State != StateResolved {
			e = w.addEntryLocked(r.Incident())
		} else {
			now := time.Now()
			e = w.addEntryLocked(Incident{ID: id, Key: k, State: StateOpen, Opened: now, Changed: now})
			w.noteDetectionLocked(k.Image, now)
			opened = true
		}
	}
	e.pods[podKey] = struct{}{}
	w.mu.Unlock()
	return opened
}

// addEntryLocked tracks inc as an active incident; a persisted state counts
// as already reported.
func (w *Watcher) addEntryLocked(inc Incident) *entry {
	e := &entry{Incident: inc, pods: map[string]struct{}{}, reported: inc.State, secretsSearched: len(inc.ProvenSecrets) > 0}
	ks := inc.Key.String()
	w.incidents[ks] = e
	w.ids[inc.ID] = ks
	return e
}

// restore brings back the persisted incidents that are not closed, and
// the storm groups they belong to, before the caches are replayed. It
// returns how many incidents it restored.
func (w *Watcher) restore() int {
	recs := w.store.All()
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, r := range recs {
		if r.Group != "" {
			w.restoreGroupLocked(r)
		}
		if r.State.Closed() {
			continue
		}
		w.addEntryLocked(r.Incident())
		n++
	}
	for _, g := range w.groups {
		g.reported = w.groupFingerprintLocked(g)
	}
	return n
}

// Incidents returns a snapshot of the active incidents (with failing pods,
// or notified and awaiting resolution), sorted by key.
func (w *Watcher) Incidents() []Incident {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Incident, 0, len(w.incidents))
	for _, e := range w.incidents {
		out = append(out, e.snapshot())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key.String() < out[j].Key.String() })
	return out
}

func (e *entry) snapshot() Incident {
	inc := e.Incident
	inc.Pods = make([]string, 0, len(e.pods))
	for p := range e.pods {
		_, name, _ := strings.Cut(p, "/")
		inc.Pods = append(inc.Pods, name)
	}
	sort.Strings(inc.Pods)
	return inc
}

// drop forgets an active incident whose pods are gone; its incident.Record stays.
func (w *Watcher) drop(ks string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e := w.incidents[ks]; e != nil && len(e.pods) == 0 {
		delete(w.incidents, ks)
		delete(w.ids, e.ID)
	}
}

// persist records incidents and writes the state (a no-op in memory).
func (w *Watcher) persist(ctx context.Context, incs ...Incident) error {
	for _, inc := range incs {
		w.store.Put(incident.RecordOf(inc))
	}
	w.mu.Lock()
	active := make(map[string]bool, len(w.ids))
	open := 0
	for id, ks := range w.ids {
		active[id] = true
		if st := w.incidents[ks].State; st == StateOpen || st == StateNotified || st == StateFixing {
			open++
		}
	}
	w.mu.Unlock()
	w.metrics.setOpen(open)
	if err := w.store.Flush(ctx, active); err != nil {
		w.metrics.Error("state")
		return err
	}
	return nil
}
