package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/testenv/controlplane"
	"github.com/pullfix/pullfix/internal/testenv/kubeletsim"
	"github.com/pullfix/pullfix/internal/testenv/registries"
	"github.com/pullfix/pullfix/internal/testenv/slackemu"
)

const (
	badImage  = "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1"
	goodRepo  = "aws-containers/retail-store-sample-ui"
	goodImage = "public.ecr.aws/" + goodRepo + ":1.2.1"

	// The emulated workspace: one approver and one channel. The ids have
	// Slack's shape so the bot's configuration checks accept them.
	aliceID     = "U0DEMOALICE"
	aliceName   = "alice"
	channelID   = "C0PULLFIX01"
	channelName = "pullfix"

	// defaultPageAddr is where the page listens unless PULLFIX_DEMO_ADDR
	// says otherwise; a fixed port so the printed URL stays the same from
	// run to run (a free port is used when it is taken).
	defaultPageAddr = "127.0.0.1:8090"
)

// localOptions configure startLocal.
type localOptions struct {
	// cp is a running control plane to use; nil starts one (and Close
	// stops it).
	cp *controlplane.ControlPlane
	// emulateSlack starts the Slack emulator and its page, and points the
	// bot at it.
	emulateSlack bool
	// pageAddr is the page's listen address (loopback); when it is taken a
	// free port is used. Default: 127.0.0.1:0.
	pageAddr string
	// out receives progress lines. Default: discard.
	out io.Writer
}

// localEnv is the running embedded world: cluster, registry, kubelet
// simulator, and optionally the Slack emulator with its page.
type localEnv struct {
	CP  *controlplane.ControlPlane
	CS  kubernetes.Interface
	Emu *slackemu.Emulator // nil with real Slack
	// PageURL is the emulated channel's page ("" with real Slack).
	PageURL string
	// Env is the PULLFIX_* configuration of the bot for this world.
	Env []string

	closers []func()
}

// startLocal starts the embedded world and creates the broken ui-new. On
// error everything already started is stopped.
func startLocal(ctx context.Context, o localOptions) (_ *localEnv, err error) {
	out := o.out
	if out == nil {
		out = io.Discard
	}
	l := &localEnv{CP: o.cp}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if l.CP == nil {
		start := time.Now()
		fmt.Fprintln(out, "pullfix: starting the control plane (etcd, kube-apiserver, kube-controller-manager)…")
		cp, err := controlplane.Start(ctx, controlplane.WithLogger(log))
		if err != nil {
			return nil, err
		}
		l.CP = cp
		l.closers = append(l.closers, func() { _ = cp.Stop() })
		fmt.Fprintf(out, "pullfix: control plane up at %s in %s (kubeconfig %s)\n", cp.Host(), time.Since(start).Round(100*time.Millisecond), cp.Kubeconfig())
	}

	// The registry that public.ecr.aws maps to: it holds the real
	// repository name and not the misspelt one, as in the runbook.
	reg := httptest.NewServer(registry.New(registry.Logger(stdlog.New(io.Discard, "", 0))))
	l.closers = append(l.closers, reg.Close)
	regHost := strings.TrimPrefix(reg.URL, "http://")
	for _, tag := range []string{"1.2.1", "1.2.0"} {
		if err := registries.PushMultiArch(regHost + "/" + goodRepo + ":" + tag); err != nil {
			return nil, fmt.Errorf("seed registry: %w", err)
		}
	}
	mirrors := map[string]string{"public.ecr.aws": regHost}

	cfg := l.CP.AdminConfig()
	cfg.QPS, cfg.Burst = 100, 200
	sim, err := kubeletsim.NewForConfig(cfg, kubeletsim.WithMirrors(mirrors), kubeletsim.WithLogger(log),
		kubeletsim.WithBackoff(time.Second, 10*time.Second))
	if err != nil {
		return nil, err
	}
	if err := sim.Start(ctx); err != nil {
		return nil, err
	}
	l.closers = append(l.closers, sim.Stop)
	if l.CS, err = kubernetes.NewForConfig(cfg); err != nil {
		return nil, err
	}
	if err := createUINew(ctx, l.CS); err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "pullfix: created deployment/ui-new with %s (the runbook's typo)\n", badImage)
	fmt.Fprintf(out, "pullfix: try: KUBECONFIG=%s kubectl get pods,events\n", l.CP.Kubeconfig())

	l.Env = []string{
		"PULLFIX_KUBECONFIG=" + l.CP.Kubeconfig(),
		"PULLFIX_CLUSTER_NAME=local",
		"PULLFIX_REGISTRY_MIRRORS=public.ecr.aws=" + regHost,
	}
	if !o.emulateSlack {
		fmt.Fprintf(out, "pullfix: or fix it yourself: kubectl set image deployment/ui-new ui=%s\n", goodImage)
		return l, nil
	}
	if err := l.startSlack(o.pageAddr, out); err != nil {
		return nil, err
	}
	return l, nil
}

// startSlack starts the emulator with alice and #pullfix, serves the page,
// and adds the bot's Slack configuration to l.Env.
func (l *localEnv) startSlack(addr string, out io.Writer) error {
	emu, err := slackemu.New()
	if err != nil {
		return err
	}
	l.Emu = emu
	l.closers = append(l.closers, func() { _ = emu.Close() })
	emu.AddUser(aliceID, aliceName)
	emu.AddChannel(channelID, channelName)

	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(out, "pullfix: %s is taken (%v); the page uses a free port instead\n", addr, err)
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return err
		}
	}
	srv := &http.Server{
		Handler: emu.Page(slackemu.PageAs(aliceID), slackemu.PageChannel(channelID),
			slackemu.PageTitle("#pullfix — pullfix demo"), slackemu.PagePanel(l.panel)),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go func() { _ = srv.Serve(ln) }()
	// Close the emulator first: that ends the page's event streams, so
	// Shutdown need not wait for them.
	l.closers = append(l.closers, func() {
		_ = emu.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if srv.Shutdown(ctx) != nil {
			_ = srv.Close()
		}
	})
	l.PageURL = "http://" + ln.Addr().String() + "/"

	l.Env = append(l.Env,
		"PULLFIX_SLACK_BOT_TOKEN="+emu.BotToken(),
		"PULLFIX_SLACK_APP_TOKEN="+emu.AppToken(),
		"PULLFIX_SLACK_SIGNING_SECRET=",
		"PULLFIX_SLACK_API_URL="+emu.APIURL(),
		"PULLFIX_SLACK_CHANNEL="+channelID,
		"PULLFIX_SLACK_CHANNELS=",
		"PULLFIX_SLACK_APPROVERS="+aliceID,
	)
	return nil
}

// announceFirstPost repeats the page's address once the bot has posted,
// since by then the bot's own log lines have scrolled the first banner
// away.
func (l *localEnv) announceFirstPost(ctx context.Context, out io.Writer, began time.Time) {
	err := l.Emu.WaitFor(ctx, func() bool { return len(l.Emu.Messages(channelID)) > 0 })
	if err != nil {
		return
	}
	banner(out, fmt.Sprintf("pullfix posted to #pullfix %s after `make run` started: open %s and click \"Set image to …retail-store-sample-ui:1.2.1\"",
		time.Since(began).Round(100*time.Millisecond), l.PageURL))
}

// Close stops everything startLocal started, in reverse order.
func (l *localEnv) Close() {
	for i := len(l.closers) - 1; i >= 0; i-- {
		l.closers[i]()
	}
	l.closers = nil
}

// panel is the page's side panel: Deployment ui-new and its pods, as
// kubectl would show them.
func (l *localEnv) panel(ctx context.Context) (slackemu.Panel, error) {
	p := slackemu.Panel{Title: "Cluster local · namespace default"}
	d, err := l.CS.AppsV1().Deployments("default").Get(ctx, "ui-new", metav1.GetOptions{})
	if err != nil {
		return p, fmt.Errorf("deployment ui-new: %w", err)
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	tone := "bad"
	if d.Status.ReadyReplicas >= want && d.Status.UpdatedReplicas >= want {
		tone = "ok"
	}
	image := ""
	if cs := d.Spec.Template.Spec.Containers; len(cs) > 0 {
		image = cs[0].Image
	}
	p.Lines = append(p.Lines, slackemu.PanelLine{
		Text: fmt.Sprintf("Deployment ui-new: ready %d/%d", d.Status.ReadyReplicas, want), Detail: image, Tone: tone,
	})
	pods, err := l.CS.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=ui-new"})
	if err != nil {
		return p, fmt.Errorf("pods: %w", err)
	}
	slices.SortFunc(pods.Items, func(a, b corev1.Pod) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	for _, pod := range pods.Items {
		p.Lines = append(p.Lines, podLine(pod))
	}
	if len(pods.Items) == 0 {
		p.Lines = append(p.Lines, slackemu.PanelLine{Text: "no pods yet", Tone: "warn"})
	}
	return p, nil
}

// podLine is one pod as `kubectl get pods` shows it: ready count and the
// container's waiting reason, or Running.
func podLine(pod corev1.Pod) slackemu.PanelLine {
	ready, total := 0, len(pod.Spec.Containers)
	status, detail, tone := string(pod.Status.Phase), "", "warn"
	for _, c := range pod.Status.ContainerStatuses {
		if c.Ready {
			ready++
		}
		if w := c.State.Waiting; w != nil && w.Reason != "" {
			status, detail, tone = w.Reason, w.Message, "bad"
		}
	}
	if pod.Status.Phase == corev1.PodRunning && ready == total {
		status, tone = "Running", "ok"
	}
	if pod.DeletionTimestamp != nil {
		status, tone = "Terminating", "warn"
	}
	if len(detail) > 160 {
		detail = detail[:157] + "…"
	}
	return slackemu.PanelLine{Text: fmt.Sprintf("pod %s  %d/%d %s", pod.Name, ready, total, status), Detail: detail, Tone: tone}
}

// banner prints a line that stands out among log lines.
func banner(out io.Writer, msg string) {
	bar := strings.Repeat("━", min(len(msg)+4, 110))
	fmt.Fprintf(out, "\n%s\n  pullfix demo: %s\n%s\n\n", bar, msg, bar)
}

func createUINew(ctx context.Context, cs kubernetes.Interface) error {
	// The ServiceAccount admission plugin refuses pods until "default" exists.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the default ServiceAccount never appeared")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	one := int32(1)
	labels := map[string]string{"app": "ui-new"}
	_, err := cs.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "ui-new"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "ui", Image: badImage}}},
			},
		},
	}, metav1.CreateOptions{})
	return err
}
