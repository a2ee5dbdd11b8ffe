package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"

	"github.com/pullfix/pullfix/internal/admission"
	"github.com/pullfix/pullfix/internal/slackapp"
	"github.com/pullfix/pullfix/internal/watch"
)

// caBundleCheck is how often each replica makes sure the webhook
// configuration still trusts its CA (a `helm upgrade` may reset it).
// After a failed check (the configuration does not exist yet), it tries
// again sooner.
const (
	caBundleCheck = 5 * time.Minute
	caBundleRetry = 10 * time.Second
)

// startAdmission serves the admission webhook on every replica (the
// API server's Service spreads reviews over them; leadership is not
// involved): certificates first — the bot's own CA, or the cert-manager
// certificate mounted at PULLFIX_ADMISSION_CERT_DIR — then the HTTPS
// server. Heads-ups go to Slack when app is set, else to the log; either
// way an Event on the workload records them.
func startAdmission(ctx context.Context, env runEnv, reg prometheus.Registerer, app *slackapp.App, log *slog.Logger) error {
	cfg := env.cfg
	var getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	if cfg.AdmissionCertDir != "" {
		fc, err := admission.NewFileCertificate(cfg.AdmissionCertDir)
		if err != nil {
			return err
		}
		getCert = fc.GetCertificate
	} else {
		ca, err := admission.EnsureCA(ctx, env.cs, cfg.PodNamespace, cfg.AdmissionCASecret)
		if err != nil {
			return err
		}
		cert, err := ca.Issue(append(admission.ServiceHosts(cfg.AdmissionService, cfg.PodNamespace), cfg.AdmissionHosts...))
		if err != nil {
			return err
		}
		getCert = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &cert, nil }
		// Helm creates the webhook configuration after the Deployment, so
		// it may not exist yet: KeepCABundle retries until it does (the API
		// server cannot call the webhook before, and lets everything in).
		if _, err := admission.PatchCABundle(ctx, env.cs, cfg.AdmissionWebhookConfig, ca.CertPEM); err != nil {
			log.Warn("admission: the webhook's caBundle is not set yet; retrying", "config", cfg.AdmissionWebhookConfig, "err", err)
		}
		go admission.KeepCABundle(ctx, env.cs, cfg.AdmissionWebhookConfig, ca.CertPEM, caBundleCheck, caBundleRetry, log)
	}
	checker := admission.NewChecker(admission.CheckerConfig{Client: env.cs, Prober: env.prober, Diagnoser: env.diag,
		ECR: watch.ECRKeychainFromEnv(), ReadSecrets: cfg.PullSecretProbing, Logger: log})
	h := admission.NewHandler(admission.HandlerConfig{Checker: checker, Budget: cfg.AdmissionBudget, Deny: cfg.AdmissionDeny,
		Notifier: &headsUpNotifier{cs: env.cs, app: app, cluster: cfg.Cluster, log: log}, Metrics: admission.NewMetrics(reg), Logger: log})
	addr, err := admission.Serve(ctx, cfg.AdmissionAddr, getCert, h, log)
	if err != nil {
		return fmt.Errorf("PULLFIX_ADMISSION_ADDR %s: %w", cfg.AdmissionAddr, err)
	}
	log.Info("admission webhook serving", "addr", addr.String(), "path", admission.Path, "budget", cfg.AdmissionBudget, "deny", cfg.AdmissionDeny)
	return nil
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

func (n *headsUpNotifier) HeadsUp(ctx context.Context, h admission.HeadsUp) {
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
	if err := admission.RecordEvent(ctx, n.cs, h, ref); err != nil {
		n.log.Warn("admission heads-up event not recorded", "namespace", h.Namespace, "kind", h.Kind, "name", h.Name, "err", err)
	}
}

// threadHeadsUp replies in a newly posted incident's thread with the
// heads-up given when its workload was applied, if there was one.
func (b *bridge) threadHeadsUp(ctx context.Context, inc watch.Incident, ref string) {
	if !b.admission || ref == "" {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	// The heads-up is recorded right after its Slack post, off the
	// review's clock; pods that fail at once can open the incident first.
	// Look a few times over a few seconds before concluding there was none.
	var rec admission.Recorded
	for i, wait := range []time.Duration{0, time.Second, 2 * time.Second, 4 * time.Second} {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		r, ok, err := admission.FindHeadsUp(ctx, b.cs, inc.Key.Namespace, inc.Key.Kind, inc.Key.Name, inc.Key.Image)
		if err != nil {
			b.log.Debug("admission heads-up lookup failed", "incident", inc.ID, "err", err)
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
	if err := b.app.Reply(ctx, ref, slackapp.KindReply, slackapp.RenderHeadsUpReply(rec.Text, rec.At)); err != nil {
		b.log.Warn("admission heads-up not threaded", "incident", inc.ID, "err", err)
	}
}
