package watch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/watch/incident"
)

// DefaultGroupWindow is the widest gap between detections (at one
// registry) that still counts as one storm; incidents with the same cause
// and registry chained by such gaps share one message.
//
// The window never delays a notification. The first incident of a (cause,
// registry) is posted the moment it is diagnosed, as any other; a later
// one that belongs to the same burst joins it instead: the first message
// is edited into the group's (Notifier.UpdatedGroup). So a single broken
// workload is reported as fast as with grouping off (tens of milliseconds
// after detection against a local registry), and a storm makes one post
// plus a few edits, however long its diagnoses take: gaps are measured
// between detections, recorded when incidents appear, not between
// diagnoses, which behind a black-holed registry take the full probe
// timeout each and finish in any order.
//
// Because it costs no latency, the window can be generous. It is 30s, not
// a couple of seconds: in an outage the kubelet detects failures at the
// pace of its pulls — serialised per node by default, each blocking until
// the runtime gives up, then backing off — so one storm's detections
// arrive in waves seconds apart (the test environment's simulator already
// leaves 2s gaps). Same cause, same registry, within half a minute of the
// last detection is one problem for the person on call; the message lists
// every workload, so nothing is hidden by folding.
const DefaultGroupWindow = 30 * time.Second

// groupUpdateDelay gathers the joins of one burst into one edit. It is
// short because a joining workload is named only by that edit; later joins
// wait in the Slack queue, which paces each channel and keeps only the
// latest edit of a message.
const groupUpdateDelay = 100 * time.Millisecond

// Group is one storm: incidents of one cluster with the same cause at the
// same registry, detected close together, reported in one message. Each
// member is still its own incident (own ID, state, diagnosis).
type Group struct {
	// ID starts with "g"; Dismiss and Snooze accept it for all members.
	ID        string         `json:"id"`
	Cause     diagnose.Cause `json:"cause"`
	Registry  string         `json:"registry"`
	NotifyRef string         `json:"notifyRef,omitempty"`
	// Opened is the first member's detection.
	Opened time.Time `json:"opened"`
	// Diagnosis is the first member's: the evidence of the shared cause.
	Diagnosis *diagnose.Diagnosis `json:"diagnosis,omitempty"`
	// Members, sorted by key, each with its own state.
	Members []Incident `json:"members"`
}

// Open counts the members neither resolved nor dismissed; the storm is
// over when it is zero.
func (g Group) Open() int {
	n := 0
	for _, m := range g.Members {
		if !m.State.Closed() {
			n++
		}
	}
	return n
}

type groupKey struct {
	cluster  string
	cause    diagnose.Cause
	registry string
}

type group struct {
	id          string
	key         groupKey
	ref         string
	seed        string // Key.String() of the first member
	seedID      string
	first, last time.Time // detections of the members
	diag        *diagnose.Diagnosis
	reported    string // fingerprint of the last UpdatedGroup
}

func isGroupID(id string) bool { return len(id) == 10 && id[0] == 'g' }

func newGroupID() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return "g" + hex.EncodeToString(b)[:9]
}

// registryOf returns the registry host of an image reference, in
// diagnose's one normalisation ("docker.io" for Docker Hub names).
func registryOf(image string) string { return diagnose.RegistryHost(image) }

func (w *Watcher) groupKeyOf(d *diagnose.Diagnosis, k Key) (groupKey, bool) {
	if w.groupWindow <= 0 || d == nil || !d.Cause.RegistryWide() {
		return groupKey{}, false
	}
	return groupKey{cluster: k.Cluster, cause: d.Cause, registry: registryOf(k.Image)}, true
}

// groupLock serialises notifications of one (cause, registry), so the
// second incident sees the first one's message.
func (w *Watcher) groupLock(gk groupKey) *sync.Mutex {
	w.mu.Lock()
	defer w.mu.Unlock()
	m := w.groupLocks[gk]
	if m == nil {
		m = &sync.Mutex{}
		w.groupLocks[gk] = m
	}
	return m
}

// findGroupLocked returns the group an incident detected at detected
// joins: same key, within the window of its members' detections, with a
// member still open. It forgets groups that are over.
func (w *Watcher) findGroupLocked(gk groupKey, detected time.Time) *group {
	var best *group
	for id, g := range w.groups {
		open := w.groupOpenLocked(g)
		if !open && time.Since(g.last) > w.groupWindow {
			delete(w.groups, id)
			continue
		}
		if g.key != gk || !open || !w.chainedLocked(gk.registry, g, detected) {
			continue
		}
		if best == nil || g.last.After(best.last) {
			best = g
		}
	}
	return best
}

// chainedLocked reports whether detected belongs to the same burst as the
// group's members: the detections at the registry between the group's span
// and detected leave no gap wider than the window. Detections are recorded
// when incidents appear, not when their diagnoses finish, so the order in
// which slow probes complete does not split a storm.
func (w *Watcher) chainedLocked(registry string, g *group, detected time.Time) bool {
	from, to := g.last, detected
	switch {
	case !detected.Before(g.first) && !detected.After(g.last):
		return true
	case detected.Before(g.first):
		from, to = detected, g.first
	}
	if to.Sub(from) <= w.groupWindow {
		return true
	}
	prev := from
	for _, t := range w.detections[registry] {
		if !t.After(from) {
			continue
		}
		if t.After(to) {
			break
		}
		if t.Sub(prev) > w.groupWindow {
			return false
		}
		prev = t
	}
	return to.Sub(prev) <= w.groupWindow
}

// detectionHistory bounds the per-registry timeline of detections.
const (
	detectionHistory    = time.Hour
	detectionHistoryMax = 10000
)

// noteDetectionLocked records that an incident at image's registry was
// detected (or woke from a snooze) at t.
func (w *Watcher) noteDetectionLocked(image string, t time.Time) {
	if w.groupWindow <= 0 {
		return
	}
	reg := registryOf(image)
	ts := w.detections[reg]
	i, _ := slices.BinarySearchFunc(ts, t, time.Time.Compare)
	ts = slices.Insert(ts, i, t)
	cut := 0
	for cut < len(ts) && (t.Sub(ts[cut]) > detectionHistory || len(ts)-cut > detectionHistoryMax) {
		cut++
	}
	w.detections[reg] = ts[cut:]
}

func (w *Watcher) groupOpenLocked(g *group) bool {
	for ks, e := range w.incidents {
		if (e.GroupID == g.id || ks == g.seed) && !e.State.Closed() {
			return true
		}
	}
	return false
}

// groupMembersLocked lists the group's members: active incidents and the
// closed ones the state remembers.
func (w *Watcher) groupMembersLocked(g *group) []Incident {
	var out []Incident
	seen := map[string]bool{}
	for ks, e := range w.incidents {
		if e.GroupID == g.id || (ks == g.seed && e.GroupID == "") {
			out = append(out, e.snapshot())
			seen[e.ID] = true
		}
	}
	for _, r := range w.store.All() {
		if r.Group == g.id && !seen[r.ID] {
			out = append(out, r.Incident())
		}
	}
	slices.SortFunc(out, func(a, b Incident) int { return strings.Compare(a.Key.String(), b.Key.String()) })
	return out
}

func groupFingerprint(members []Incident) string {
	var b strings.Builder
	for _, m := range members {
		b.WriteString(m.ID)
		b.WriteByte('=')
		b.WriteString(string(m.State))
		b.WriteByte(';')
	}
	return b.String()
}

func (w *Watcher) groupFingerprintLocked(g *group) string {
	return groupFingerprint(w.groupMembersLocked(g))
}

// restoreGroupLocked rebuilds a group from a persisted member.
func (w *Watcher) restoreGroupLocked(r incident.Record) {
	g := w.groups[r.Group]
	if g == nil {
		g = &group{
			id: r.Group, ref: r.Ref, seed: r.Key.String(), seedID: r.ID, first: r.Opened, last: r.Opened,
			key:  groupKey{cluster: r.Key.Cluster, cause: r.Cause, registry: registryOf(r.Key.Image)},
			diag: r.Incident().Diagnosis,
		}
		w.groups[r.Group] = g
		return
	}
	if r.Opened.Before(g.first) {
		g.first, g.seed, g.seedID, g.diag = r.Opened, r.Key.String(), r.ID, r.Incident().Diagnosis
	}
	if r.Opened.After(g.last) {
		g.last = r.Opened
	}
}

// notifyGrouped notifies a diagnosed incident whose cause is groupable:
// alone if no group of its (cause, registry) is open within the window,
// else by joining that group's message.
func (w *Watcher) notifyGrouped(ctx context.Context, ks string, prev State, inc Incident, gk groupKey, detected time.Time) error {
	lock := w.groupLock(gk)
	lock.Lock()
	defer lock.Unlock()
	w.mu.Lock()
	g := w.findGroupLocked(gk, detected)
	w.mu.Unlock()
	if g == nil {
		ref, err := w.notify.Opened(ctx, inc)
		if err != nil {
			w.metrics.Error("notify")
			return err
		}
		w.metrics.diagnosed(*inc.Diagnosis, detected)
		g = &group{id: newGroupID(), key: gk, ref: ref, seed: ks, seedID: inc.ID, first: detected, last: detected, diag: inc.Diagnosis}
		w.mu.Lock()
		w.groups[g.id] = g
		w.mu.Unlock()
		w.commitNotified(ctx, ks, prev, inc, ref, "")
		w.searchSecretsLater(ctx, ks, inc)
		w.afterOpened(ctx, inc, ref)
		return nil
	}
	w.metrics.diagnosed(*inc.Diagnosis, detected)
	var seed []Incident
	w.mu.Lock()
	if detected.Before(g.first) {
		g.first = detected
	}
	if detected.After(g.last) {
		g.last = detected
	}
	if se := w.incidents[g.seed]; se != nil && se.GroupID == "" {
		se.GroupID = g.id
		seed = append(seed, se.snapshot())
	} else if se == nil {
		if r, ok := w.store.Get(g.seedID); ok && r.Group == "" {
			r.Group = g.id
			w.store.Put(r)
		}
	}
	w.mu.Unlock()
	w.log.Info("incident joins a storm group", "id", inc.ID, "group", g.id, "cause", gk.cause, "registry", gk.registry)
	w.commitNotified(ctx, ks, prev, inc, g.ref, g.id, seed...)
	w.enqueueAfter(item{kind: itemGroup, key: g.id}, groupUpdateDelay)
	return nil
}

// syncGroup reports a group's members when they changed since the last
// report.
func (w *Watcher) syncGroup(ctx context.Context, id string) error {
	w.mu.Lock()
	g := w.groups[id]
	if g == nil {
		w.mu.Unlock()
		return nil
	}
	members := w.groupMembersLocked(g)
	fp := groupFingerprint(members)
	grp := Group{ID: g.id, Cause: g.key.cause, Registry: g.key.registry, NotifyRef: g.ref, Opened: g.first, Diagnosis: g.diag, Members: members}
	if len(members) < 2 || fp == g.reported {
		w.mu.Unlock()
		return nil
	}
	w.mu.Unlock()
	if err := w.notify.UpdatedGroup(ctx, grp); err != nil {
		w.metrics.Error("notify")
		return err
	}
	w.mu.Lock()
	g.reported = fp
	if grp.Open() == 0 {
		delete(w.groups, id)
	}
	w.mu.Unlock()
	return nil
}

// Group returns the storm group with this ID, if this leader knows it.
func (w *Watcher) Group(id string) (Group, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	g := w.groups[id]
	if g == nil {
		return Group{}, false
	}
	return Group{ID: g.id, Cause: g.key.cause, Registry: g.key.registry, NotifyRef: g.ref, Opened: g.first, Diagnosis: g.diag, Members: w.groupMembersLocked(g)}, true
}
