package incident

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// Defaults of the state ConfigMap.
const (
	DefaultStateConfigMap = "pullfix-state"
	// DefaultStateTTL keeps resolved and dismissed incidents this long
	// after their last change: long enough that a Slack button clicked the
	// next morning still finds its incident, short enough that the map
	// does not grow with the cluster's history.
	DefaultStateTTL = 72 * time.Hour
	// DefaultStateMaxEntries caps the number of incidents kept.
	DefaultStateMaxEntries = 1000
	// DefaultStateMaxBytes caps the encoded size, half of the 1 MiB a
	// ConfigMap (an etcd value) may hold, so a burst never hits the limit.
	DefaultStateMaxBytes = 512 << 10
)

// stateWriteTimeout bounds one persist. Writes run on a context detached
// from the leader's, so the reference of a notification that just went out
// is still recorded while leadership is being handed over.
const stateWriteTimeout = 10 * time.Second

// Record is one incident as persisted: what a restart or a new leader needs
// to post nothing twice and to act on a button of an earlier message.
type Record struct {
	ID      string    `json:"id"`
	Key     Key       `json:"key"`
	State   State     `json:"state"`
	Ref     string    `json:"ref,omitempty"`
	Group   string    `json:"group,omitempty"`
	By      string    `json:"by,omitempty"`
	Opened  time.Time `json:"opened"`
	Changed time.Time `json:"changed"`
	Until   time.Time `json:"until,omitzero"`
	// Cause and Candidates let a new leader rebuild the buttons' meaning
	// (candidate ID → image) without probing again.
	Cause      diagnose.Cause       `json:"cause,omitempty"`
	Candidates []diagnose.Candidate `json:"candidates,omitempty"`
	// Proven are the pull secrets proven to hold working credentials for
	// the image (Incident.ProvenSecrets).
	Proven []string `json:"proven,omitempty"`
	// Posting and Fix are intents written before a Slack post or a patch
	// (see Incident; watch's reconcile.go).
	Posting string     `json:"posting,omitempty"`
	Fix     *FixIntent `json:"fix,omitempty"`
}

func RecordOf(inc Incident) Record {
	r := Record{
		ID: inc.ID, Key: inc.Key, State: inc.State, Ref: inc.NotifyRef, Group: inc.GroupID, By: inc.By,
		Opened: inc.Opened, Changed: inc.Changed, Until: inc.SnoozedUntil, Proven: inc.ProvenSecrets,
		Posting: inc.Posting, Fix: inc.Fix,
	}
	if inc.Diagnosis != nil {
		r.Cause, r.Candidates = inc.Diagnosis.Cause, inc.Diagnosis.Candidates
	}
	return r
}

// Incident rebuilds an Incident from a Record. The diagnosis is the
// persisted cause and verified candidates with the cause's standard words;
// Recheck probes again for the full evidence.
func (r Record) Incident() Incident {
	inc := Incident{
		ID: r.ID, Key: r.Key, State: r.State, NotifyRef: r.Ref, GroupID: r.Group, By: r.By,
		Opened: r.Opened, Changed: r.Changed, SnoozedUntil: r.Until, ProvenSecrets: r.Proven,
		Posting: r.Posting, Fix: r.Fix,
	}
	if r.Cause != "" {
		d := &diagnose.Diagnosis{
			Target: diagnose.Target{
				Cluster: r.Key.Cluster, Namespace: r.Key.Namespace, Kind: r.Key.Kind, Name: r.Key.Name,
				Container: r.Key.Container, Image: r.Key.Image,
			},
			Cause: r.Cause, Candidates: r.Candidates,
		}
		d.Summary, d.Remedy = diagnose.Describe(r.Cause, r.Key.Image, diagnose.RegistryHost(r.Key.Image))
		inc.Diagnosis = d
	}
	return inc
}

// StateError is returned when the state ConfigMap cannot be read or
// written; Op says which ("load", "save").
type StateError struct {
	Op        string
	Namespace string
	Name      string
	Err       error
}

func (e *StateError) Error() string {
	return fmt.Sprintf("state ConfigMap %s/%s: %s: %v", e.Namespace, e.Name, e.Op, e.Err)
}

func (e *StateError) Unwrap() error { return e.Err }

// Store keeps incident records in memory and, when configured, in a
// ConfigMap: one data key per incident ID, each a JSON Record. Only the
// leader writes; writes use the resourceVersion it last saw and, on a
// conflict (an old leader's last write, a person's edit), re-read, adopt
// records they do not know and retry. Entries that do not parse are kept
// as they are and written back untouched: bad input loses nothing.
type Store struct {
	cs         kubernetes.Interface // nil: memory only
	ns, name   string
	ttl        time.Duration
	maxEntries int
	maxBytes   int
	log        *slog.Logger
	now        func() time.Time

	writeMu sync.Mutex // one save at a time; later callers find their change already saved

	mu    sync.Mutex
	recs  map[string]Record // ID → Record
	raw   map[string]string // data keys that are not records, kept verbatim
	tombs map[string]bool   // IDs deleted since the last save
	dirty bool
	rv    string
}

func NewStore(cs kubernetes.Interface, ns, name string, log *slog.Logger) *Store {
	return &Store{
		cs: cs, ns: ns, name: name, log: log, now: time.Now,
		ttl: DefaultStateTTL, maxEntries: DefaultStateMaxEntries, maxBytes: DefaultStateMaxBytes,
		recs: map[string]Record{}, raw: map[string]string{}, tombs: map[string]bool{},
	}
}

// SetLimits bounds the store (see WithStateLimits of the watcher); zero
// keeps a default.
func (s *Store) SetLimits(ttl time.Duration, maxEntries, maxBytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ttl > 0 {
		s.ttl = ttl
	}
	if maxEntries > 0 {
		s.maxEntries = maxEntries
	}
	if maxBytes > 0 {
		s.maxBytes = maxBytes
	}
}

// Limits returns the store's bounds: the TTL of closed records, the entry
// cap and the byte cap.
func (s *Store) Limits() (ttl time.Duration, maxEntries, maxBytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ttl, s.maxEntries, s.maxBytes
}

// Persistent says whether the store writes a ConfigMap (false: memory only).
func (s *Store) Persistent() bool { return s.cs != nil }

// Load reads the ConfigMap, creating it empty when absent, and replaces
// the in-memory records with its content.
func (s *Store) Load(ctx context.Context) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if !s.Persistent() {
		return nil
	}
	cm, err := s.cs.CoreV1().ConfigMaps(s.ns).Get(ctx, s.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cm, err = s.cs.CoreV1().ConfigMaps(s.ns).Create(ctx, s.emptyConfigMap(), metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			cm, err = s.cs.CoreV1().ConfigMaps(s.ns).Get(ctx, s.name, metav1.GetOptions{})
		}
	}
	if err != nil {
		return &StateError{Op: "load", Namespace: s.ns, Name: s.name, Err: err}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs, s.raw, s.tombs = map[string]Record{}, map[string]string{}, map[string]bool{}
	s.adoptLocked(cm, true)
	s.rv, s.dirty = cm.ResourceVersion, false
	return nil
}

func (s *Store) emptyConfigMap() *corev1.ConfigMap {
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{
		Namespace: s.ns, Name: s.name,
		Labels:      map[string]string{"app.kubernetes.io/name": "pullfix", "app.kubernetes.io/component": "state"},
		Annotations: map[string]string{"pullfix.dev/about": "pullfix incident state: one JSON Record per incident ID; written by the leader"},
	}}
}

// adoptLocked takes the ConfigMap's records this store does not hold (all
// of them when replace is set), skipping IDs deleted locally.
func (s *Store) adoptLocked(cm *corev1.ConfigMap, replace bool) {
	for k, v := range cm.Data {
		if s.tombs[k] {
			continue
		}
		if _, ok := s.recs[k]; ok && !replace {
			continue
		}
		var r Record
		if err := json.Unmarshal([]byte(v), &r); err != nil || r.ID != k || r.Key.Image == "" {
			if _, ok := s.raw[k]; !ok {
				s.log.Warn("state entry is not an incident Record; keeping it as is", "configmap", s.ns+"/"+s.name, "key", k, "err", err)
			}
			s.raw[k] = v
			continue
		}
		s.recs[k] = r
	}
}

// Get returns the record of an incident ID.
func (s *Store) Get(id string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.recs[id]
	return r, ok
}

// All returns every record, in no order.
func (s *Store) All() []Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Record, 0, len(s.recs))
	for _, r := range s.recs {
		out = append(out, r)
	}
	return out
}

// Put records r; Flush writes it.
func (s *Store) Put(r Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recs[r.ID] = r
	delete(s.tombs, r.ID)
	s.dirty = true
}

// Len counts the records.
func (s *Store) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

// prune drops resolved and dismissed records older than the TTL, then —
// while over the entry or byte cap — the oldest records, closed ones
// first. IDs in active (incidents with failing pods) are never dropped for
// age: a dismissed incident that still fails must stay quiet.
func (s *Store) pruneLocked(active map[string]bool) {
	now := s.now()
	for id, r := range s.recs {
		// An open record is an intent to post (watch's reconcile.go) whose
		// pods went away: it ages out like a closed one.
		if (r.State.Closed() || r.State == StateOpen) && !active[id] && now.Sub(r.Changed) > s.ttl {
			s.dropLocked(id)
		}
	}
	sizes := make(map[string]int, len(s.recs))
	total := 0
	for k, v := range s.raw {
		total += len(k) + len(v) + recordOverhead
	}
	for id, r := range s.recs {
		sizes[id] = encodedSize(r)
		total += sizes[id]
	}
	over := func() bool {
		if s.maxEntries > 0 && len(s.recs) > s.maxEntries {
			return true
		}
		return s.maxBytes > 0 && total > s.maxBytes
	}
	if !over() {
		return
	}
	order := make([]Record, 0, len(s.recs))
	for _, r := range s.recs {
		order = append(order, r)
	}
	// Closed before open, inactive before active, then oldest first.
	slices.SortFunc(order, func(a, b Record) int {
		if c := cmp.Compare(rank(a, active), rank(b, active)); c != 0 {
			return c
		}
		return a.Changed.Compare(b.Changed)
	})
	for _, r := range order {
		if !over() {
			break
		}
		if !r.State.Closed() || active[r.ID] {
			s.log.Warn("state ConfigMap full; forgetting an incident that is still open (a restart may post it again)", "id", r.ID, "key", r.Key.String())
		}
		s.dropLocked(r.ID)
		total -= sizes[r.ID]
	}
}

// recordOverhead is what a data entry costs beyond its key and value in
// the stored object (quotes, separators), rounded up.
const recordOverhead = 8

func encodedSize(r Record) int {
	b, _ := json.Marshal(r)
	return len(r.ID) + len(b) + recordOverhead
}

func rank(r Record, active map[string]bool) int {
	switch {
	case r.State.Closed() && !active[r.ID]:
		return 0
	case !active[r.ID]:
		return 1
	default:
		return 2
	}
}

func (s *Store) dropLocked(id string) {
	delete(s.recs, id)
	s.tombs[id] = true
	s.dirty = true
}

func (s *Store) dataLocked() map[string]string {
	data := make(map[string]string, len(s.recs)+len(s.raw))
	for k, v := range s.raw {
		data[k] = v
	}
	for id, r := range s.recs {
		b, _ := json.Marshal(r)
		data[id] = string(b)
	}
	return data
}

// Flush prunes and writes the records if anything changed. It blocks until
// the write is done, so a caller that records a notification knows it is
// durable; a caller whose change was carried by another's write returns at
// once.
func (s *Store) Flush(ctx context.Context, active map[string]bool) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	s.mu.Lock()
	s.pruneLocked(active)
	if !s.dirty || !s.Persistent() {
		s.dirty = false
		s.tombs = map[string]bool{}
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stateWriteTimeout)
	defer cancel()
	cms := s.cs.CoreV1().ConfigMaps(s.ns)
	for attempt := 1; ; attempt++ {
		s.mu.Lock()
		cm := s.emptyConfigMap()
		cm.ResourceVersion = s.rv
		cm.Data = s.dataLocked()
		s.dirty = false
		s.mu.Unlock()

		var out *corev1.ConfigMap
		var err error
		if cm.ResourceVersion == "" {
			out, err = cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: "pullfix"})
		} else {
			out, err = cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: "pullfix"})
		}
		if err == nil {
			s.mu.Lock()
			s.rv = out.ResourceVersion
			s.tombs = map[string]bool{}
			s.mu.Unlock()
			return nil
		}
		retry := apierrors.IsConflict(err) || apierrors.IsNotFound(err) || apierrors.IsAlreadyExists(err)
		if !retry || attempt == 5 {
			s.mu.Lock()
			s.dirty = true
			s.mu.Unlock()
			return &StateError{Op: "save", Namespace: s.ns, Name: s.name, Err: err}
		}
		// Someone else wrote (or deleted) it: read it again, keep what we
		// do not know about, and write on top of the new version.
		fresh, gerr := cms.Get(ctx, s.name, metav1.GetOptions{})
		s.mu.Lock()
		switch {
		case apierrors.IsNotFound(gerr):
			s.rv = ""
		case gerr != nil:
			s.dirty = true
			s.mu.Unlock()
			return &StateError{Op: "save", Namespace: s.ns, Name: s.name, Err: gerr}
		default:
			s.adoptLocked(fresh, false)
			s.rv = fresh.ResourceVersion
		}
		s.pruneLocked(active)
		s.mu.Unlock()
		s.log.Debug("state ConfigMap changed underneath; retrying on the new version", "attempt", attempt, "err", err)
	}
}
