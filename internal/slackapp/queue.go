package slackapp

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slack-go/slack"
)

// Kind is the value of an outbound write, which decides how the queue treats
// it when Slack is slow or down. Slack allows about one chat.postMessage per
// second per channel (facts/slack.md §5), so a storm of incidents or a long
// outage builds a backlog; the queue then keeps what a person needs (the
// root notification, the latest state of it) and sheds what is only
// commentary (progress, thread chatter).
type Kind int

// Kinds, from the most to the least valuable.
const (
	// KindRoot is a root notification: never dropped, never coalesced.
	KindRoot Kind = iota
	// KindEdit is a chat.update of a root message: never dropped, but
	// coalesced per message (only the latest state matters).
	KindEdit
	// KindDigest is a chat.update that names workloads for the first time
	// (a storm digest): coalesced like KindEdit, never dropped, and sent
	// before any other waiting edit, since until it lands a failing
	// workload is named nowhere.
	KindDigest
	// KindEphemeral is an answer to one person (response_url): never dropped
	// and not paced per channel (response_url has its own budget).
	KindEphemeral
	// KindReply is a thread reply (who clicked, the patch applied, the final
	// state): dropped when the queue is full and no progress update is left.
	KindReply
	// KindProgress is a rollout progress reply: the first to be dropped.
	KindProgress
)

func (k Kind) String() string {
	switch k {
	case KindRoot:
		return "root"
	case KindEdit:
		return "edit"
	case KindDigest:
		return "digest"
	case KindEphemeral:
		return "ephemeral"
	case KindReply:
		return "reply"
	case KindProgress:
		return "progress"
	}
	return "unknown"
}

// droppable reports whether the queue may shed an op of this kind.
func (k Kind) droppable() bool { return k == KindReply || k == KindProgress }

// errUnchanged: a write found nothing to send (a coalesced edit whose
// content Slack already shows); it counts as done and costs no budget.
var errUnchanged = errors.New("slackapp: nothing to send")

// Queue errors.
var (
	// ErrDropped: the write was shed because the queue was full of more
	// valuable writes (only KindReply and KindProgress are ever dropped).
	ErrDropped = errors.New("slackapp: write dropped: outbound queue full")
	// ErrQueueClosed: the queue was closed before the write was sent.
	ErrQueueClosed = errors.New("slackapp: outbound queue closed")
)

// Metrics receives the queue's counters; cmd/bot exports them to
// Prometheus. Implementations must be safe for concurrent use and fast.
type Metrics interface {
	// Sent counts a Web API call (or response_url post) Slack accepted.
	Sent(method string)
	// RateLimited counts an HTTP 429 answer.
	RateLimited(method string, retryAfter time.Duration)
	// Failed counts a failed attempt; retryable ones are tried again.
	Failed(method string, retryable bool)
	// Dropped counts a write shed because the queue was full.
	Dropped(kind Kind)
}

// NopMetrics discards every count.
type NopMetrics struct{}

func (NopMetrics) Sent(string)                       {}
func (NopMetrics) RateLimited(string, time.Duration) {}
func (NopMetrics) Failed(string, bool)               {}
func (NopMetrics) Dropped(Kind)                      {}

// Defaults of the queue options.
const (
	// DefaultPostInterval paces writes per channel: Slack "generally allows
	// one message per second per channel".
	DefaultPostInterval = time.Second
	// DefaultQueueCapacity bounds queued droppable writes (see Queue).
	DefaultQueueCapacity = 500
	// DefaultBackoffBase and DefaultBackoffMax bound the exponential back-off
	// after a 5xx or network error.
	DefaultBackoffBase = 250 * time.Millisecond
	DefaultBackoffMax  = 30 * time.Second
	// DefaultAttemptTimeout bounds one HTTP attempt.
	DefaultAttemptTimeout = 20 * time.Second
	// DefaultEditLimit and DefaultEditWindow budget chat.update, which
	// Slack limits per workspace (Tier 3: "50+ per minute", in per-minute
	// windows; facts/slack.md §5), not per channel: at most 48 calls in any
	// sliding minute, counted from when each earlier call's answer
	// arrived, so Slack — which counts a call when it arrives — can never
	// see more than 48 of them within its minute. Two below 50: Slack's
	// "50+" is a floor, not a promise. A storm may spend the minute's
	// budget in its first seconds, when naming workloads matters most.
	DefaultEditLimit  = 48
	DefaultEditWindow = time.Minute
	// maxUnknownAttempts bounds retries of errors that are neither clearly
	// transient nor clearly permanent.
	maxUnknownAttempts = 5
)

// QueueOption configures a Queue.
type QueueOption func(*Queue)

// WithPostInterval sets the minimum spacing of writes in one channel.
// Default: DefaultPostInterval. Zero disables pacing (tests of overload).
func WithPostInterval(d time.Duration) QueueOption { return func(q *Queue) { q.interval = max(d, 0) } }

// WithPostBurst lets a channel send n writes back to back before pacing
// applies (Slack allows "short bursts" above one message per second); the
// allowance comes back one per interval of quiet. Default 1: no burst.
func WithPostBurst(n int) QueueOption { return func(q *Queue) { q.burst = max(n, 1) } }

// WithEditBudget sets the workspace-wide budget of chat.update calls: at
// most limit attempts in any sliding window. limit <= 0 disables the
// budget. Default: DefaultEditLimit per DefaultEditWindow.
func WithEditBudget(limit int, window time.Duration) QueueOption {
	return func(q *Queue) { q.editLimit, q.editWindow = limit, window }
}

// WithQueueCapacity sets how many writes may wait before droppable ones are
// shed. Default: DefaultQueueCapacity.
func WithQueueCapacity(n int) QueueOption { return func(q *Queue) { q.capacity = max(n, 1) } }

// WithBackoff sets the exponential back-off after 5xx and network errors.
// Default: DefaultBackoffBase, DefaultBackoffMax.
func WithBackoff(base, maxWait time.Duration) QueueOption {
	return func(q *Queue) { q.backoffBase, q.backoffMax = max(base, time.Millisecond), max(maxWait, base) }
}

// WithMetrics sets the metrics sink. Default: NopMetrics.
func WithMetrics(m Metrics) QueueOption { return func(q *Queue) { q.metrics = m } }

// WithQueueLogger sets the logger. Default: slog.Default().
func WithQueueLogger(l *slog.Logger) QueueOption { return func(q *Queue) { q.log = l } }

// op is one queued write.
type op struct {
	kind   Kind
	lane   string // channel id; "" for ephemerals (not paced)
	key    string // coalescing key for KindEdit ("channel:ts")
	method string
	do     func(ctx context.Context) error

	waiters   []chan error // each buffered 1
	cancelled atomic.Bool
	seq       uint64
}

func (o *op) finish(err error) {
	for _, w := range o.waiters {
		w <- err
	}
	o.waiters = nil
}

type lane struct {
	items   []*op
	running bool
	last    time.Time // when the last write of this lane was sent
	// spent counts writes sent within the current burst: a lane may send
	// burst writes back to back, then one per interval.
	spent int
}

// Queue sends every Web API write of the app: paced per channel, in order
// per channel, retried through 429s (honouring Retry-After), 5xx and network
// errors with exponential back-off, so that a Slack outage loses nothing.
//
// It is bounded: when more than its capacity is waiting, the oldest
// progress update is shed first, then the oldest thread reply. Root
// notifications, edits of a root (coalesced: a queued edit of the same
// message is replaced by the newer one) and ephemeral answers are never
// shed; each of those has a caller waiting for it, so their number is bounded
// by the callers themselves.
type Queue struct {
	interval    time.Duration
	burst       int
	editLimit   int // chat.update attempts per editWindow; <= 0: no budget
	editWindow  time.Duration
	editDone    []time.Time // when the answers to the latest attempts arrived, oldest first
	capacity    int
	backoffBase time.Duration
	backoffMax  time.Duration
	attemptTO   time.Duration
	metrics     Metrics
	log         *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	lanes  map[string]*lane
	queued int // ops waiting (not in flight)
	seq    uint64
}

// NewQueue starts a queue; Close stops it.
func NewQueue(opts ...QueueOption) *Queue {
	q := &Queue{
		interval:    DefaultPostInterval,
		burst:       1,
		editLimit:   DefaultEditLimit,
		editWindow:  DefaultEditWindow,
		capacity:    DefaultQueueCapacity,
		backoffBase: DefaultBackoffBase,
		backoffMax:  DefaultBackoffMax,
		attemptTO:   DefaultAttemptTimeout,
		metrics:     NopMetrics{},
		log:         slog.Default(),
		lanes:       map[string]*lane{},
	}
	for _, o := range opts {
		o(q)
	}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	return q
}

// editLane is the one lane of every chat.update: Slack budgets the method
// per workspace, so edits of all channels share it, and they never wait
// behind a channel's paced posts.
const editLane = "\x00chat.update"

// isEdit reports whether kind is a coalesced chat.update.
func isEdit(k Kind) bool { return k == KindEdit || k == KindDigest }

// Close stops the queue: writes still waiting fail with ErrQueueClosed, and
// Close waits for the writes in flight.
func (q *Queue) Close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	for _, l := range q.lanes {
		for _, o := range l.items {
			o.finish(ErrQueueClosed)
		}
		l.items = nil
	}
	q.queued = 0
	q.mu.Unlock()
	q.cancel()
	q.wg.Wait()
}

// Len returns how many writes are waiting (not in flight).
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.queued
}

// Enqueue adds a write and returns a channel that receives its outcome
// once: nil when Slack accepted it, ErrDropped, ErrQueueClosed, or the
// permanent error Slack answered.
func (q *Queue) Enqueue(kind Kind, channel, key, method string, do func(ctx context.Context) error) <-chan error {
	done := make(chan error, 1)
	q.enqueue(kind, channel, key, method, do, done)
	return done
}

// Do enqueues a write and waits for its outcome. If ctx ends first the
// write is withdrawn when it has not started yet (so a caller that gives up
// does not post later behind its back) and ctx's error is returned.
func (q *Queue) Do(ctx context.Context, kind Kind, channel, key, method string, do func(ctx context.Context) error) error {
	done := make(chan error, 1)
	o := q.enqueue(kind, channel, key, method, do, done)
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		if o != nil && !isEdit(kind) { // an edit may be shared with other callers
			o.cancelled.Store(true)
		}
		return ctx.Err()
	}
}

func (q *Queue) enqueue(kind Kind, channel, key, method string, do func(ctx context.Context) error, done chan error) *op {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		done <- ErrQueueClosed
		return nil
	}
	laneID := channel
	switch {
	case kind == KindEphemeral:
		laneID = "" // one unpaced lane for answers to people
	case isEdit(kind):
		laneID = editLane
	}
	l := q.lanes[laneID]
	if l == nil {
		l = &lane{}
		q.lanes[laneID] = l
	}
	if isEdit(kind) && key != "" {
		for _, o := range l.items {
			if isEdit(o.kind) && o.key == key && !o.cancelled.Load() {
				o.do = do // only the latest state matters
				if kind == KindDigest {
					o.kind = kind
				}
				o.waiters = append(o.waiters, done)
				return o
			}
		}
	}
	q.seq++
	o := &op{kind: kind, lane: laneID, key: key, method: method, do: do, waiters: []chan error{done}, seq: q.seq}
	if q.queued >= q.capacity && !q.shedLocked(o) {
		// The new write itself was the least valuable: shed it.
		q.metrics.Dropped(kind)
		q.log.Warn("slack write dropped: queue full", "kind", kind.String(), "method", method, "channel", channel)
		o.finish(ErrDropped)
		return nil
	}
	l.items = append(l.items, o)
	q.queued++
	if !l.running {
		l.running = true
		q.wg.Add(1)
		go q.runLane(laneID, l)
	}
	return o
}

// shedLocked makes room for o by dropping the oldest least valuable queued
// write, if one is less valuable than o or as valuable and older. It
// returns false when o itself should be dropped. Non-droppable writes are
// admitted over capacity rather than dropped.
func (q *Queue) shedLocked(o *op) bool {
	for _, kind := range []Kind{KindProgress, KindReply} {
		var (
			victim *op
			vLane  *lane
			vIndex int
		)
		for _, l := range q.lanes {
			for i, it := range l.items {
				if it.kind == kind && (victim == nil || it.seq < victim.seq) {
					victim, vLane, vIndex = it, l, i
				}
			}
		}
		if victim == nil {
			if o.kind == kind {
				return false // nothing less valuable queued: drop the newcomer
			}
			continue
		}
		vLane.items = append(vLane.items[:vIndex], vLane.items[vIndex+1:]...)
		q.queued--
		q.metrics.Dropped(victim.kind)
		q.log.Warn("slack write dropped: queue full", "kind", victim.kind.String(), "method", victim.method, "channel", victim.lane)
		victim.finish(ErrDropped)
		return true
	}
	return true // o is not droppable and nothing droppable is queued: admit over capacity
}

// runLane sends one lane's writes, pacing channel lanes; the edit lane
// spends the chat.update budget instead. Root posts go before replies,
// digest edits before other edits, each kind in order.
func (q *Queue) runLane(id string, l *lane) {
	defer q.wg.Done()
	for {
		if id == editLane && !q.waitEditBudget(l) {
			q.mu.Lock()
			for _, o := range l.items {
				o.finish(ErrQueueClosed)
			}
			q.queued -= len(l.items)
			l.items, l.running = nil, false
			q.mu.Unlock()
			return
		}
		q.mu.Lock()
		var o *op
		for len(l.items) > 0 && o == nil {
			// What names a failing workload goes first: digest edits
			// before other edits, root posts (a digest, a card, an
			// incident) before thread commentary; each kind in order.
			first := KindRoot
			if id == editLane {
				first = KindDigest
			}
			i := max(0, slices.IndexFunc(l.items, func(o *op) bool { return o.kind == first }))
			o = l.items[i]
			l.items = slices.Delete(l.items, i, i+1)
			q.queued--
			if o.cancelled.Load() {
				o.finish(context.Canceled)
				o = nil
			}
		}
		if o == nil {
			l.running = false
			q.mu.Unlock()
			return
		}
		last := l.last
		// The burst allowance comes back one write per interval of quiet.
		if q.interval > 0 && !last.IsZero() {
			l.spent = max(0, l.spent-int(time.Since(last)/q.interval))
		}
		spent := l.spent
		// Take the coalesced function under the lock: enqueue may replace it
		// until the op leaves the lane.
		do := o.do
		q.mu.Unlock()

		if id != "" && id != editLane && q.interval > 0 && spent >= q.burst {
			if wait := time.Until(last.Add(q.interval)); wait > 0 && !q.sleep(wait) {
				o.finish(ErrQueueClosed)
				continue
			}
		}
		err := q.send(o, do)
		q.mu.Lock()
		l.last = time.Now()
		l.spent = min(l.spent+1, q.burst)
		o.finish(err)
		q.mu.Unlock()
	}
}

// waitEditBudget waits until the edit lane's next write fits in the
// chat.update budget: a digest edit may use all of it, other edits leave
// the last quarter to digests, so a storm's naming never waits behind the
// edits of cards and resolved messages. It re-checks while waiting, as a
// digest edit may arrive meanwhile. False when the queue closed first.
// The edit lane sends one call at a time, so no other call is in flight.
func (q *Queue) waitEditBudget(l *lane) bool {
	for {
		q.mu.Lock()
		if q.editLimit <= 0 {
			q.mu.Unlock()
			return true
		}
		now := time.Now()
		cut := 0
		for cut < len(q.editDone) && now.Sub(q.editDone[cut]) >= q.editWindow {
			cut++
		}
		q.editDone = q.editDone[cut:]
		limit := q.editLimit
		if !slices.ContainsFunc(l.items, func(o *op) bool { return o.kind == KindDigest }) {
			limit -= q.editLimit / 4
		}
		if len(q.editDone) < max(limit, 1) {
			q.mu.Unlock()
			return true
		}
		wait := q.editDone[len(q.editDone)-max(limit, 1)].Add(q.editWindow).Sub(now)
		q.mu.Unlock()
		if !q.sleep(min(max(wait, time.Millisecond), 250*time.Millisecond)) {
			return false
		}
	}
}

// editAnswered records that an attempted chat.update was answered (or
// failed): it counts against the budget until a window after now.
func (q *Queue) editAnswered() {
	q.mu.Lock()
	if q.editLimit > 0 {
		q.editDone = append(q.editDone, time.Now())
	}
	q.mu.Unlock()
}

// sleep waits d or until the queue closes; false means closed.
func (q *Queue) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-q.ctx.Done():
		return false
	}
}

// send tries one write until Slack accepts it, refuses it for good, or the
// queue closes.
func (q *Queue) send(o *op, do func(ctx context.Context) error) error {
	backoff := q.backoffBase
	unknown := 0
	for attempt := 1; ; attempt++ {
		if q.ctx.Err() != nil {
			return ErrQueueClosed
		}
		if o.cancelled.Load() {
			// The caller gave up while Slack was failing: do not post behind
			// its back later.
			return context.Canceled
		}
		if isEdit(o.kind) && attempt > 1 && !q.waitEditBudget(&lane{items: []*op{o}}) {
			return ErrQueueClosed
		}
		actx, cancel := context.WithTimeout(q.ctx, q.attemptTO)
		err := do(actx)
		cancel()
		if errors.Is(err, errUnchanged) {
			err = nil // nothing was sent
		} else if isEdit(o.kind) {
			q.editAnswered()
		}
		if err == nil {
			q.metrics.Sent(o.method)
			return nil
		}
		if q.ctx.Err() != nil {
			return ErrQueueClosed
		}
		class, wait := classify(err)
		switch class {
		case errRateLimited:
			q.metrics.RateLimited(o.method, wait)

			q.log.Info("slack rate limited; waiting", "method", o.method, "channel", o.lane, "retry_after", wait)
			if !q.sleep(wait) {
				return ErrQueueClosed
			}
			continue
		case errPermanent:
			q.metrics.Failed(o.method, false)
			q.log.Error("slack write refused", "method", o.method, "channel", o.lane, "kind", o.kind.String(), "err", err)
			return err
		case errUnknown:
			unknown++
			if unknown >= maxUnknownAttempts {
				q.metrics.Failed(o.method, false)
				q.log.Error("slack write failed", "method", o.method, "channel", o.lane, "attempts", attempt, "err", err)
				return err
			}
		}
		q.metrics.Failed(o.method, true)
		jittered := backoff/2 + rand.N(backoff/2+1)
		q.log.Warn("slack write failed; retrying", "method", o.method, "channel", o.lane, "attempt", attempt, "in", jittered, "err", err)
		if !q.sleep(jittered) {
			return ErrQueueClosed
		}
		backoff = min(backoff*2, q.backoffMax)
	}
}

type errClass int

const (
	errTransient errClass = iota
	errRateLimited
	errPermanent
	errUnknown
)

// transientSlackErrors are ok:false codes that mean "try again later".
var transientSlackErrors = map[string]bool{
	"internal_error": true, "fatal_error": true, "service_unavailable": true,
	"request_timeout": true, "ratelimited": true, "rate_limited": true,
}

// classify sorts a Web API error: rate limited (with the wait Slack asked
// for), transient (5xx, network), permanent (Slack refused the content or
// the target), or unknown.
func classify(err error) (errClass, time.Duration) {
	if rl, ok := errors.AsType[*slack.RateLimitedError](err); ok {
		return errRateLimited, max(rl.RetryAfter, time.Second)
	}
	if sc, ok := errors.AsType[slack.StatusCodeError](err); ok {
		switch {
		case sc.Code == http.StatusTooManyRequests:
			return errRateLimited, time.Second
		case sc.Code >= 500 || sc.Code == http.StatusRequestTimeout:
			return errTransient, 0
		default:
			return errPermanent, 0
		}
	}
	if se, ok := errors.AsType[slack.SlackErrorResponse](err); ok {
		if transientSlackErrors[se.Err] {
			return errTransient, 0
		}
		return errPermanent, 0
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return errTransient, 0
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return errTransient, 0
	}
	return errUnknown, 0
}
