package diagnose

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pullfix/pullfix/internal/testenv/registries"
)

// A registry that cannot be reached costs its first probes a timeout;
// the images asked for after them (here queued behind a concurrency bound
// of 2) are answered from that, without a connection or a wait of their
// own.
func TestProbeUnreachableHostRemembered(t *testing.T) {
	hole := registries.BlackHole(t)
	p := newProber(t, WithConcurrency(2), WithTimeout(300*time.Millisecond))
	var mu sync.Mutex
	remembered := 0
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			res := p.Probe(context.Background(), fmt.Sprintf("%s/svc/app%d:1", hole.Host, i), nil, amd64)
			if res.Cause != NetworkTimeout || res.OK || res.Reached() {
				t.Errorf("app%d: %s %s", i, res.Cause, res.Detail)
			}
			if strings.Contains(res.Detail, "not asked again") {
				mu.Lock()
				remembered++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	// Two slots, and a loopback probe may race HTTPS and HTTP: at most four
	// connections, all from the first wave.
	if n := hole.Accepted(); n > 4 {
		t.Errorf("%d connections into the black hole for 6 images, want ≤ 4 (the first two probes only)", n)
	}
	if remembered < 4 {
		t.Errorf("%d of 6 answers came from the memory of the unreachable host, want ≥ 4", remembered)
	}
}

func TestUnreachableMemo(t *testing.T) {
	timeout := ProbeResult{Cause: NetworkTimeout, Detail: "dial tcp: i/o timeout"}
	notFound := ProbeResult{Cause: RepoNotFound, Detail: "NAME_UNKNOWN", Err: &ProbeError{Cause: RepoNotFound, Status: 404}}
	for _, tc := range []struct {
		name   string
		notes  []ProbeResult
		after  time.Duration
		ttl    time.Duration
		want   bool
		detail string
	}{
		{name: "timeout remembered", notes: []ProbeResult{timeout}, after: time.Second, ttl: 30 * time.Second, want: true, detail: "not asked again"},
		{name: "refused remembered", notes: []ProbeResult{{Cause: ConnectionRefused, Detail: "connection refused"}}, ttl: time.Minute, want: true},
		{name: "forgotten after the TTL", notes: []ProbeResult{timeout}, after: 31 * time.Second, ttl: 30 * time.Second},
		{name: "an answer clears it", notes: []ProbeResult{timeout, notFound}, ttl: time.Minute},
		{name: "success clears it", notes: []ProbeResult{timeout, {OK: true}}, ttl: time.Minute},
		{name: "an image's cause is not the host's", notes: []ProbeResult{notFound}, ttl: time.Minute},
		{name: "TLS errors are fast anyway: not remembered", notes: []ProbeResult{{Cause: TLSError}}, ttl: time.Minute},
		{name: "no cache, no memory", notes: []ProbeResult{timeout}, ttl: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			m := newUnreachableMemo(tc.ttl)
			m.now = func() time.Time { return now }
			for _, r := range tc.notes {
				m.note("reg.example", r)
			}
			now = now.Add(tc.after)
			got, ok := m.check("reg.example")
			if ok != tc.want {
				t.Fatalf("check = %v, want %v", ok, tc.want)
			}
			if _, other := m.check("other.example"); other {
				t.Error("another host is affected")
			}
			if ok && (got.Cause != tc.notes[0].Cause || got.Err == nil || !strings.Contains(got.Detail, tc.detail)) {
				t.Errorf("answer %+v", got)
			}
		})
	}
}
