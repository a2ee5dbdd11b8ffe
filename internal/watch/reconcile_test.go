package watch

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestIntentsSurviveTheStateRecord: the post id and the approved fix —
// the intents a restart reconciles — are written into the state record and
// read back from it, and a record without them (written by an earlier
// version) reads back with none.
func TestIntentsSurviveTheStateRecord(t *testing.T) {
	r := testRecord(1, StateFixing, time.Now().Truncate(time.Second))
	inc := r.incident()
	inc.Posting = "p0st1d"
	inc.Fix = &FixIntent{Action: "set_image", Arg: "c1", Target: "registry.example.com/team/app-0001:1.1", By: "U1", At: time.Now().Truncate(time.Second).UTC()}
	b, err := json.Marshal(recordOf(inc))
	if err != nil {
		t.Fatal(err)
	}
	var back record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	got := back.incident()
	if got.Posting != inc.Posting || got.Fix == nil || *got.Fix != *inc.Fix {
		t.Errorf("read back posting %q fix %+v, want %q %+v", got.Posting, got.Fix, inc.Posting, inc.Fix)
	}
	old, _ := json.Marshal(testRecord(2, StateNotified, time.Now()))
	var o record
	if err := json.Unmarshal(old, &o); err != nil {
		t.Fatal(err)
	}
	if inc := o.incident(); inc.Posting != "" || inc.Fix != nil {
		t.Errorf("an older record reads back with intents: %q %+v", inc.Posting, inc.Fix)
	}
	if !(FixIntent{Action: "add_secret"}).AddsSecret() || (FixIntent{Action: "set_image"}).AddsSecret() {
		t.Error("AddsSecret")
	}
}

// TestUnpostedIntentAgesOut: an open record — a post intent whose
// incident's pods went away before the post was confirmed — is dropped
// after the TTL like a closed one, unless its incident is active.
func TestUnpostedIntentAgesOut(t *testing.T) {
	s := newStateStore(nil, "ns", "state", slog.Default())
	now := time.Now()
	old := testRecord(1, StateOpen, now.Add(-2*DefaultStateTTL))
	old.Posting = "p1"
	active := testRecord(2, StateOpen, now.Add(-2*DefaultStateTTL))
	recent := testRecord(3, StateOpen, now.Add(-time.Minute))
	for _, r := range []record{old, active, recent} {
		s.put(r)
	}
	s.mu.Lock()
	s.pruneLocked(map[string]bool{active.ID: true})
	s.mu.Unlock()
	if _, ok := s.get(old.ID); ok {
		t.Error("an old open record with no active incident was kept")
	}
	for _, r := range []record{active, recent} {
		if _, ok := s.get(r.ID); !ok {
			t.Errorf("record %s dropped", r.Key.Name)
		}
	}
}

// channelNotifier is a Notifier with a channel of its own (PostFinder):
// each post stores the post id it carried, and crashAfterPost makes the
// next post land and then never answer, as a bot killed between its post
// and its state write.
type channelNotifier struct {
	*recorder
	e              *env
	mu             sync.Mutex
	posts          map[string]string // ref → post id
	intentFirst    []bool            // per post: the post id was in the state ConfigMap before it
	crashAfterPost bool
	adopted        []string
	restarted      bool // FindPosted answers only for the watcher started after the crash
}

func (n *channelNotifier) Opened(ctx context.Context, inc Incident) (string, error) {
	durable := false
	if cm, err := n.e.cs.CoreV1().ConfigMaps(n.e.ns).Get(ctx, "state", metav1.GetOptions{}); err == nil {
		var r record
		durable = json.Unmarshal([]byte(cm.Data[inc.ID]), &r) == nil && inc.Posting != "" && r.Posting == inc.Posting
	}
	ref, _ := n.recorder.Opened(ctx, inc)
	n.mu.Lock()
	n.posts[ref], n.intentFirst = inc.Posting, append(n.intentFirst, durable)
	crash := n.crashAfterPost
	n.crashAfterPost = false
	n.mu.Unlock()
	if crash {
		<-ctx.Done()
		return "", ctx.Err()
	}
	return ref, nil
}

func (n *channelNotifier) FindPosted(_ context.Context, inc Incident) (string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.restarted {
		return "", errors.New("the crashed process reads nothing more")
	}
	for ref, id := range n.posts {
		if id == inc.Posting {
			return ref, nil
		}
	}
	return "", nil
}

func (n *channelNotifier) Adopted(_ context.Context, inc Incident) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.adopted = append(n.adopted, inc.NotifyRef)
	return nil
}

// TestPostIntentBeforePost: every post's id is in the state ConfigMap
// before the post is made; a watcher stopped between a post and its state
// write leaves the id, and the next one finds that message and adopts it
// instead of posting again.
func TestPostIntentBeforePost(t *testing.T) {
	e := newCluster(t)
	n := &channelNotifier{recorder: e.rec, e: e, posts: map[string]string{}, crashAfterPost: true}
	first := e.start(n, WithStateConfigMap(e.ns, "state"))
	e.deployment("ui-new", badImage, 1)
	poll(t, 60*time.Second, "the post", func(context.Context) (bool, error) {
		opened, _ := e.rec.snapshot()
		return len(opened) == 1, nil
	})
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	n.restarted = true
	n.mu.Unlock()
	second := e.start(n, WithStateConfigMap(e.ns, "state"))
	poll(t, 60*time.Second, "the message adopted after the restart", func(context.Context) (bool, error) {
		inc := activeIncident(t, second.w, "ui-new", 1)
		return inc.State == StateNotified && inc.NotifyRef == "ref-1", nil
	})
	n.mu.Lock()
	defer n.mu.Unlock()
	if opened, _ := e.rec.snapshot(); len(opened) != 1 || len(n.adopted) != 1 || n.adopted[0] != "ref-1" {
		t.Errorf("%d posts, adopted %q; want 1 post, adopted ref-1", len(opened), n.adopted)
	}
	if len(n.intentFirst) != 1 || !n.intentFirst[0] {
		t.Errorf("the post id was not durable before the post: %v", n.intentFirst)
	}
	if inc := activeIncident(t, second.w, "ui-new", 1); inc.Posting != "" {
		t.Errorf("the post id %q stayed after the reference was recorded", inc.Posting)
	}
}
