package watch

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/pullfix/pullfix/internal/watch/fix"
	"github.com/pullfix/pullfix/internal/watch/incident"
)

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
		var r incident.Record
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

// resumer is a Notifier that answers a fix left under way (FixResumer) as
// the Slack app does: an applied one is followed (FollowFix), one not
// applied is cleared (ClearFixing).
type resumer struct {
	*recorder
	started chan struct{} // closed once w is set (Run may lead before start returns)
	w       *Watcher
	mu      sync.Mutex
	resumed []Incident
	applied []bool
}

func (r *resumer) ResumeFix(ctx context.Context, inc Incident, applied bool) {
	r.mu.Lock()
	r.resumed, r.applied = append(r.resumed, inc), append(r.applied, applied)
	r.mu.Unlock()
	select {
	case <-r.started:
	case <-ctx.Done():
		return
	}
	if applied {
		_, _, _ = r.w.FollowFix(ctx, inc.ID, nil)
		return
	}
	_ = r.w.ClearFixing(ctx, inc.ID)
}

func (r *resumer) calls() ([]Incident, []bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Incident(nil), r.resumed...), append([]bool(nil), r.applied...)
}

// TestResumeFixAfterRestart: an approved fix recorded with the fixing mark
// (MarkFixingFor) survives the watcher; the next leader reads the workload
// and hands the fix to the Notifier once — not applied: cleared, fixable
// again; applied by pullfix's patch with its audit Event missing (a crash
// between the patch and the Event): the Event is recorded, the rollout
// followed, and the watcher posts no "resolved" of its own.
func TestResumeFixAfterRestart(t *testing.T) {
	for _, applied := range []bool{false, true} {
		t.Run(map[bool]string{false: "not applied", true: "applied"}[applied], func(t *testing.T) {
			e := newCluster(t)
			ctx := t.Context()
			state := WithStateConfigMap(e.ns, "state")
			first := e.start(e.rec, state)
			e.deployment("ui-new", badImage, 1)
			var inc Incident
			poll(t, 60*time.Second, "the incident notified with a candidate", func(context.Context) (bool, error) {
				for _, o := range e.rec.openedFor("ui-new") {
					inc, _ = first.w.Incident(o.ID)
					return inc.NotifyRef != "" && inc.Diagnosis != nil && len(inc.Diagnosis.Candidates) > 0, nil
				}
				return false, nil
			})
			want := FixIntent{Action: "set_image", Arg: inc.Diagnosis.Candidates[0].ID, Target: goodImage, By: "U0ALICE", Approver: approver}
			if err := first.w.MarkFixingFor(ctx, inc.ID, want); err != nil {
				t.Fatal(err)
			}
			if err := first.w.MarkFixingFor(ctx, inc.ID, FixIntent{Action: "set_image", Target: goodImage, By: "U0BOB"}); err == nil {
				t.Fatal("a second click while the fix is recorded was not refused")
			}
			if err := first.stop(); err != nil {
				t.Fatal(err)
			}
			if applied {
				// pullfix's patch landed; the process died before its Event.
				cause := "pullfix: image " + badImage + " → " + goodImage + ", approved by " + approver
				patch, _ := json.Marshal(map[string]any{
					"metadata": map[string]any{"annotations": map[string]string{fix.ChangeCauseAnnotation: cause}},
					"spec":     map[string]any{"template": map[string]any{"spec": map[string]any{"containers": []map[string]string{{"name": "ui", "image": goodImage}}}}},
				})
				if _, err := e.cs.AppsV1().Deployments(e.ns).Patch(ctx, "ui-new", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			gen := e.getDeployment("ui-new").Generation
			r := &resumer{recorder: e.rec, started: make(chan struct{})}
			second := e.start(r, state, WithPatcher(newPatcher(t, botClient(t, e), fix.WithRolloutDeadline(2*time.Minute))))
			r.w = second.w
			close(r.started)
			poll(t, 60*time.Second, "the fix resumed", func(context.Context) (bool, error) {
				got, _ := r.calls()
				return len(got) > 0, nil
			})
			got, gotApplied := r.calls()
			if f := got[0].Fix; f != nil && !f.At.IsZero() {
				want.At = f.At // stamped by MarkFixingFor
			}
			if got[0].Fix == nil || *got[0].Fix != want || gotApplied[0] != applied {
				t.Fatalf("resumed %+v applied %v; want %+v applied %v", got[0].Fix, gotApplied[0], want, applied)
			}
			if g := e.getDeployment("ui-new").Generation; g != gen {
				t.Errorf("the resume patched the workload: generation %d → %d", gen, g)
			}
			if !applied {
				poll(t, 30*time.Second, "the fix cleared", func(context.Context) (bool, error) {
					cur, _ := second.w.Incident(inc.ID)
					return cur.State == StateNotified && cur.Fix == nil, nil
				})
			} else {
				poll(t, 120*time.Second, "the incident closed", func(context.Context) (bool, error) {
					cur, _ := second.w.Incident(inc.ID)
					return cur.State == StateResolved, nil
				})
				if _, resolved := e.rec.snapshot(); len(resolved) != 0 {
					t.Errorf("the watcher posted resolved %+v after the resumed fix reported it", resolved)
				}
				evs, err := e.cs.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{})
				if err != nil {
					t.Fatal(err)
				}
				n := 0
				for _, ev := range evs.Items {
					if ev.Reason == fix.ReasonImageUpdated && strings.Contains(ev.Message, goodImage) && strings.Contains(ev.Message, approver) {
						n++
					}
				}
				if n != 1 {
					t.Errorf("%d %s Events name the fix, want exactly 1 (recorded on resume)", n, fix.ReasonImageUpdated)
				}
			}
			if got, _ := r.calls(); len(got) != 1 {
				t.Errorf("the fix was resumed %d times, want once", len(got))
			}
		})
	}
}
