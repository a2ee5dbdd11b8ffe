package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/pullfix/pullfix/internal/slackapp"
	"github.com/pullfix/pullfix/internal/testenv/proc"
	"github.com/pullfix/pullfix/internal/testenv/slackemu"
	"github.com/pullfix/pullfix/internal/watch"
	"github.com/pullfix/pullfix/internal/watch/fix"
)

// crashPoint is one place in the runbook's fix where the bot is killed.
type crashPoint struct {
	name string
	// replicas: 1 (the killed bot is started again, as a Deployment's
	// restarted pod) or 2 (the other replica takes the Lease over).
	replicas int
	// arm sets the trap before the bot starts; its channel closes when the
	// bot stands exactly at the point.
	arm func(k *killWorld) <-chan struct{}
	// atPost: the point is in the first post, before any click.
	atPost bool
	// ackFails: the bot dies before acknowledging the click, so Slack
	// shows the clicker it failed.
	ackFails bool
	// toldAgain: the click was recorded but not carried out; after the
	// restart the approver is told so and clicks again.
	toldAgain bool
	// clickAgain: the click must be made again (not carried out).
	clickAgain bool
}

// killWorld is one kill case's world: the runbook's world, the proxy the
// bots reach the API server through, and the bots.
type killWorld struct {
	t     *testing.T
	e     *e2e
	proxy *apiProxy
	fleet *botFleet
}

func newKillWorld(t *testing.T) *killWorld {
	t.Helper()
	e, _ := runbookWorld(t, "", false, false)
	kc, err := clientcmd.LoadFromFile(e.env["PULLFIX_KUBECONFIG"])
	if err != nil {
		t.Fatal(err)
	}
	cl, au := kc.Clusters["e2e"], kc.AuthInfos["pullfix"]
	if cl == nil || au == nil {
		t.Fatal("the test kubeconfig has no e2e cluster or pullfix user")
	}
	k := &killWorld{t: t, e: e, proxy: newAPIProxy(t, cl.Server, cl.CertificateAuthorityData)}
	env := map[string]string{}
	for key, v := range e.env {
		env[key] = v
	}
	env["PULLFIX_KUBECONFIG"] = k.proxy.kubeconfig(t, au.Token, e.system)
	k.fleet = newBotFleet(t, e, env)
	return k
}

// deploymentPath is the API path of the test's ui-new.
func (k *killWorld) deploymentPath() string {
	return "/apis/apps/v1/namespaces/" + k.e.ns + "/deployments/ui-new"
}

// stateWriteWith matches the bot's write of its state ConfigMap carrying
// marker (JSON or protobuf: the record's JSON is inside either way).
func (k *killWorld) stateWriteWith(marker string) func(*apiProxy, *http.Request, []byte) bool {
	path := "/api/v1/namespaces/" + k.e.system + "/configmaps/" + k.e.env["PULLFIX_STATE_CONFIGMAP"]
	return func(_ *apiProxy, r *http.Request, body []byte) bool {
		return r.Method == http.MethodPut && r.URL.Path == path && bytes.Contains(body, []byte(marker))
	}
}

// crashPoints are the steps of a fix, each a case of TestKillAtEveryStepOfAFix.
func crashPoints() []crashPoint {
	rootPost := func(k *killWorld) <-chan struct{} {
		// Slack stores the root message; the bot dies before hearing its
		// ts, so before the state write that would record it.
		return k.e.emu.HoldCall("chat.postMessage", true, func(p url.Values) bool {
			return p.Get("thread_ts") == "" && strings.Contains(p.Get("metadata"), slackapp.IncidentEventType)
		}).Reached()
	}
	afterPatch := func(k *killWorld) <-chan struct{} {
		return k.proxy.hold("the patch (applied, unanswered)", true, func(_ *apiProxy, r *http.Request, _ []byte) bool {
			return r.Method == http.MethodPatch && r.URL.Path == k.deploymentPath() && r.URL.Query().Get("dryRun") == ""
		}).reached
	}
	return []crashPoint{
		{name: "root post, before its state write", replicas: 1, atPost: true, arm: rootPost},
		{name: "root post, before its state write, other replica", replicas: 2, atPost: true, arm: rootPost},
		{name: "click received, not yet recorded", replicas: 1, ackFails: true, clickAgain: true, arm: func(k *killWorld) <-chan struct{} {
			return k.proxy.hold("the fixing state write (never sent)", false, func(p *apiProxy, r *http.Request, b []byte) bool {
				return k.stateWriteWith("fixing")(p, r, b)
			}).reached
		}},
		{name: "click received and recorded", replicas: 1, ackFails: true, toldAgain: true, clickAgain: true, arm: func(k *killWorld) <-chan struct{} {
			return k.proxy.hold("the fixing state write (written, unanswered)", true, func(p *apiProxy, r *http.Request, b []byte) bool {
				return k.stateWriteWith("fixing")(p, r, b)
			}).reached
		}},
		{name: "after the dry run", replicas: 1, toldAgain: true, clickAgain: true, arm: func(k *killWorld) <-chan struct{} {
			return k.proxy.hold("the dry run (passed, unanswered)", true, func(_ *apiProxy, r *http.Request, _ []byte) bool {
				return r.Method == http.MethodPatch && r.URL.Path == k.deploymentPath() && r.URL.Query().Get("dryRun") == "All"
			}).reached
		}},
		{name: "after the patch", replicas: 1, arm: afterPatch},
		{name: "after the patch, other replica", replicas: 2, arm: afterPatch},
		{name: "while following the rollout", replicas: 1, arm: func(k *killWorld) <-chan struct{} {
			// The watch of the one patched Deployment, once it is patched.
			return k.proxy.hold("the rollout's watch", false, func(p *apiProxy, r *http.Request, _ []byte) bool {
				q := r.URL.Query()
				return r.Method == http.MethodGet && r.URL.Path == "/apis/apps/v1/namespaces/"+k.e.ns+"/deployments" &&
					q.Get("watch") == "true" && strings.Contains(q.Get("fieldSelector"), "metadata.name=ui-new") &&
					p.saw(func(s string) bool {
						return strings.HasPrefix(s, "PATCH "+k.deploymentPath()) && !strings.Contains(s, "dryRun")
					})
			}).reached
		}},
		{name: "between the patch and the message edit", replicas: 1, arm: func(k *killWorld) <-chan struct{} {
			return k.e.emu.HoldCall("chat.postMessage", false, func(p url.Values) bool {
				return p.Get("thread_ts") != "" && strings.HasPrefix(p.Get("text"), "Patched ")
			}).Reached()
		}},
	}
}

// TestKillAtEveryStepOfAFix runs the runbook's fix with the real bot binary
// and SIGKILLs it at each step in turn (crashPoints), then starts it again
// (or lets the second replica take over). Each time: the Deployment is
// patched at most once (exactly once in the end), the channel holds exactly
// one root message for the incident, edited to 1/1 Running, a click that
// was not carried out is answered as such (Slack's own failure for a click
// never acknowledged; the bot's words for one recorded but not applied),
// and the change-cause annotation and the audit Event appear once.
func TestKillAtEveryStepOfAFix(t *testing.T) {
	for _, c := range crashPoints() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			killAt(t, c)
		})
	}
}

func killAt(t *testing.T, c crashPoint) {
	k := newKillWorld(t)
	e := k.e
	at := c.arm(k)

	var replicas []*proc.Process
	for range c.replicas {
		replicas = append(replicas, k.fleet.start())
	}
	k.fleet.waitConnected(0, "a replica to lead and hold Slack")
	leader := k.fleet.leader(replicas...)
	dep := e.createDeployment(t, "ui-new", badImage)

	// killThere waits for the bot to reach the point, kills it, and brings
	// a leader back (the same Deployment's restarted pod, or the other
	// replica taking the Lease over).
	killThere := func() {
		t.Helper()
		select {
		case <-at:
		case <-time.After(90 * time.Second):
			t.Fatalf("the bot never reached %q", c.name)
		}
		before := len(e.emu.Connections())
		killed := time.Now()
		if err := leader.Kill(); err != nil {
			t.Fatal(err)
		}
		if c.replicas == 1 {
			leader = k.fleet.start()
		}
		k.fleet.waitConnected(before, "a new leader after the kill")
		t.Logf("killed at %q; a leader holds Slack again %s later", c.name, time.Since(killed).Round(time.Millisecond))
	}

	var root slackemu.Message
	if c.atPost {
		killThere()
		root = e.waitRoot(t)
		// The found message was brought up to date and given its details.
		waitSlack(t, e.emu, 30*time.Second, "the details reply under the adopted root", func() bool {
			return slices.ContainsFunc(e.emu.Thread(channelID, root.TS), func(m slackemu.Message) bool { return strings.HasPrefix(m.Text, "Details: ") })
		})
		e.quiet(t, 2*time.Second)
		root = e.root(t, root.TS)
		if !bytes.Contains(root.Metadata, []byte(slackapp.IncidentEventType)) {
			t.Errorf("the root message carries no incident metadata: %s", root.Metadata)
		}
		e.click(t, approverID, root, parseBlocks(t, root.Blocks).button(t, slackapp.ActionIDSetImage, "Set image to "+goodImage))
	} else {
		root = e.waitRoot(t)
		// Settled (the post recorded), so the click's state write is the
		// one under way when the bot is killed.
		e.waitState(t, slackapp.Ref(channelID, root.TS), watch.StateNotified)
		set := parseBlocks(t, root.Blocks).button(t, slackapp.ActionIDSetImage, "Set image to "+goodImage)
		clicked := make(chan error, 1)
		go func() {
			_, err := e.emu.Click(context.Background(), slackemu.Click{UserID: approverID, ChannelID: channelID, MessageTS: root.TS, ActionID: set.ActionID, BlockID: set.BlockID})
			clicked <- err
		}()
		killThere()
		err := <-clicked
		switch {
		case c.ackFails && err == nil:
			t.Errorf("the click was acknowledged although the bot died before recording it")
		case c.ackFails:
			t.Logf("Slack showed the clicker: %v", err)
		case err != nil:
			t.Errorf("the click: %v", err)
		}
		if c.toldAgain {
			waitSlack(t, e.emu, 60*time.Second, "the approver to be told the click was not carried out", func() bool {
				return slices.ContainsFunc(e.emu.Ephemerals(approverID), func(m slackemu.Ephemeral) bool { return strings.Contains(m.Text, "was not carried out") })
			})
			waitSlack(t, e.emu, 30*time.Second, "the thread to say the fix was not applied", func() bool {
				return slices.ContainsFunc(e.replies(root.TS), func(m slackemu.Message) bool { return strings.Contains(m.Text, "was not applied") })
			})
		}
		if c.clickAgain {
			if g := e.deployment(t, "ui-new").Generation; g != dep.Generation {
				t.Errorf("a click that was not carried out patched the Deployment: generation %d → %d", dep.Generation, g)
			}
			var again button
			waitSlack(t, e.emu, 30*time.Second, "the root message to offer the fix again", func() bool {
				m, _ := e.emu.Message(channelID, root.TS)
				var bs blocks
				if json.Unmarshal(m.Blocks, &bs) != nil {
					return false
				}
				for _, b := range bs.buttons() {
					if b.ActionID == slackapp.ActionIDSetImage && b.Label == "Set image to "+goodImage {
						again = b
						return true
					}
				}
				return false
			})
			e.click(t, approverID, e.root(t, root.TS), again)
		}
	}

	// The end, whatever the point: fixed once, said once.
	e.waitReady(t, "ui-new", goodImage)
	waitSlack(t, e.emu, 90*time.Second, "the root message to say ui-new 1/1 Running", func() bool {
		m, _ := e.emu.Message(channelID, root.TS)
		var bs blocks
		return json.Unmarshal(m.Blocks, &bs) == nil && bs.header() == "✅ ui-new 1/1 Running on retail-store-sample-ui:1.2.1"
	})
	e.waitState(t, slackapp.Ref(channelID, root.TS), watch.StateResolved)
	e.quiet(t, 2*time.Second)
	if n := len(e.emu.Messages(channelID)); n != 1 {
		t.Errorf("%d root messages, want exactly 1: %q", n, texts(e.emu.Messages(channelID)))
	}
	d := e.deployment(t, "ui-new")
	if d.Generation != dep.Generation+1 {
		t.Errorf("generation %d → %d, want exactly one patch", dep.Generation, d.Generation)
	}
	cause := "pullfix: image " + badImage + " → " + goodImage + ", approved by <@" + approverID + "> (Slack)"
	if got := d.Annotations[fix.ChangeCauseAnnotation]; got != cause {
		t.Errorf("change-cause %q, want %q", got, cause)
	}
	var audit []string
	poll(t, 30*time.Second, "the audit Event", func(ctx context.Context) (bool, error) {
		audit = audit[:0]
		for _, ev := range e.events(t, dep.UID) {
			if ev.Reason == fix.ReasonImageUpdated {
				for range max(ev.Count, 1) {
					audit = append(audit, ev.Message)
				}
			}
		}
		return len(audit) > 0, nil
	})
	if len(audit) != 1 || !strings.Contains(audit[0], goodImage) || !strings.Contains(audit[0], approverID) {
		t.Errorf("ImageUpdated Events %q, want one naming %s and the approver", audit, goodImage)
	}
	// Thread replies travel in the channel's paced lane, the root's edit in
	// the workspace's chat.update lane: the last reply may land after the
	// edit seen above, so wait for it, with a bound.
	resolvedReply := func(ctx context.Context) (bool, error) {
		return slices.ContainsFunc(e.replies(root.TS), func(m slackemu.Message) bool { return strings.HasPrefix(m.Text, "Resolved") }), nil
	}
	_ = wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 30*time.Second, true, resolvedReply)
	t.Logf("thread: %q", texts(e.replies(root.TS)))
	if ok, _ := resolvedReply(t.Context()); !ok {
		t.Errorf("the thread does not say it resolved: %q", texts(e.replies(root.TS)))
	}
	e.checkNoForbidden(t)
}
