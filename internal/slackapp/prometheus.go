package slackapp

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// PrometheusMetrics exports the outbound queue's counters to Prometheus
// (pullfix_slack_requests_total, pullfix_slack_dropped_total).
type PrometheusMetrics struct {
	requests *prometheus.CounterVec
	dropped  *prometheus.CounterVec
}

// NewPrometheusMetrics creates the series and registers them with reg.
func NewPrometheusMetrics(reg prometheus.Registerer) *PrometheusMetrics {
	m := &PrometheusMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pullfix_slack_requests_total",
			Help: "Slack Web API calls by method and result (sent, rate_limited, failed, failed_retryable).",
		}, []string{"method", "result"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "pullfix_slack_dropped_total",
			Help: "Low-value Slack writes shed because the outbound queue was full, by kind.",
		}, []string{"kind"}),
	}
	reg.MustRegister(m.requests, m.dropped)
	return m
}

// Sent counts a call Slack accepted.
func (m *PrometheusMetrics) Sent(method string) { m.requests.WithLabelValues(method, "sent").Inc() }

// RateLimited counts a call Slack answered 429.
func (m *PrometheusMetrics) RateLimited(method string, _ time.Duration) {
	m.requests.WithLabelValues(method, "rate_limited").Inc()
}

// Failed counts a call that failed.
func (m *PrometheusMetrics) Failed(method string, retryable bool) {
	result := "failed"
	if retryable {
		result = "failed_retryable"
	}
	m.requests.WithLabelValues(method, result).Inc()
}

// Dropped counts a write shed under backlog.
func (m *PrometheusMetrics) Dropped(kind Kind) { m.dropped.WithLabelValues(kind.String()).Inc() }
