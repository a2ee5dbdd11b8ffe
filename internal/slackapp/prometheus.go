package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pullfix/pullfix/internal/slackapp"
)

// slackMetrics exports the Slack queue's counters to Prometheus.
type slackMetrics struct {
	requests *prometheus.CounterVec
	dropped  *prometheus.CounterVec
}

func newSlackMetrics(reg prometheus.Registerer) *slackMetrics {
	m := &slackMetrics{
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

func (m *slackMetrics) Sent(method string) { m.requests.WithLabelValues(method, "sent").Inc() }

func (m *slackMetrics) RateLimited(method string, _ time.Duration) {
	m.requests.WithLabelValues(method, "rate_limited").Inc()
}

func (m *slackMetrics) Failed(method string, retryable bool) {
	result := "failed"
	if retryable {
		result = "failed_retryable"
	}
	m.requests.WithLabelValues(method, result).Inc()
}

func (m *slackMetrics) Dropped(kind slackapp.Kind) { m.dropped.WithLabelValues(kind.String()).Inc() }
