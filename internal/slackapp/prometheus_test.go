package slackapp

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSlackMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewPrometheusMetrics(reg)
	var _ Metrics = m
	m.Sent("chat.postMessage")
	m.RateLimited("chat.postMessage", 0)
	m.Failed("chat.update", true)
	m.Dropped(KindProgress)
	want := `
# HELP pullfix_slack_requests_total Slack Web API calls by method and result (sent, rate_limited, failed, failed_retryable).
# TYPE pullfix_slack_requests_total counter
pullfix_slack_requests_total{method="chat.postMessage",result="rate_limited"} 1
pullfix_slack_requests_total{method="chat.postMessage",result="sent"} 1
pullfix_slack_requests_total{method="chat.update",result="failed_retryable"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "pullfix_slack_requests_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.dropped); n != 1 {
		t.Errorf("dropped series = %d, want 1", n)
	}
}
