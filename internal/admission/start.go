package admission

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/slackapp"
	"github.com/pullfix/pullfix/internal/watch"
	"github.com/pullfix/pullfix/internal/watch/creds"
)

// caBundleCheck is how often each replica makes sure the webhook
// configuration still trusts its CA (a `helm upgrade` may reset it).
// After a failed check (the configuration does not exist yet), it tries
// again sooner.
const (
	caBundleCheck = 5 * time.Minute
	caBundleRetry = 10 * time.Second
)

// Config is what the bot's webhook needs: its PULLFIX_ADMISSION_*
// settings and the bot's shared parts.
type Config struct {
	Settings
	Client    kubernetes.Interface
	Prober    *diagnose.Prober
	Diagnoser *diagnose.Diagnoser
	// App posts heads-ups to Slack and threads them into incidents; nil
	// (console mode) logs them.
	App     *slackapp.App
	Cluster string
	// Namespace is the bot's own (its CA Secret and Service live there).
	Namespace string
	// ReadSecrets: read the pod's pull secrets (PULLFIX_PULL_SECRET_PROBING).
	ReadSecrets bool
	Registerer  prometheus.Registerer
	Logger      *slog.Logger
}

// Webhook is a running admission webhook. Everything it starts (the
// server, the caBundle keeper, heads-ups) is its own: Stop ends it and
// waits for it.
type Webhook struct {
	cfg  Config
	log  *slog.Logger
	stop context.CancelFunc
	bg   sync.WaitGroup
	h    *Handler
}

// Stop shuts the webhook down and returns once every goroutine it started
// has ended (heads-ups being sent finish first, within their own bound).
func (w *Webhook) Stop() {
	w.stop()
	w.bg.Wait()
	if w.h != nil {
		w.h.Wait()
	}
}

// Start, when cfg.Admission is set, serves the admission webhook on every replica (the API server's
// Service spreads reviews over them; leadership is not involved):
// certificates first — the bot's own CA, or the cert-manager certificate
// mounted at cfg.CertDir — then the HTTPS server, until ctx ends.
// Heads-ups go to Slack when cfg.App is set, else to the log; either way
// an Event on the workload records them. Without cfg.Admission the
// Webhook it returns does nothing.
func Start(ctx context.Context, cfg Config) (_ *Webhook, err error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	ctx, stop := context.WithCancel(ctx)
	wh := &Webhook{cfg: cfg, log: log, stop: stop}
	if !cfg.Admission {
		return wh, nil
	}
	defer func() {
		if err != nil {
			wh.Stop()
		}
	}()
	var getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	if cfg.AdmissionCertDir != "" {
		fc, err := NewFileCertificate(cfg.AdmissionCertDir)
		if err != nil {
			return nil, err
		}
		getCert = fc.GetCertificate
	} else {
		ca, err := EnsureCA(ctx, cfg.Client, cfg.Namespace, cfg.AdmissionCASecret)
		if err != nil {
			return nil, err
		}
		cert, err := ca.Issue(append(ServiceHosts(cfg.AdmissionService, cfg.Namespace), cfg.AdmissionHosts...))
		if err != nil {
			return nil, err
		}
		getCert = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }
		// Helm creates the webhook configuration after the Deployment, so
		// it may not exist yet: KeepCABundle retries until it does (the API
		// server cannot call the webhook before, and lets everything in).
		if _, err := PatchCABundle(ctx, cfg.Client, cfg.AdmissionWebhookConfig, ca.CertPEM); err != nil {
			log.Warn("admission: the webhook's caBundle is not set yet; retrying", "config", cfg.AdmissionWebhookConfig, "err", err)
		}
		wh.bg.Go(func() {
			KeepCABundle(ctx, cfg.Client, cfg.AdmissionWebhookConfig, ca.CertPEM, caBundleCheck, caBundleRetry, log)
		})
	}
	checker := NewChecker(CheckerConfig{Client: cfg.Client, Prober: cfg.Prober, Diagnoser: cfg.Diagnoser,
		ECR: creds.ECRKeychainFromEnv(os.Getenv), ReadSecrets: cfg.ReadSecrets, Logger: log})
	wh.h = NewHandler(HandlerConfig{Checker: checker, Budget: cfg.AdmissionBudget, Deny: cfg.AdmissionDeny,
		Notifier: &headsUpNotifier{cs: cfg.Client, app: cfg.App, cluster: cfg.Cluster, log: log}, Metrics: NewMetrics(cfg.Registerer), Logger: log})
	addr, err := serve(ctx, &wh.bg, cfg.AdmissionAddr, getCert, wh.h, log)
	if err != nil {
		return nil, fmt.Errorf("PULLFIX_ADMISSION_ADDR %s: %w", cfg.AdmissionAddr, err)
	}
	log.Info("admission webhook serving", "addr", addr.String(), "path", Path, "budget", cfg.AdmissionBudget, "deny", cfg.AdmissionDeny)
	return wh, nil
}

// headsUpNotifier posts a heads-up for each workload admitted with
// warnings (Slack, or the log without Slack) and records it as an Event on
// the workload, which the leader reads to thread it into the incident.
type headsUpNotifier struct {
	cs      kubernetes.Interface
	app     *slackapp.App // nil: console mode
	cluster string
	log     *slog.Logger
}

func (n *headsUpNotifier) HeadsUp(ctx context.Context, h HeadsUp) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var texts []string
	for _, f := range h.Findings {
		texts = append(texts, f.Text)
	}
	ref := ""
	if n.app != nil {
		r, err := n.app.PostHeadsUp(ctx, slackapp.HeadsUpInput{Cluster: n.cluster, Namespace: h.Namespace, Kind: h.Kind, Name: h.Name, User: h.User, Warnings: texts})
		if err != nil {
			n.log.Warn("admission heads-up not posted", "namespace", h.Namespace, "kind", h.Kind, "name", h.Name, "err", err)
		}
		ref = r
	} else {
		n.log.Warn("applied with an image that cannot be pulled", "namespace", h.Namespace, "kind", h.Kind, "name", h.Name, "user", h.User, "warnings", texts)
	}
	if err := RecordEvent(ctx, n.cs, h, ref); err != nil {
		n.log.Warn("admission heads-up event not recorded", "namespace", h.Namespace, "kind", h.Kind, "name", h.Name, "err", err)
	}
}

// ThreadHeadsUp is the watcher's WithOnOpened hook: it replies in a newly
// posted incident's thread with the heads-up given when its workload was
// applied, if there was one (nothing without Slack). The watcher runs it
// in a goroutine it owns and waits for.
func (w *Webhook) ThreadHeadsUp(ctx context.Context, inc watch.Incident, ref string) {
	cs, app, log := w.cfg.Client, w.cfg.App, w.log
	if !w.cfg.Admission || app == nil || ref == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// The heads-up is recorded right after its Slack post, off the
	// review's clock; pods that fail at once can open the incident first.
	// Look a few times over a few seconds before concluding there was none.
	var rec Recorded
	for i, wait := range []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second} {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		r, ok, err := FindHeadsUp(ctx, cs, inc.Key.Namespace, inc.Key.Kind, inc.Key.Name, inc.Key.Image)
		if err != nil {
			log.Debug("admission heads-up lookup failed", "incident", inc.ID, "err", err)
			return
		}
		if ok {
			rec = r
			break
		}
		if i == 3 {
			return
		}
	}
	if err := app.Reply(ctx, ref, slackapp.KindReply, slackapp.RenderHeadsUpReply(rec.Text, rec.At)); err != nil {
		log.Warn("admission heads-up not threaded", "incident", inc.ID, "err", err)
	}
}
