package diagnose

import (
	"fmt"
	"sync"
	"time"
)

// unreachableMemo remembers, for the cache TTL, registry hosts a probe
// could not reach at all (DNS failure, timeout, refused connection). Such
// an answer says nothing about one image: it is the host's. Without the
// memo an outage costs every image of the host a full probe timeout —
// ten black-holed images behind a concurrency bound of four wait three
// timeouts in a row, holding the watcher's workers (hack/bench) — and
// sends a connection per image to a registry that is already down.
type unreachableMemo struct {
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	hosts map[string]unreachable
}

type unreachable struct {
	cause  Cause
	detail string
	at     time.Time
}

func newUnreachableMemo(ttl time.Duration) *unreachableMemo {
	return &unreachableMemo{ttl: ttl, now: time.Now, hosts: map[string]unreachable{}}
}

// hostUnreachable reports whether a probe result is about the host rather
// than the image.
func hostUnreachable(c Cause) bool { return networkCause(c) }

// note records a probe result for host: an unreachable host is
// remembered; any answer from it clears the memory.
func (m *unreachableMemo) note(host string, res ProbeResult) {
	if m.ttl <= 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !res.OK && hostUnreachable(res.Cause) {
		m.hosts[host] = unreachable{cause: res.Cause, detail: res.Detail, at: m.now()}
		return
	}
	if res.OK || res.Reached() {
		delete(m.hosts, host)
	}
}

// check answers for an image of host without asking it, when host was
// found unreachable within the TTL.
func (m *unreachableMemo) check(host string) (ProbeResult, bool) {
	if m.ttl <= 0 {
		return ProbeResult{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.hosts[host]
	if !ok {
		return ProbeResult{}, false
	}
	age := m.now().Sub(u.at)
	if age >= m.ttl {
		delete(m.hosts, host)
		return ProbeResult{}, false
	}
	detail := fmt.Sprintf("%s (not asked again: %s could not be reached %s ago)", u.detail, host, age.Round(100*time.Millisecond))
	return ProbeResult{
		Cause: u.cause, Detail: detail, Cached: true,
		Err: &ProbeError{Cause: u.cause, Detail: detail},
	}, true
}
