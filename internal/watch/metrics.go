package watch

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// Metrics are pullfix's Prometheus series. A nil *Metrics records nothing,
// so tests and one-shot commands need not build one.
type Metrics struct {
	IncidentsOpened  *prometheus.CounterVec
	IncidentsOpen    prometheus.Gauge
	DetectionLatency prometheus.Histogram
	ProbeLatency     prometheus.Histogram
	Patches          *prometheus.CounterVec
	Errors           *prometheus.CounterVec
}

// NewMetrics creates the series and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		IncidentsOpened: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pullfix_incidents_opened_total", Help: "Incidents opened, by diagnosed cause.",
		}, []string{"cause"}),
		IncidentsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "pullfix_incidents_open", Help: "Incidents not yet resolved, dismissed or snoozed.",
		}),
		DetectionLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pullfix_detection_latency_seconds", Help: "From the first failing pod seen to the notification sent.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2, 5, 10, 30},
		}),
		ProbeLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "pullfix_probe_duration_seconds", Help: "Wall time spent at registries per diagnosis.",
			Buckets: []float64{.01, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
		Patches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pullfix_patches_total", Help: "Workload patches attempted, by kind (image, pull_secret) and result (applied, stale, refused, error).",
		}, []string{"kind", "result"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pullfix_errors_total", Help: "Errors, by component (sync, notify, slack, state).",
		}, []string{"component"}),
	}
	reg.MustRegister(m.IncidentsOpened, m.IncidentsOpen, m.DetectionLatency, m.ProbeLatency, m.Patches, m.Errors)
	return m
}

// diagnosed records one notified diagnosis: its cause, its probe time, and
// how long after the incident opened it went out.
func (m *Metrics) diagnosed(d diagnose.Diagnosis, opened time.Time) {
	if m == nil {
		return
	}
	m.IncidentsOpened.WithLabelValues(string(d.Cause)).Inc()
	m.ProbeLatency.Observe(d.ProbeDuration.Seconds())
	if !opened.IsZero() {
		m.DetectionLatency.Observe(time.Since(opened).Seconds())
	}
}

// Patched records a patch attempt.
func (m *Metrics) Patched(kind, result string) {
	if m == nil {
		return
	}
	m.Patches.WithLabelValues(kind, result).Inc()
}

// Error records an error of a component.
func (m *Metrics) Error(component string) {
	if m == nil {
		return
	}
	m.Errors.WithLabelValues(component).Inc()
}

// setOpen sets the open-incident gauge.
func (m *Metrics) setOpen(n int) {
	if m == nil {
		return
	}
	m.IncidentsOpen.Set(float64(n))
}
