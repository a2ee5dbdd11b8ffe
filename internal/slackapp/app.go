// Package slackapp is pullfix's Slack side: it posts one message per
// incident, takes approvals from buttons, answers /pullfix, and follows a
// fix to the end in the message's thread. It speaks Socket Mode (no
// ingress) or HTTP mode (signed requests), and sends every write through a
// paced, bounded, retrying queue.
//
// It never imports internal/watch: the interfaces it needs (Incidents,
// Fixer, OnDemand, ApprovalPolicy) are declared here and cmd/bot adapts the
// watcher to them.
package slackapp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// Incident is what the App needs to know about one incident: enough to
// render its message and to resolve a button's candidate id to an image in
// the bot's own state.
type Incident struct {
	// ID is the incident id the buttons carry.
	ID        string
	Namespace string
	// Kind and Name are the workload's ("Deployment", "ui-new").
	Kind      string
	Name      string
	Container string
	// Image is the image in the workload's spec when it was diagnosed.
	Image string
	// Pods are the failing pods (names within Namespace).
	Pods []string
	// State is the message state the incident is in (open, fixing,
	// resolved, dismissed, snoozed); "" means open. The caller maps its own
	// lifecycle onto these.
	State State
	// FixingBy is the Slack user id of the approver whose fix is under way.
	FixingBy string
	// Diagnosis is the latest diagnosis; its Candidates are the only images
	// a button can deploy.
	Diagnosis *diagnose.Diagnosis
	// ProvenSecrets are imagePullSecrets whose credentials the registry
	// accepted for Image: the only secrets "Add imagePullSecret" can add.
	ProvenSecrets []string
	// Ref is where the root message is ("channel:ts"), "" before it is posted.
	Ref string
	// PostID names the root post under way: Opened puts it in the
	// message's metadata, so FindPosted can find the message after a crash
	// (history.go).
	PostID string
	// GitOps is set when a GitOps controller owns the workload.
	GitOps *GitOps
}

// Workload renders "deployment/ui-new".
func (i Incident) Workload() string { return strings.ToLower(i.Kind) + "/" + i.Name }

// Candidate returns the incident's own candidate with id, if any.
func (i Incident) Candidate(id string) (diagnose.Candidate, bool) {
	if i.Diagnosis == nil {
		return diagnose.Candidate{}, false
	}
	for _, c := range i.Diagnosis.Candidates {
		if c.ID == id {
			return c, true
		}
	}
	return diagnose.Candidate{}, false
}

// ErrUnknownIncident: the incident id is not (or no longer) in the bot's
// state. Incidents implementations wrap it.
var ErrUnknownIncident = errors.New("unknown incident")

// FixInProgressError: someone's fix of the incident is already under way.
// Incidents.MarkFixing returns it; the second clicker is told who.
type FixInProgressError struct{ By string }

func (e *FixInProgressError) Error() string {
	if e.By == "" {
		return "a fix is already under way"
	}
	return "a fix is already under way (approved by " + e.By + ")"
}

// Incidents is the bot's incident state (the watcher's, in production).
type Incidents interface {
	// Incident returns one incident, or an error wrapping ErrUnknownIncident.
	Incident(ctx context.Context, id string) (Incident, error)
	// List returns the open incidents (all namespaces when namespace is "").
	List(ctx context.Context, namespace string) ([]Incident, error)
	// MarkFixing records that fix.By approved fix and it is starting; it
	// is the guard against a double click and returns *FixInProgressError
	// when a fix is already under way. The fix is recorded with the mark
	// (durably, in cmd/bot: the watcher's state), so a restart can say what
	// became of it (ResumeFix).
	MarkFixing(ctx context.Context, id string, fix PendingFix) error
	// ClearFixing undoes MarkFixing after a fix that was refused or failed,
	// so the incident can be fixed again.
	ClearFixing(ctx context.Context, id string) error
	// Dismiss closes the incident without a change.
	Dismiss(ctx context.Context, id, user string) error
	// Snooze silences the incident until the given time.
	Snooze(ctx context.Context, id, user string, until time.Time) error
	// Recheck diagnoses the incident again and returns it updated.
	Recheck(ctx context.Context, id string) (Incident, error)
}

// FixResult is what the Fixer applied.
type FixResult struct {
	// From and To describe the change: images for SetImage, the pull secret
	// for AddPullSecret ("" → "regcred").
	From, To string
	// Note is an optional line for the thread (e.g. the change-cause).
	Note string
}

// RolloutProgress is one observation while following a rollout.
type RolloutProgress struct {
	Ready, Desired int
	Message        string
}

// RolloutResult is how a rollout ended.
type RolloutResult struct {
	// Ready: all the workload's pods for the container run the new image
	// and are ready.
	Ready     bool
	ReadyPods int
	Desired   int
	Image     string
	// Diagnosis is the new diagnosis when the workload still fails.
	Diagnosis *diagnose.Diagnosis
	Message   string
}

// FixRefusedError: the Fixer re-checked and did not apply the change
// (the workload changed since the diagnosis, a concurrent edit won, the
// dry run failed). Reason is shown to people as is.
type FixRefusedError struct{ Reason string }

func (e *FixRefusedError) Error() string { return "fix not applied: " + e.Reason }

// Fixer applies approved fixes (the watcher's patcher, in production). The
// image always comes from the incident's own candidates, looked up by id:
// nothing in a Slack payload can choose what gets deployed.
type Fixer interface {
	// SetImage re-checks, dry-runs and patches the container's image to the
	// incident's candidate candidateID, recording approver.
	SetImage(ctx context.Context, incidentID, candidateID, approver string) (FixResult, error)
	// AddPullSecret adds the proven imagePullSecret secret to the workload.
	AddPullSecret(ctx context.Context, incidentID, secret, approver string) (FixResult, error)
	// FollowRollout watches the workload until its pods are ready with the
	// new image or a deadline passes, calling progress on each change.
	FollowRollout(ctx context.Context, incidentID string, progress func(RolloutProgress)) (RolloutResult, error)
}

// OnDemand diagnoses a workload now, for /pullfix NAME.
type OnDemand interface {
	// Diagnose diagnoses the workload (kind "" means the caller's default)
	// in namespace ("" means search the watched namespaces). It returns
	// healthy=true when nothing is wrong; otherwise the incident (registered,
	// so its buttons work). Errors are shown to the person as is, so they
	// must say what is wrong: unknown workload, ambiguous name, namespace
	// outside the bot's scope.
	Diagnose(ctx context.Context, namespace, kind, name string) (inc Incident, healthy bool, err error)
}

// ApprovalPolicy decides who may click what (*Approvers implements it).
type ApprovalPolicy interface {
	// AllowedTo reports whether user may take action in namespace, and why
	// (in words for the clicker).
	AllowedTo(ctx context.Context, action Action, namespace, user string) (bool, string, error)
}

// Deps are the App's collaborators; all are required except OnDemand
// (without it /pullfix NAME answers that on-demand diagnosis is off).
type Deps struct {
	Incidents Incidents
	Fixer     Fixer
	OnDemand  OnDemand
	Approvers ApprovalPolicy
	// Authorizer, when set, may refuse a fix privately before it starts
	// (authorize.go).
	Authorizer FixAuthorizer
}

// Config is the App's Slack configuration.
type Config struct {
	// Cluster is this bot's cluster name: shown in every message and carried
	// in every button; clicks naming another cluster are refused.
	Cluster string
	// DefaultChannel receives notifications for namespaces not in Channels.
	DefaultChannel string
	// Channels maps a namespace to its channel id.
	Channels map[string]string
	// SigningSecret enables HTTP mode (Handler). Unused in Socket Mode.
	SigningSecret string
	// Command is the slash command ("/pullfix" when empty).
	Command string
}

// ChannelFor is the channel notifications of namespace go to.
func (c Config) ChannelFor(namespace string) string {
	if ch, ok := c.Channels[namespace]; ok && ch != "" {
		return ch
	}
	return c.DefaultChannel
}

// Defaults of the App options.
const (
	// DefaultWorkers bounds concurrent work after acks (fixes, diagnoses).
	DefaultWorkers = 8
	// DefaultBacklog bounds work waiting for a worker; beyond it a request
	// is answered "busy, try again".
	DefaultBacklog = 256
	// DefaultSnooze is how long "Snooze" silences an incident.
	DefaultSnooze = time.Hour
)

// Option configures an App.
type Option func(*App)

// WithLogger sets the logger. Tokens and secrets are never logged.
// Default: slog.Default().
func WithLogger(l *slog.Logger) Option { return func(a *App) { a.log = l } }

// WithWorkers sets the worker pool size and backlog. Default:
// DefaultWorkers, DefaultBacklog.
func WithWorkers(n, backlog int) Option {
	return func(a *App) { a.workers, a.backlog = max(n, 1), max(backlog, 1) }
}

// WithQueueOptions configures the outbound queue (pacing, capacity,
// back-off, metrics). Default: the Queue defaults.
func WithQueueOptions(opts ...QueueOption) Option {
	return func(a *App) { a.queueOpts = append(a.queueOpts, opts...) }
}

// WithMaxBody bounds HTTP-mode request bodies. Default: DefaultMaxBody.
func WithMaxBody(n int64) Option { return func(a *App) { a.maxBody = max(n, 1024) } }

// WithSnooze sets how long Snooze silences an incident. Default: DefaultSnooze.
func WithSnooze(d time.Duration) Option { return func(a *App) { a.snooze = d } }

// WithClock replaces time.Now (tests). Default: time.Now.
func WithClock(now func() time.Time) Option { return func(a *App) { a.now = now } }

// webAPI is the part of *slack.Client the App writes with.
type webAPI interface {
	PostMessageContext(ctx context.Context, channelID string, options ...slack.MsgOption) (string, string, error)
	UpdateMessageContext(ctx context.Context, channelID, timestamp string, options ...slack.MsgOption) (string, string, string, error)
}

// App is the Slack side of pullfix. Create it with New; stop it with Close.
type App struct {
	api       *slack.Client
	web       webAPI
	cfg       Config
	deps      Deps
	log       *slog.Logger
	queue     *Queue
	queueOpts []QueueOption
	verifier  *Verifier
	maxBody   int64
	snooze    time.Duration
	now       func() time.Time

	workers int
	backlog int
	inline  bool // tests (fuzzing): run work on the caller's goroutine, unrecovered
	jobs    chan job
	ctx     context.Context // ends with Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	// storm holds the channels' storm digests (storm.go).
	storm *stormState

	// details maps a root message ("channel:ts") to its details reply's
	// ts, so a refined diagnosis edits the reply instead of adding one.
	detailsMu sync.Mutex
	details   map[string]string
}

type job struct {
	ctx  context.Context
	work func(context.Context)
}

// New builds the App and starts its worker pool and outbound queue. api
// must carry the bot token (and, for Run, the app-level token:
// slack.OptionAppLevelToken).
func New(api *slack.Client, cfg Config, deps Deps, opts ...Option) *App {
	if cfg.Command == "" {
		cfg.Command = "/pullfix"
	}
	a := &App{
		api: api, web: api, cfg: cfg, deps: deps,
		log: slog.Default(), maxBody: DefaultMaxBody, snooze: DefaultSnooze, now: time.Now,
		workers: DefaultWorkers, backlog: DefaultBacklog, details: map[string]string{},
		storm: newStormState(),
	}
	for _, o := range opts {
		o(a)
	}
	a.log = a.log.With("component", "slackapp")
	if cfg.SigningSecret != "" {
		a.verifier = NewVerifier(cfg.SigningSecret)
	}
	a.queue = NewQueue(append([]QueueOption{WithQueueLogger(a.log)}, a.queueOpts...)...)
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.jobs = make(chan job, a.backlog)
	for range a.workers {
		a.wg.Go(a.worker)
	}
	return a
}

// Close stops the workers (cancelling work in progress), the storm
// digests' timers and the queue, and waits for every goroutine of theirs.
func (a *App) Close() {
	a.cancel()
	a.wg.Wait()
	a.storm.stop()
	a.queue.Close() // answers the writes a digest's goroutine may wait for
	a.storm.wait()
}

// Queue exposes the outbound queue (metrics, tests).
func (a *App) Queue() *Queue { return a.queue }

func (a *App) worker() {
	for {
		select {
		case <-a.ctx.Done():
			return
		case j := <-a.jobs:
			a.runJob(j)
		}
	}
}

func (a *App) runJob(j job) {
	defer func() {
		if r := recover(); r != nil {
			a.log.Error("slackapp: work panicked", "panic", fmt.Sprint(r))
		}
	}()
	ctx, cancel := context.WithCancel(a.ctx)
	defer cancel()
	if j.ctx != nil {
		stop := context.AfterFunc(j.ctx, cancel)
		defer stop()
	}
	j.work(ctx)
}

// submit hands work to the pool without blocking; when the backlog is full
// it calls busy instead. ctx cancels the work (the transport's lifetime).
func (a *App) submit(ctx context.Context, work func(context.Context), busy func()) {
	if work == nil {
		return
	}
	if a.inline {
		work(ctx)
		return
	}
	select {
	case a.jobs <- job{ctx: ctx, work: work}:
	default:
		a.log.Warn("slackapp: worker backlog full; request refused")
		if busy != nil {
			go busy()
		}
	}
}

// ParseRef splits "channel:ts". A storm digest member's reference
// ("channel:ts#storm") gives the digest's channel and ts: its thread.
func ParseRef(ref string) (channel, ts string, ok bool) {
	channel, ts, ok = strings.Cut(strings.TrimSuffix(ref, digestRefSuffix), ":")
	return channel, ts, ok && channel != "" && ts != ""
}

// Ref builds "channel:ts".
func Ref(channel, ts string) string { return channel + ":" + ts }

// ---- notifications (the watcher's side, adapted in cmd/bot) ---------------

// Group is a storm: many workloads failing for one cause at one registry,
// notified as one message.
type Group struct {
	// ID is the incident id the group's buttons carry.
	ID        string
	Diagnosis diagnose.Diagnosis
	Workloads []GroupWorkload
}

// Opened posts an incident's root message to its namespace's channel and
// returns where it is ("channel:ts"), for the caller to store. It waits
// for Slack (pacing, 429s and outages included) until ctx ends; a root
// notification is never dropped.
//
// The root message is short (what broke, the evidence line, the fix
// button); the details (the kubelet's words, the registry requests, how
// each candidate was found) follow as the thread's first reply. A failed
// details reply is logged, never an error: the root is what pages.
func (a *App) Opened(ctx context.Context, inc Incident) (string, error) {
	if ref, ok, err := a.openedInStorm(ctx, inc); ok {
		return ref, err
	}
	in := a.messageInput(inc, StateOpen)
	ref, err := a.postRoot(ctx, a.cfg.ChannelFor(inc.Namespace), Render(in), a.incidentMetadata(inc))
	if err != nil {
		return ref, err
	}
	a.postDetails(ctx, ref, RenderDetails(in))
	return ref, nil
}

// postDetails posts (or, when the root has one already, edits) the
// details reply in the root's thread.
func (a *App) postDetails(ctx context.Context, ref string, m Message) {
	channel, ts, ok := ParseRef(ref)
	if !ok {
		return
	}
	a.detailsMu.Lock()
	replyTS, edit := a.details[ref]
	a.detailsMu.Unlock()
	if edit && replyTS == "" {
		// A root adopted after a restart whose details reply is there,
		// at a ts this process does not know (history.go): leave it.
		return
	}
	var err error
	if edit {
		err = a.queue.Do(ctx, KindEdit, channel, Ref(channel, replyTS), "chat.update", func(ctx context.Context) error {
			_, _, _, err := a.web.UpdateMessageContext(ctx, channel, replyTS, m.MsgOptions()...)
			return err
		})
	} else {
		err = a.queue.Do(ctx, KindReply, channel, "", "chat.postMessage", func(ctx context.Context) error {
			_, t, err := a.web.PostMessageContext(ctx, channel, append(m.MsgOptions(), slack.MsgOptionTS(a.threadTS(channel, ts)))...)
			if err == nil {
				a.detailsMu.Lock()
				a.details[ref] = t
				a.detailsMu.Unlock()
			}
			return err
		})
	}
	if err != nil {
		a.log.WarnContext(ctx, "details reply not posted", "ref", ref, "err", err)
	}
}

// OpenedGroup posts one root message for a storm. It goes to the
// namespace's channel when all workloads share one namespace, else to the
// default channel.
func (a *App) OpenedGroup(ctx context.Context, g Group) (string, error) {
	channel := a.cfg.DefaultChannel
	if len(g.Workloads) > 0 {
		ns := g.Workloads[0].Namespace
		same := true
		for _, w := range g.Workloads[1:] {
			same = same && w.Namespace == ns
		}
		if same {
			channel = a.cfg.ChannelFor(ns)
		}
	}
	in := GroupInput{Cluster: a.cfg.Cluster, GroupID: g.ID, Diagnosis: g.Diagnosis, Workloads: g.Workloads}
	ref, err := a.postRoot(ctx, channel, RenderGroup(in), nil)
	if err != nil {
		return ref, err
	}
	a.postDetails(ctx, ref, RenderGroupDetails(in))
	return ref, nil
}

func (a *App) postRoot(ctx context.Context, channel string, m Message, meta *slack.SlackMetadata) (string, error) {
	if channel == "" {
		return "", errors.New("slackapp: no channel configured (DefaultChannel is empty)")
	}
	opts := m.MsgOptions()
	if meta != nil {
		opts = append(opts, slack.MsgOptionMetadata(*meta))
	}
	var ts string
	err := a.queue.Do(ctx, KindRoot, channel, "", "chat.postMessage", func(ctx context.Context) error {
		_, t, err := a.web.PostMessageContext(ctx, channel, opts...)
		if err == nil {
			ts = t
		}
		return err
	})
	if err != nil {
		return "", fmt.Errorf("slackapp: post to %s: %w", channel, err)
	}
	return Ref(channel, ts), nil
}

// Resolution says how an incident ended, for Resolved.
type Resolution struct {
	// Actor is the approver whose fix resolved it; "" when it was resolved
	// outside pullfix (someone ran kubectl).
	Actor string
	// Image is what the workload now runs.
	Image string
	// ReadyPods and Desired are the ready count ("1/1").
	ReadyPods, Desired int
}

// Resolved edits the incident's root message to its final state and says
// so in its thread. inc.Ref must be set.
func (a *App) Resolved(ctx context.Context, inc Incident, r Resolution) error {
	done := inc
	done.State = StateResolved
	if a.trackInStorm(done, true) {
		return nil // the digest shrinks; the card shows it resolved
	}
	if _, _, ok := ParseRef(inc.Ref); !ok {
		return fmt.Errorf("slackapp: incident %s has no message reference", inc.ID)
	}
	in := a.messageInput(inc, StateResolved)
	in.Actor, in.FixImage = r.Actor, r.Image
	if r.Desired > 0 {
		in.Ready = fmt.Sprintf("%d/%d", r.ReadyPods, r.Desired)
	}
	if err := a.EditRoot(ctx, inc.Ref, Render(in)); err != nil {
		return err
	}
	ev := UpdateResolved
	if r.Actor == "" {
		ev = UpdateResolvedElsewhere
	}
	return a.Reply(ctx, inc.Ref, KindReply, RenderThreadUpdate(a.threadUpdate(inc, ev, r.Actor, func(u *ThreadUpdate) {
		u.NewImage, u.Ready, u.Desired, u.Updated = r.Image, r.ReadyPods, r.Desired, r.ReadyPods
	})))
}

// Refresh re-renders an open incident's root message with its current
// diagnosis: the watcher posts on the kubelet's words when the registry is
// slow to answer, and calls this when the probe's answer arrives.
func (a *App) Refresh(ctx context.Context, inc Incident) error {
	if a.trackInStorm(inc, true) {
		return nil // its card shows the new diagnosis
	}
	if _, _, ok := ParseRef(inc.Ref); !ok {
		return fmt.Errorf("slackapp: incident %s has no message reference", inc.ID)
	}
	in := a.messageInput(inc, StateOpen)
	if err := a.EditRoot(ctx, inc.Ref, Render(in)); err != nil {
		return err
	}
	a.postDetails(ctx, inc.Ref, RenderDetails(in))
	return nil
}

// EditRoot replaces the root message at ref with m (chat.update). Edits
// of one message are coalesced in the queue: only the latest is sent.
func (a *App) EditRoot(ctx context.Context, ref string, m Message) error {
	if IsDigestRef(ref) {
		return nil // a digest shows the storm, never one incident's message
	}
	channel, ts, ok := ParseRef(ref)
	if !ok {
		return fmt.Errorf("slackapp: bad message reference %q", ref)
	}
	return a.queue.Do(ctx, KindEdit, channel, ref, "chat.update", func(ctx context.Context) error {
		_, _, _, err := a.web.UpdateMessageContext(ctx, channel, ts, m.MsgOptions()...)
		return err
	})
}

// Reply posts m in the thread of the root message at ref and waits for
// it. kind is KindReply or KindProgress (the first to be shed under
// backlog).
func (a *App) Reply(ctx context.Context, ref string, kind Kind, m Message) error {
	channel, ts, ok := ParseRef(ref)
	if !ok {
		return fmt.Errorf("slackapp: bad message reference %q", ref)
	}
	if kind != KindProgress {
		kind = KindReply
	}
	return a.queue.Do(ctx, kind, channel, "", "chat.postMessage", a.postReply(channel, ts, m))
}

func (a *App) postReply(channel, ts string, m Message) func(context.Context) error {
	return func(ctx context.Context) error {
		_, _, err := a.web.PostMessageContext(ctx, channel, append(m.MsgOptions(), slack.MsgOptionTS(a.threadTS(channel, ts)))...)
		return err
	}
}
