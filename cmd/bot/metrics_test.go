package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/pullfix/pullfix/internal/slackapp"
	"github.com/pullfix/pullfix/internal/watch/fix"
)

func TestPatchResult(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{nil, "applied"},
		{&fix.StaleError{Container: "ui", Want: "a", Got: "b"}, "stale"},
		{fix.ErrConflict, "stale"},
		{&fix.DryRunError{Err: errors.New("denied by policy")}, "refused"},
		{fix.ErrPullSecretPresent, "refused"},
		{errors.New("connection refused"), "error"},
	}
	for _, c := range cases {
		if got := patchResult(c.err); got != c.want {
			t.Errorf("patchResult(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}

func TestSlackMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newSlackMetrics(reg)
	var _ slackapp.Metrics = m
	m.Sent("chat.postMessage")
	m.RateLimited("chat.postMessage", 0)
	m.Failed("chat.update", true)
	m.Dropped(slackapp.KindProgress)
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
