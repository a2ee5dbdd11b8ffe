package slackapp

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/testenv/slackemu"
)

// The workspace every test uses: two channels (one per namespace, default
// is the first), an approver (alice), a non-approver (bob), and carol who
// approves through the user group S0APPROVE1.
const (
	testCluster = "test-cluster"
	chDefault   = "C0ALERTS01"
	chTeamB     = "C0TEAMB001"
	nsDefault   = "default"
	nsTeamB     = "team-b"
	alice       = "U0ALICE001"
	bob         = "U0BOB00001"
	carol       = "U0CAROL001"
	approverGrp = "S0APPROVE1"

	brokenImage = "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1"
	fixedImage  = "public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1"
)

// testLogger writes to the test log only with -v, so failures stay readable.
func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() && os.Getenv("PULLFIX_TEST_LOGS") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// runbookIncident is the seed runbook's incident: ui-new cannot pull
// "retailing-store-sample-ui", and "retail-store-sample-ui" exists.
func runbookIncident(id, ns string) Incident {
	d := &diagnose.Diagnosis{
		Target: diagnose.Target{Cluster: testCluster, Namespace: ns, Kind: "Deployment", Name: "ui-new", Container: "ui",
			Image: brokenImage, Reason: "ErrImagePull",
			Message: `failed to pull and unpack image "` + brokenImage + `": failed to resolve reference "` + brokenImage + `": ` + brokenImage + `: not found`},
		Cause:   diagnose.RepoNotFound,
		Summary: "The repository aws-containers/retailing-store-sample-ui does not exist on public.ecr.aws.",
		Evidence: []diagnose.Evidence{
			{Source: diagnose.FromKubelet, Text: "failed to resolve reference: not found"},
			{Source: diagnose.FromProbe, Text: "HEAD public.ecr.aws/v2/aws-containers/retailing-store-sample-ui/manifests/1.2.1 → 404 NAME_UNKNOWN"},
		},
		Remedy: "Correct the repository name.",
		Candidates: []diagnose.Candidate{{ID: "c1", Image: fixedImage, Kind: diagnose.CandidateRepository,
			Digest: "sha256:" + strings.Repeat("ab", 32), Reason: "closest existing repository (one letter group differs)"}},
		Confidence: diagnose.ConfidenceHigh,
	}
	return Incident{ID: id, Namespace: ns, Kind: "Deployment", Name: "ui-new", Container: "ui", Image: brokenImage,
		Pods: []string{"ui-new-7d9f8-abcde"}, State: StateOpen, Diagnosis: d}
}

// memIncidents is the bot's incident state, in memory (the watcher's, in
// production).
type memIncidents struct {
	mu        sync.Mutex
	m         map[string]*Incident
	fixing    map[string]string
	dismissed map[string]string
	snoozed   map[string]time.Time
	rechecks  int
}

func newMemIncidents(incs ...Incident) *memIncidents {
	s := &memIncidents{m: map[string]*Incident{}, fixing: map[string]string{}, dismissed: map[string]string{}, snoozed: map[string]time.Time{}}
	for _, inc := range incs {
		s.put(inc)
	}
	return s
}

func (s *memIncidents) put(inc Incident) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := inc
	s.m[inc.ID] = &c
}

func (s *memIncidents) setRef(id, ref string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[id].Ref = ref
}

func (s *memIncidents) Incident(_ context.Context, id string) (Incident, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inc, ok := s.m[id]
	if !ok {
		return Incident{}, fmt.Errorf("incident %q: %w", id, ErrUnknownIncident)
	}
	c := *inc
	c.FixingBy = s.fixing[id]
	return c, nil
}

func (s *memIncidents) List(_ context.Context, ns string) ([]Incident, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Incident
	for _, inc := range s.m {
		if ns == "" || inc.Namespace == ns {
			out = append(out, *inc)
		}
	}
	return out, nil
}

func (s *memIncidents) MarkFixing(_ context.Context, id string, fix PendingFix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if by, ok := s.fixing[id]; ok {
		return &FixInProgressError{By: by}
	}
	s.fixing[id] = fix.By
	return nil
}

func (s *memIncidents) ClearFixing(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.fixing, id)
	return nil
}

func (s *memIncidents) Dismiss(_ context.Context, id, user string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dismissed[id] = user
	return nil
}

func (s *memIncidents) Snooze(_ context.Context, id, _ string, until time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.snoozed[id] = until
	return nil
}

func (s *memIncidents) Recheck(_ context.Context, id string) (Incident, error) {
	s.mu.Lock()
	s.rechecks++
	s.mu.Unlock()
	return s.Incident(context.Background(), id)
}

// fixCall is one call of the Fixer.
type fixCall struct {
	Method, Incident, Arg, Approver string
}

// memFixer resolves the candidate in the bot's own state (never from the
// click) and reports a rollout that becomes ready in two steps.
type memFixer struct {
	incs    *memIncidents
	gate    chan struct{} // when set, SetImage waits for it to close
	started chan fixCall  // when set, SetImage reports each call here

	mu     sync.Mutex
	calls  []fixCall
	refuse string // when set, SetImage refuses with this reason
}

func (f *memFixer) record(c fixCall) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}

func (f *memFixer) Calls() []fixCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fixCall(nil), f.calls...)
}

func (f *memFixer) SetImage(ctx context.Context, incidentID, candidateID, approver string) (FixResult, error) {
	f.record(fixCall{"SetImage", incidentID, candidateID, approver})
	if f.started != nil {
		f.started <- fixCall{"SetImage", incidentID, candidateID, approver}
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return FixResult{}, ctx.Err()
		}
	}
	if f.refuse != "" {
		return FixResult{}, &FixRefusedError{Reason: f.refuse}
	}
	inc, err := f.incs.Incident(ctx, incidentID)
	if err != nil {
		return FixResult{}, err
	}
	c, ok := inc.Candidate(candidateID)
	if !ok {
		return FixResult{}, &FixRefusedError{Reason: "no such candidate"}
	}
	return FixResult{From: inc.Image, To: c.Image}, nil
}

func (f *memFixer) AddPullSecret(_ context.Context, incidentID, secret, approver string) (FixResult, error) {
	f.record(fixCall{"AddPullSecret", incidentID, secret, approver})
	return FixResult{To: secret}, nil
}

func (f *memFixer) FollowRollout(_ context.Context, incidentID string, progress func(RolloutProgress)) (RolloutResult, error) {
	f.record(fixCall{Method: "FollowRollout", Incident: incidentID})
	progress(RolloutProgress{Ready: 0, Desired: 1})
	progress(RolloutProgress{Ready: 1, Desired: 1})
	return RolloutResult{Ready: true, ReadyPods: 1, Desired: 1, Image: fixedImage}, nil
}

// memOnDemand answers /pullfix NAME from a fixed table.
type memOnDemand struct {
	incs *memIncidents
	mu   sync.Mutex
	n    int
}

func (o *memOnDemand) Calls() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n
}

func (o *memOnDemand) Diagnose(ctx context.Context, ns, kind, name string) (Incident, bool, error) {
	o.mu.Lock()
	o.n++
	o.mu.Unlock()
	switch name {
	case "ui-new":
		if ns == "" {
			ns = nsDefault
		}
		inc, err := o.incs.Incident(ctx, "inc-"+ns)
		return inc, false, err
	case "healthy":
		return Incident{Namespace: ns, Kind: "Deployment", Name: name, Image: fixedImage, Pods: []string{"p1"}}, true, nil
	case "twice":
		return Incident{}, false, fmt.Errorf("deployment %q exists in namespaces default and team-b; add -n NAMESPACE", name)
	}
	return Incident{}, false, fmt.Errorf("no deployment %q in %s", name, map[bool]string{true: "the watched namespaces", false: "namespace " + ns}[ns == ""])
}

// env is one emulator, one App and its in-memory collaborators.
type env struct {
	t      *testing.T
	ctx    context.Context
	emu    *slackemu.Emulator
	api    *slack.Client
	app    *App
	incs   *memIncidents
	fixer  *memFixer
	ondem  *memOnDemand
	cancel context.CancelFunc
	runErr chan error
	url    string // HTTP mode endpoint
}

type envOpts struct {
	http    bool
	emu     []slackemu.Option
	app     []Option
	queue   []QueueOption
	noStart bool
	// incidents wraps the in-memory state the App is given (resume_test.go).
	incidents func(*memIncidents) Incidents
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	e := &env{t: t, ctx: ctx}
	e.incs = newMemIncidents(runbookIncident("inc-default", nsDefault), runbookIncident("inc-team-b", nsTeamB))
	e.fixer = &memFixer{incs: e.incs}
	e.ondem = &memOnDemand{incs: e.incs}

	var appPtr atomic.Pointer[App]
	emuOpts := o.emu
	if o.http {
		// The URL must exist before the emulator; the App is bound below.
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if a := appPtr.Load(); a != nil {
				a.Handler().ServeHTTP(w, r)
				return
			}
			http.Error(w, "not ready", http.StatusServiceUnavailable)
		}))
		t.Cleanup(srv.Close)
		e.url = srv.URL + "/slack/events"
		emuOpts = append(emuOpts, slackemu.WithRequestURLs(slackemu.RequestURLs{SlashCommands: e.url, Interactivity: e.url}))
	}
	emu, err := slackemu.New(append([]slackemu.Option{slackemu.WithLogger(testLogger(t))}, emuOpts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	emu.AddChannel(chDefault, "pullfix-alerts")
	emu.AddChannel(chTeamB, "team-b-alerts")
	emu.AddUser(alice, "alice")
	emu.AddUser(bob, "bob")
	emu.AddUser(carol, "carol")
	emu.AddUserGroup(approverGrp, "sre-approvers", carol)
	e.emu = emu
	e.api = slack.New(emu.BotToken(), slack.OptionAPIURL(emu.APIURL()), slack.OptionAppLevelToken(emu.AppToken()))

	policy, err := ParseApprovers(alice + "," + approverGrp)
	if err != nil {
		t.Fatal(err)
	}
	approvers := NewApprovers(policy, SlackGroupMembers{API: e.api})
	cfg := Config{Cluster: testCluster, DefaultChannel: chDefault, Channels: map[string]string{nsTeamB: chTeamB}}
	if o.http {
		cfg.SigningSecret = emu.SigningSecret()
	}
	qopts := append([]QueueOption{WithPostInterval(50 * time.Millisecond), WithBackoff(10*time.Millisecond, 200*time.Millisecond)}, o.queue...)
	opts := append([]Option{WithLogger(testLogger(t)), WithQueueOptions(qopts...)}, o.app...)
	var incs Incidents = e.incs
	if o.incidents != nil {
		incs = o.incidents(e.incs)
	}
	e.app = New(e.api, cfg, Deps{Incidents: incs, Fixer: e.fixer, OnDemand: e.ondem, Approvers: approvers}, opts...)
	t.Cleanup(e.app.Close)
	appPtr.Store(e.app)

	if !o.http && !o.noStart {
		e.startSocket()
	}
	return e
}

// startSocket runs the App's Socket Mode loop until the test ends and
// waits for its connection.
func (e *env) startSocket() {
	e.t.Helper()
	rctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.runErr = make(chan error, 1)
	go func() { e.runErr <- e.app.Run(rctx) }()
	e.t.Cleanup(func() {
		cancel()
		select {
		case <-e.runErr:
		case <-time.After(10 * time.Second):
			e.t.Error("Run did not return after its context ended")
		}
	})
	e.waitFor("one socket connection", func() bool { return e.emu.OpenConnections() == 1 })
}

func (e *env) waitFor(what string, pred func() bool) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, 20*time.Second)
	defer cancel()
	if err := e.emu.WaitFor(ctx, pred); err != nil {
		e.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// open posts the incident's root message the way the watcher does and
// stores the reference.
func (e *env) open(id string) (channel, ts string) {
	e.t.Helper()
	inc, err := e.incs.Incident(e.ctx, id)
	if err != nil {
		e.t.Fatal(err)
	}
	ref, err := e.app.Opened(e.ctx, inc)
	if err != nil {
		e.t.Fatal(err)
	}
	e.incs.setRef(id, ref)
	channel, ts, ok := ParseRef(ref)
	if !ok {
		e.t.Fatalf("bad ref %q", ref)
	}
	return channel, ts
}

func (e *env) click(user, channel, ts, actionID string, value string) (slackemu.Ack, error) {
	return e.emu.Click(e.ctx, slackemu.Click{UserID: user, ChannelID: channel, MessageTS: ts, ActionID: actionID, Value: value})
}

// ephemeralWith waits for an ephemeral message to user containing want.
func (e *env) ephemeralWith(user, want string) slackemu.Ephemeral {
	e.t.Helper()
	var got slackemu.Ephemeral
	e.waitFor(fmt.Sprintf("ephemeral to %s containing %q", user, want), func() bool {
		for _, m := range e.emu.Ephemerals(user) {
			if strings.Contains(m.Text, want) || strings.Contains(string(m.Blocks), want) {
				got = m
				return true
			}
		}
		return false
	})
	return got
}

// replies returns the thread replies' texts after the details reply
// (which TestOpenedPostsDetails checks).
func (e *env) replies(channel, ts string) []string {
	var out []string
	for _, m := range e.emu.Thread(channel, ts) {
		if m.TS != ts && !strings.HasPrefix(m.Text, "Details: ") {
			out = append(out, m.Text)
		}
	}
	return out
}

func anyContains(list []string, want string) bool {
	for _, s := range list {
		if strings.Contains(s, want) {
			return true
		}
	}
	return false
}

// TestOpenedPostsDetails: the root message stays short and the thread's
// first reply carries the details; a refined diagnosis edits that reply
// instead of adding a second one.
func TestOpenedPostsDetails(t *testing.T) {
	e := newEnv(t, envOpts{noStart: true})
	ch, ts := e.open("inc-default")
	var th []slackemu.Message
	for _, m := range e.emu.Thread(ch, ts) {
		if m.TS != ts {
			th = append(th, m)
		}
	}
	if len(th) != 1 || !strings.HasPrefix(th[0].Text, "Details: ") {
		t.Fatalf("thread after Opened = %+v, want one details reply", th)
	}
	for _, want := range []string{"Kubelet said", "What to do", "How the fix was found"} {
		if !strings.Contains(string(th[0].Blocks), want) {
			t.Errorf("details reply lacks %q: %s", want, th[0].Blocks)
		}
	}
	root, _ := e.emu.Message(ch, ts)
	if strings.Contains(string(root.Blocks), "Kubelet said:*\\n```") {
		t.Errorf("root message still carries the kubelet's whole message: %s", root.Blocks)
	}
	inc, _ := e.incs.Incident(e.ctx, "inc-default")
	if err := e.app.Refresh(e.ctx, inc); err != nil {
		t.Fatal(err)
	}
	var after []slackemu.Message
	for _, m := range e.emu.Thread(ch, ts) {
		if m.TS != ts {
			after = append(after, m)
		}
	}
	if len(after) != 1 || after[0].TS != th[0].TS || len(after[0].Edits) != 1 {
		t.Errorf("thread after Refresh = %d replies (first edited %d times), want the one details reply, edited once", len(after), len(after[0].Edits))
	}
}
