package admission

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultBudget is how long a review may spend on registries. The chart
// registers the webhook with a 5 s timeout, so a review always answers
// with time to spare, and `kubectl apply` never waits longer than this.
const DefaultBudget = 2 * time.Second

// maxReviewBytes bounds a request body: an AdmissionReview carries the
// object and the old object, each at most etcd's 1.5 MiB.
const maxReviewBytes = 7 << 20

// MatchNotControllerOwned is the CEL matchCondition the webhook is
// registered with: Pods and Jobs that a controller owns are never sent
// (their owner's change was reviewed; a ReplicaSet's pods would otherwise
// each cost a review). The handler skips them too.
const MatchNotControllerOwned = "!(request.resource.resource in ['pods', 'jobs']) || !has(object.metadata.ownerReferences) || " +
	"!object.metadata.ownerReferences.exists(r, has(r.controller) && r.controller)"

// Path is where the webhook is served.
const Path = "/validate"

// Handler serves AdmissionReview v1 requests.
type Handler struct {
	checker  *Checker
	budget   time.Duration
	deny     map[string]bool
	notifier Notifier
	metrics  *Metrics
	log      *slog.Logger

	mu       sync.Mutex
	notified map[string]time.Time // heads-ups sent, by workload and images
	// bg holds the heads-ups being sent (off the reviews' clock); Wait
	// waits for them.
	bg sync.WaitGroup
}

// Wait returns once every heads-up the handler started has been sent (or
// given up): the owner calls it on shutdown so none outlives the bot.
func (h *Handler) Wait() { h.bg.Wait() }

// headsUpWindow is how long a heads-up for one workload and image set is
// not repeated: an apply retried after a conflict, or applied again, is
// reviewed again (the webhook runs before the write's own checks), but
// is one heads-up.
const headsUpWindow = 30 * time.Minute

// HandlerConfig configures a Handler.
type HandlerConfig struct {
	Checker *Checker
	// Budget bounds each review's registry work (DefaultBudget when 0).
	Budget time.Duration
	// Deny lists the namespaces where an image the registry shows missing
	// is refused instead of warned about.
	Deny []string
	// Notifier is told when a workload is admitted with warnings; nil: nobody.
	Notifier Notifier
	Metrics  *Metrics
	Logger   *slog.Logger
}

// NewHandler returns the webhook's HTTP handler.
func NewHandler(c HandlerConfig) *Handler {
	h := &Handler{checker: c.Checker, budget: c.Budget, notifier: c.Notifier, metrics: c.Metrics, log: c.Logger, deny: map[string]bool{}, notified: map[string]time.Time{}}
	if h.budget <= 0 {
		h.budget = DefaultBudget
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.metrics == nil {
		h.metrics = NewMetrics(nil)
	}
	for _, ns := range c.Deny {
		if ns = strings.TrimSpace(ns); ns != "" {
			h.deny[ns] = true
		}
	}
	return h
}

// ServeHTTP answers one AdmissionReview. Anything it cannot read is
// answered 400 (the API server then applies failurePolicy Ignore); every
// review it can read is answered allowed unless the namespace opted into
// denial and the registry showed the image missing.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if r.Method != http.MethodPost {
		http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBytes))
	if err != nil {
		h.metrics.reviews.WithLabelValues(ResultError).Inc()
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		h.metrics.reviews.WithLabelValues(ResultError).Inc()
		http.Error(w, "not an AdmissionReview", http.StatusBadRequest)
		return
	}
	resp, result := h.Review(r.Context(), review.Request)
	h.metrics.reviews.WithLabelValues(result).Inc()
	h.metrics.duration.Observe(time.Since(start).Seconds())
	out := admissionv1.AdmissionReview{TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"}, Response: resp}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// Review results, the values of pullfix_admission_reviews_total{result}.
const (
	// ResultUnchanged: no image changed (or not a kind that is checked).
	ResultUnchanged = "unchanged"
	// ResultClean: every new image can be pulled.
	ResultClean = "clean"
	// ResultWarned: allowed, with warnings.
	ResultWarned = "warned"
	// ResultDenied: refused (a namespace in admission.deny).
	ResultDenied = "denied"
	// ResultBudget: the budget ran out before an answer (a hanging
	// registry): allowed, no warning for the images still unanswered.
	ResultBudget = "budget_exceeded"
	// ResultSlowRegistry: a registry that outlasted a review's budget
	// within SlowHostTTL is not asked again: allowed at once, no warning.
	ResultSlowRegistry = "slow_registry"
	// ResultError: a review that could not be read: allowed.
	ResultError = "error"
)

// Review decides one request. It never takes longer than the budget (plus
// the cluster reads before the first registry request, bounded by it too).
func (h *Handler) Review(ctx context.Context, ar *admissionv1.AdmissionRequest) (*admissionv1.AdmissionResponse, string) {
	resp := &admissionv1.AdmissionResponse{UID: ar.UID, Allowed: true}
	req, err := DecodeRequest(ar)
	if err != nil {
		h.log.WarnContext(ctx, "admission: cannot decode the object; allowed", "kind", ar.Kind.Kind, "namespace", ar.Namespace, "name", ar.Name, "err", err)
		return resp, ResultError
	}
	if len(req.Changed) == 0 {
		return resp, ResultUnchanged
	}
	ctx, cancel := context.WithTimeout(ctx, h.budget)
	defer cancel()
	out := h.checker.Check(ctx, req.Cur, req.Changed, specOf(req.Old))
	h.metrics.cached.Add(float64(out.FromCache))
	h.metrics.asked.Add(float64(out.Asked))
	result := ResultClean
	switch {
	case out.Skipped > 0 && out.Asked+out.FromCache == 0 && ctx.Err() == nil:
		result = ResultSlowRegistry
		h.log.InfoContext(ctx, "admission: registry outlasted a recent review's budget; allowed without asking it",
			"kind", req.Cur.Kind, "namespace", req.Cur.Namespace, "name", req.Cur.Name)
	case !out.Complete:
		result = ResultBudget
		h.log.InfoContext(ctx, "admission: budget ran out before the registry answered; allowed without a warning",
			"kind", req.Cur.Kind, "namespace", req.Cur.Namespace, "name", req.Cur.Name, "budget", h.budget)
	}
	if len(out.Findings) == 0 {
		return resp, result
	}
	var texts []string
	deniable := false
	for _, f := range out.Findings {
		texts = append(texts, f.Text)
		deniable = deniable || f.Deniable
	}
	if deniable && h.deny[req.Cur.Namespace] {
		resp.Allowed = false
		resp.Result = &metav1.Status{Status: metav1.StatusFailure, Reason: metav1.StatusReasonForbidden, Code: http.StatusForbidden,
			Message: "pullfix: " + strings.Join(texts, "; ")}
		h.log.InfoContext(ctx, "admission: denied", "kind", req.Cur.Kind, "namespace", req.Cur.Namespace, "name", req.Cur.Name, "warnings", texts)
		return resp, ResultDenied
	}
	resp.Warnings = texts
	h.log.InfoContext(ctx, "admission: allowed with warnings", "kind", req.Cur.Kind, "namespace", req.Cur.Namespace, "name", req.Cur.Name, "warnings", texts)
	if h.notifier != nil && !req.DryRun && h.firstHeadsUp(req.Cur, out.Findings) {
		hu := HeadsUp{Namespace: req.Cur.Namespace, Kind: req.Cur.Kind, Name: req.Cur.Name, User: req.User,
			Operation: string(req.Operation), Findings: out.Findings, At: time.Now()}
		// Never on the review's clock: the apply has its answer already.
		h.bg.Go(func() { h.notifier.HeadsUp(context.WithoutCancel(ctx), hu) })
	}
	if result == ResultClean {
		result = ResultWarned
	}
	return resp, result
}

// firstHeadsUp reports whether no heads-up for w with these findings was
// sent within headsUpWindow, and notes this one.
func (h *Handler) firstHeadsUp(w *Workload, fs []Finding) bool {
	key := w.Namespace + "/" + w.Kind + "/" + w.Name
	for _, f := range fs {
		key += "|" + f.Image
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for k, at := range h.notified {
		if time.Since(at) >= headsUpWindow {
			delete(h.notified, k)
		}
	}
	if _, ok := h.notified[key]; ok {
		return false
	}
	h.notified[key] = time.Now()
	return true
}

func specOf(w *Workload) *corev1.PodSpec {
	if w == nil {
		return nil
	}
	return w.Spec
}

// Metrics are the webhook's Prometheus metrics.
type Metrics struct {
	reviews  *prometheus.CounterVec
	duration prometheus.Histogram
	cached   prometheus.Counter
	asked    prometheus.Counter
}

// NewMetrics registers the webhook's metrics on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reviews: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pullfix_admission_reviews_total",
			Help: "Admission reviews answered, by result: unchanged, clean, warned, denied, budget_exceeded (a registry that did not answer in time: allowed, no warning), slow_registry (that registry not asked again for a minute: allowed at once), error."}, []string{"result"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pullfix_admission_review_duration_seconds",
			Help: "Time to answer an admission review.", Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2, 3, 5}}),
		cached: prometheus.NewCounter(prometheus.CounterOpts{Name: "pullfix_admission_images_cached_total",
			Help: "New images answered from the admission cache, without a registry request."}),
		asked: prometheus.NewCounter(prometheus.CounterOpts{Name: "pullfix_admission_images_probed_total",
			Help: "New images answered by asking the registry."}),
	}
	if reg != nil {
		reg.MustRegister(m.reviews, m.duration, m.cached, m.asked)
	}
	return m
}

// Total returns the reviews answered, whatever their result.
func (m *Metrics) Total() float64 {
	var n float64
	for _, r := range []string{ResultUnchanged, ResultClean, ResultWarned, ResultDenied, ResultBudget, ResultSlowRegistry, ResultError} {
		n += m.Count(r)
	}
	return n
}

// Images returns how many new images were answered at the registry and
// how many from the cache.
func (m *Metrics) Images() (probed, cached float64) {
	return counterValue(m.asked), counterValue(m.cached)
}

func counterValue(c prometheus.Counter) float64 {
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		return 0
	}
	return d.GetCounter().GetValue()
}

// Count returns the reviews counted with result, for tests and the benchmark.
func (m *Metrics) Count(result string) float64 {
	c, err := m.reviews.GetMetricWithLabelValues(result)
	if err != nil {
		return 0
	}
	var d dto.Metric
	if err := c.Write(&d); err != nil {
		return 0
	}
	return d.GetCounter().GetValue()
}
