package slackapp

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/slack-go/slack"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// Storms. Slack allows about one chat.postMessage per second per channel
// and about fifty chat.update calls a minute per workspace (facts/slack.md
// §5), so a storm of fifty broken workloads in one channel cannot be fifty
// messages: at one a second the last would be named almost a minute late.
//
// So a channel that sees StormThreshold incidents detected within
// StormWindow gets one storm digest: a message that names every affected
// workload, grouped by cause and registry, the moment each is detected
// (App.Detected, called when the watcher opens the incident, before its
// diagnosis, on the kubelet's words). Later workloads join it by edits,
// gathered for digestGather and spent from the queue's chat.update budget,
// digest edits first. Each workload's own diagnosis and buttons follow as
// its card in the digest's thread, paced like any post; the digest shrinks
// as workloads recover and says when the storm is over. Incidents posted
// on their own before the storm began keep their message and are named in
// the digest too. A quiet channel is unchanged: one message per incident.

// Storm defaults (WithStorm).
const (
	// DefaultStormThreshold incidents detected in one channel within
	// DefaultStormWindow start a digest. Two, so that the digest is the
	// channel's first post: with three, the first two incidents' messages
	// and their details replies would spend Slack's burst of posts and
	// the digest would wait a second for the next.
	DefaultStormThreshold = 2
	DefaultStormWindow    = 10 * time.Second
	// DefaultStormJoin: an incident detected within this long of the
	// digest's last new workload joins it; later, the channel starts over
	// (a fresh digest, posted where people will see it).
	DefaultStormJoin = time.Minute
)

// digestGather gathers the workloads detected close together into one
// edit. Short, because a joining workload is named only by that edit; the
// chat.update budget does the rest (a waiting edit takes in every change
// made before it is sent).
const digestGather = 100 * time.Millisecond

// digestTidy gathers the changes that name no new workload — a cause the
// registry refined, a workload that recovered — into edits sent no sooner
// than this, at the queue's lower priority, so they never spend the
// chat.update budget a storm's next workloads need.
const digestTidy = 3 * time.Second

// digestRefSuffix marks a digest member's reference: "channel:ts#storm"
// names the digest's thread, never a message of the incident's own, so
// nothing edits the digest with one incident's message.
const digestRefSuffix = "#storm"

// WithStorm sets when a channel's incidents become a storm digest:
// threshold incidents detected within window; a later incident joins the
// digest while its last new workload is at most join old. threshold <= 0
// turns digests off (one message per incident, always). Default:
// DefaultStormThreshold, DefaultStormWindow, DefaultStormJoin.
func WithStorm(threshold int, window, join time.Duration) Option {
	return func(a *App) { a.storm.threshold, a.storm.window, a.storm.join = threshold, window, join }
}

// IsDigestRef reports whether ref is a storm digest member's reference.
func IsDigestRef(ref string) bool { return strings.HasSuffix(ref, digestRefSuffix) }

type stormState struct {
	threshold    int
	window, join time.Duration

	mu       sync.Mutex
	channels map[string]*stormChannel
	members  map[string]*digestMember // incident id → its place in a digest
	cards    map[string]string        // "channel:card ts" → the digest's ts

	// The digests' own goroutines — a post's outcome, a scheduled edit —
	// are owned here: stop ends the timers not yet fired and wait waits
	// for the rest, so nothing of the digest runs after App.Close.
	wg     sync.WaitGroup
	timers map[*time.Timer]struct{}
	closed bool
}

// goLocked runs f on a goroutine that wait waits for; after stop it runs
// nothing. s.mu is held, so no Add races stop's Wait.
func (s *stormState) goLocked(f func()) {
	if s.closed {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// afterLocked runs f after d, unless stop comes first. s.mu is held: the
// timer's callback takes it before anything else, so it sees itself in
// s.timers.
func (s *stormState) afterLocked(d time.Duration, f func()) {
	if s.closed {
		return
	}
	s.wg.Add(1)
	var t *time.Timer
	t = time.AfterFunc(d, func() {
		defer s.wg.Done()
		s.mu.Lock()
		_, live := s.timers[t]
		delete(s.timers, t)
		s.mu.Unlock()
		if live {
			f()
		}
	})
	s.timers[t] = struct{}{}
}

// stop cancels the timers not yet fired; goLocked and afterLocked start
// nothing more. App.Close calls it before closing the queue (which
// answers every waiting write, ending the goroutines that wait for one)
// and then wait.
func (s *stormState) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for t := range s.timers {
		if t.Stop() {
			s.wg.Done()
		}
		delete(s.timers, t)
	}
}

// wait waits for the digests' goroutines (after stop).
func (s *stormState) wait() { s.wg.Wait() }

func newStormState() *stormState {
	return &stormState{
		threshold: DefaultStormThreshold, window: DefaultStormWindow, join: DefaultStormJoin,
		channels: map[string]*stormChannel{}, members: map[string]*digestMember{}, cards: map[string]string{},
		timers: map[*time.Timer]struct{}{},
	}
}

type stormChannel struct {
	recent []*recentIncident // detected within the window, no digest yet
	active *digest
}

type recentIncident struct {
	w  DigestWorkload
	at time.Time
}

type digest struct {
	channel  string
	ts       string
	posted   chan struct{} // closed once ts is set, or the post failed (err)
	err      error
	members  []*digestMember
	lastJoin time.Time
	version  int  // changes made
	named    int  // the version of the latest change that names a new workload
	shown    int  // the version Slack shows
	pending  bool // an edit naming workloads is gathering
	tidying  bool // an edit of anything else is gathering
	over     bool
}

type digestMember struct {
	d          *digest
	w          DigestWorkload
	inc        Incident // the latest incident, for its card
	full       bool     // the full diagnosis arrived: the card can go
	cardQueued bool
	cardTS     string
}

func (s *stormState) channel(ch string) *stormChannel {
	sc := s.channels[ch]
	if sc == nil {
		sc = &stormChannel{}
		s.channels[ch] = sc
	}
	return sc
}

// joinable returns the channel's digest if a new incident joins it.
func (s *stormState) joinable(sc *stormChannel, now time.Time) *digest {
	if d := sc.active; d != nil && !d.over && now.Sub(d.lastJoin) <= s.join {
		return d
	}
	return nil
}

// registryHost is the registry of an image as people know it
// ("docker.io" for Docker Hub).
func registryHost(image string) string {
	ref, err := name.ParseReference(image)
	if err != nil {
		if host, _, ok := strings.Cut(image, "/"); ok && strings.ContainsAny(host, ".:") {
			return host
		}
		return "docker.io"
	}
	if r := ref.Context().RegistryStr(); r != name.DefaultRegistry {
		return r
	}
	return "docker.io"
}

func digestWorkload(inc Incident) DigestWorkload {
	w := DigestWorkload{IncidentID: inc.ID, Namespace: inc.Namespace, Kind: inc.Kind, Name: inc.Name,
		Container: inc.Container, Image: inc.Image, Registry: registryHost(inc.Image), Cause: diagnose.Unknown,
		State: inc.messageState()}
	if inc.Diagnosis != nil && inc.Diagnosis.Cause != "" {
		w.Cause = inc.Diagnosis.Cause
	}
	return w
}

// Detected names an incident the moment the watcher opens it, before its
// diagnosis (inc.Diagnosis holds the kubelet's words): in its channel's
// digest when the channel is in a storm or this incident makes one;
// otherwise it only counts towards one, and Opened posts it as usual. It
// never waits for Slack.
func (a *App) Detected(_ context.Context, inc Incident) {
	s := a.storm
	ch := a.cfg.ChannelFor(inc.Namespace)
	if s.threshold <= 0 || ch == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.members[inc.ID] != nil {
		return
	}
	sc := s.channel(ch)
	now := a.now()
	if d := s.joinable(sc, now); d != nil {
		a.joinLocked(d, digestWorkload(inc), now)
		return
	}
	a.noteRecentLocked(sc, digestWorkload(inc), now)
	if sc.workloads() >= s.threshold {
		a.startDigestLocked(sc, ch, now)
	}
}

// workloads counts the distinct workloads of the recent incidents: a
// workload failing again with a new image (a fix that did not help) or
// with two containers is one workload, not a storm.
func (sc *stormChannel) workloads() int {
	seen := map[string]bool{}
	for _, r := range sc.recent {
		seen[r.w.Namespace+"/"+r.w.Kind+"/"+r.w.Name] = true
	}
	return len(seen)
}

// noteRecentLocked counts an incident towards a storm in its channel.
func (a *App) noteRecentLocked(sc *stormChannel, w DigestWorkload, now time.Time) *recentIncident {
	keep := sc.recent[:0]
	var found *recentIncident
	for _, r := range sc.recent {
		if now.Sub(r.at) <= a.storm.window {
			keep = append(keep, r)
			if r.w.IncidentID == w.IncidentID {
				found = r
			}
		}
	}
	sc.recent = keep
	if found == nil {
		found = &recentIncident{w: w, at: now}
		sc.recent = append(sc.recent, found)
	}
	return found
}

// Forget takes an incident that closed before it was diagnosed (its pods
// went away) out of the count and out of its digest.
func (a *App) Forget(_ context.Context, id string) {
	s := a.storm
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sc := range s.channels {
		for i, r := range sc.recent {
			if r.w.IncidentID == id {
				sc.recent = append(sc.recent[:i], sc.recent[i+1:]...)
				break
			}
		}
	}
	m := s.members[id]
	if m == nil || m.full || m.w.Own {
		return
	}
	d := m.d
	delete(s.members, id)
	for i, x := range d.members {
		if x == m {
			d.members = append(d.members[:i], d.members[i+1:]...)
			break
		}
	}
	a.changedLocked(d, false)
}

// joinLocked adds a workload to a digest and schedules the edit naming it.
func (a *App) joinLocked(d *digest, w DigestWorkload, now time.Time) *digestMember {
	m := &digestMember{d: d, w: w}
	d.members = append(d.members, m)
	a.storm.members[w.IncidentID] = m
	d.lastJoin = now
	a.changedLocked(d, true)
	return m
}

// startDigestLocked opens a channel's digest with the incidents that made
// the storm and posts it at once.
func (a *App) startDigestLocked(sc *stormChannel, ch string, now time.Time) {
	s := a.storm
	d := &digest{channel: ch, posted: make(chan struct{}), lastJoin: now, version: 1}
	for _, r := range sc.recent {
		m := &digestMember{d: d, w: r.w}
		d.members = append(d.members, m)
		s.members[r.w.IncidentID] = m
	}
	sc.recent, sc.active = nil, d
	a.log.Info("storm: one digest names the channel's failing workloads", "channel", ch, "workloads", len(d.members))
	done := a.queue.Enqueue(KindRoot, ch, "", "chat.postMessage", func(ctx context.Context) error {
		s.mu.Lock()
		m, v := RenderDigest(a.digestInputLocked(d)), d.version
		s.mu.Unlock()
		_, ts, err := a.web.PostMessageContext(ctx, ch, m.MsgOptions()...)
		if err != nil {
			return err
		}
		s.mu.Lock()
		d.ts, d.shown = ts, v
		close(d.posted)
		if d.version != d.shown {
			a.scheduleLocked(d, d.named > d.shown)
		}
		for _, m := range d.members {
			if m.full && !m.cardQueued {
				a.queueCardLocked(m)
			}
		}
		s.mu.Unlock()
		return nil
	})
	s.goLocked(func() {
		if err := <-done; err != nil {
			s.mu.Lock()
			if d.ts == "" {
				d.err = err
				close(d.posted)
				d.over = true
				if sc.active == d {
					sc.active = nil
				}
				for _, m := range d.members {
					delete(s.members, m.w.IncidentID)
				}
			}
			s.mu.Unlock()
			a.log.Error("storm digest not posted; its incidents are posted one by one", "channel", ch, "err", err)
		}
	})
}

func (a *App) digestInputLocked(d *digest) DigestInput {
	in := DigestInput{Cluster: a.cfg.Cluster, Workloads: make([]DigestWorkload, 0, len(d.members))}
	for _, m := range d.members {
		in.Workloads = append(in.Workloads, m.w)
	}
	return in
}

// changedLocked records a change of the digest's content: an edit follows
// (once it is posted) — soon when the change names a new workload, else
// later and at lower priority. A digest whose workloads have all
// recovered is over (its last edit says so) and leaves its channel.
func (a *App) changedLocked(d *digest, naming bool) {
	d.version++
	if naming {
		d.named = d.version
	}
	if len(d.members) > 0 {
		over := true
		for _, m := range d.members {
			over = over && closedState(m.w.State)
		}
		if over && !d.over {
			d.over = true
			if sc := a.storm.channels[d.channel]; sc != nil && sc.active == d {
				sc.active = nil
			}
			for _, m := range d.members {
				if s := a.storm.members[m.w.IncidentID]; s == m {
					delete(a.storm.members, m.w.IncidentID)
				}
				if m.cardTS != "" {
					// Replies to the card's ts still land in the thread.
					delete(a.storm.cards, Ref(d.channel, m.cardTS))
				}
			}
		}
	}
	a.scheduleLocked(d, naming)
}

// scheduleLocked sends the digest's latest content: after digestGather as
// a digest edit (the queue's first) when it names new workloads, else
// after digestTidy as an ordinary edit. Nothing is scheduled before the
// digest is posted: its post renders the latest content.
func (a *App) scheduleLocked(d *digest, naming bool) {
	if d.ts == "" || d.pending || (!naming && d.tidying) {
		return
	}
	kind, after := KindEdit, digestTidy
	if naming {
		kind, after = KindDigest, digestGather
		d.pending = true
	} else {
		d.tidying = true
	}
	a.storm.afterLocked(after, func() {
		s := a.storm
		s.mu.Lock()
		if kind == KindDigest {
			d.pending = false
		} else {
			d.tidying = false
		}
		ref := Ref(d.channel, d.ts)
		s.mu.Unlock()
		a.queue.Enqueue(kind, d.channel, ref, "chat.update", func(ctx context.Context) error {
			s.mu.Lock()
			if d.shown == d.version {
				s.mu.Unlock()
				return errUnchanged
			}
			m, v := RenderDigest(a.digestInputLocked(d)), d.version
			s.mu.Unlock()
			if _, _, _, err := a.web.UpdateMessageContext(ctx, d.channel, d.ts, m.MsgOptions()...); err != nil {
				return err
			}
			s.mu.Lock()
			d.shown = max(d.shown, v)
			s.mu.Unlock()
			return nil
		})
	})
}

// queueCardLocked posts a member's card (its own message: diagnosis and
// buttons) in the digest's thread. It is rendered when sent, so it shows
// the member's latest diagnosis and state.
func (a *App) queueCardLocked(m *digestMember) {
	m.cardQueued = true
	d := m.d
	s := a.storm
	a.queue.Enqueue(KindRoot, d.channel, "", "chat.postMessage", func(ctx context.Context) error {
		s.mu.Lock()
		msg := Render(a.messageInput(m.inc, m.w.State))
		ts := d.ts
		s.mu.Unlock()
		_, t, err := a.web.PostMessageContext(ctx, d.channel, append(msg.MsgOptions(), slack.MsgOptionTS(ts))...)
		if err != nil {
			return err
		}
		s.mu.Lock()
		m.cardTS = t
		s.cards[Ref(d.channel, t)] = ts
		s.mu.Unlock()
		return nil
	})
}

// editCardLocked re-renders a posted card; a card still waiting to be
// posted will show the latest state when it goes.
func (a *App) editCardLocked(m *digestMember) {
	if m.cardTS == "" {
		return
	}
	d, ts, msg := m.d, m.cardTS, Render(a.messageInput(m.inc, m.w.State))
	a.queue.Enqueue(KindEdit, d.channel, Ref(d.channel, ts), "chat.update", func(ctx context.Context) error {
		_, _, _, err := a.web.UpdateMessageContext(ctx, d.channel, ts, msg.MsgOptions()...)
		return err
	})
}

// openedInStorm handles Opened for an incident of a storm: it takes the
// full diagnosis, regroups the workload if the registry changed its cause,
// queues its card and returns the digest member's reference once the
// digest is posted. ok is false for an incident posted on its own.
func (a *App) openedInStorm(ctx context.Context, inc Incident) (ref string, ok bool, err error) {
	s := a.storm
	ch := a.cfg.ChannelFor(inc.Namespace)
	if s.threshold <= 0 || ch == "" {
		return "", false, nil
	}
	s.mu.Lock()
	now := a.now()
	m := s.members[inc.ID]
	sc := s.channel(ch)
	if m == nil {
		if d := s.joinable(sc, now); d != nil {
			m = a.joinLocked(d, digestWorkload(inc), now)
		} else {
			r := a.noteRecentLocked(sc, digestWorkload(inc), now)
			if sc.workloads() < s.threshold {
				// Posted on its own; a storm that starts later names it too.
				r.w.Own = true
				s.mu.Unlock()
				return "", false, nil
			}
			a.startDigestLocked(sc, ch, now)
			m = s.members[inc.ID]
		}
	}
	if m == nil || m.w.Own {
		s.mu.Unlock()
		return "", false, nil
	}
	a.takeIncidentLocked(m, inc)
	d := m.d
	s.mu.Unlock()
	select {
	case <-d.posted:
	case <-ctx.Done():
		return "", true, ctx.Err()
	}
	if d.err != nil {
		return "", false, nil // post it on its own
	}
	return Ref(d.channel, d.ts) + digestRefSuffix, true, nil
}

// takeIncidentLocked records a member's latest incident: its state and
// diagnosis, regrouping it when the cause changed, and queues its card
// when the full diagnosis is there.
func (a *App) takeIncidentLocked(m *digestMember, inc Incident) (cardChanged bool) {
	w := digestWorkload(inc)
	w.Own = m.w.Own
	if inc.Diagnosis == nil {
		w.Cause = m.w.Cause
	}
	if w.State == StateOpen && inc.State == "" {
		w.State = m.w.State
	}
	changed := w != m.w
	cardChanged = w.State != m.w.State
	m.w = w
	if inc.Diagnosis != nil {
		cardChanged = cardChanged || inc.Diagnosis != m.inc.Diagnosis || len(inc.ProvenSecrets) != len(m.inc.ProvenSecrets)
		m.inc = inc
		if !m.full && !m.w.Own {
			m.full = true
			if m.d.ts != "" {
				a.queueCardLocked(m)
			}
		}
	}
	if changed {
		a.changedLocked(m.d, false)
	}
	return cardChanged
}

// trackInStorm records a member's new state (and diagnosis) and reports
// whether the incident is a digest member whose own message is its card:
// then the caller does nothing more. For a member posted on its own the
// digest is updated and ok is false: its own message is edited as usual.
func (a *App) trackInStorm(inc Incident, editCard bool) (ok bool) {
	s := a.storm
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.members[inc.ID]
	if m == nil {
		// Not (or no longer) tracked: a digest member's reference must
		// never be edited with one incident's message.
		return IsDigestRef(inc.Ref)
	}
	cardChanged := a.takeIncidentLocked(m, inc)
	if m.w.Own {
		return false
	}
	if editCard && cardChanged {
		a.editCardLocked(m)
	}
	return true
}

// Track tells the App an incident's state changed (a click, a storm
// group's member); a storm digest lists it accordingly. It never posts for
// an incident outside a storm.
func (a *App) Track(_ context.Context, inc Incident) { a.trackInStorm(inc, true) }

// Updated is Track for the watcher's notifier: a lifecycle change (which a
// click started, and whose handler edits the incident's own message) is
// listed in a storm digest that names the incident. It never fails.
func (a *App) Updated(ctx context.Context, inc Incident) error {
	a.Track(ctx, inc)
	return nil
}

// UpdatedGroup shows a storm group (in, with its Workloads taken from
// members) in its message ref. A digest that names members lists their
// states (and posts each one's card in its thread once diagnosed); a
// group whose ref is a digest member's has no message of its own: the
// digest groups by cause and registry already.
func (a *App) UpdatedGroup(ctx context.Context, ref string, in GroupInput, members []Incident) error {
	for _, m := range members {
		if m.Ref == "" {
			m.Ref = ref
		}
		a.Track(ctx, m)
		in.Workloads = append(in.Workloads, GroupWorkload{Namespace: m.Namespace, Kind: m.Kind, Name: m.Name,
			Container: m.Container, Image: m.Image, PodCount: len(m.Pods)})
	}
	if IsDigestRef(ref) {
		return nil
	}
	return a.EditRoot(ctx, ref, RenderGroup(in))
}

// threadTS is the thread a reply to ts goes in: a card's replies go in its
// digest's thread (Slack asks for the parent's ts, not a reply's).
func (a *App) threadTS(channel, ts string) string {
	s := a.storm
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.cards[Ref(channel, ts)]; ok {
		return p
	}
	return ts
}
