package diagnose

import (
	"context"
	"sync"
	"time"
)

// resultCache keeps probe results per key for a TTL and collapses
// concurrent probes of one key into a single flight: fifty pods of one
// Deployment failing at once cost one set of registry requests.
type resultCache[V any] struct {
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[string]cacheEntry[V]
	flights map[string]*flight[V]
}

type cacheEntry[V any] struct {
	v       V
	expires time.Time
}

type flight[V any] struct {
	done chan struct{}
	v    V
	keep bool
}

func newResultCache[V any](ttl time.Duration) *resultCache[V] {
	return &resultCache[V]{
		ttl:     ttl,
		now:     time.Now,
		entries: map[string]cacheEntry[V]{},
		flights: map[string]*flight[V]{},
	}
}

// do returns the cached value for key, waits for a flight in progress, or
// runs fn. fn reports whether its value may be cached (a cancelled probe
// must not be). hit is true when no new work was done for this caller.
func (c *resultCache[V]) do(ctx context.Context, key string, fn func() (V, bool)) (v V, hit bool, err error) {
	c.mu.Lock()
	now := c.now()
	if e, ok := c.entries[key]; ok {
		if now.Before(e.expires) {
			c.mu.Unlock()
			return e.v, true, nil
		}
		delete(c.entries, key)
	}
	if f, ok := c.flights[key]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
			if f.keep {
				return f.v, true, nil
			}
			// The leader's result was not cacheable (it was cancelled);
			// do our own work rather than inherit its cancellation.
			v, keep := fn()
			c.store(key, v, keep)
			return v, false, nil
		case <-ctx.Done():
			return v, false, ctx.Err()
		}
	}
	f := &flight[V]{done: make(chan struct{})}
	c.flights[key] = f
	c.mu.Unlock()

	defer func() {
		c.mu.Lock()
		delete(c.flights, key)
		c.mu.Unlock()
		close(f.done)
	}()
	f.v, f.keep = fn()
	c.store(key, f.v, f.keep)
	return f.v, false, nil
}

func (c *resultCache[V]) store(key string, v V, keep bool) {
	if !keep || c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.entries[key] = cacheEntry[V]{v: v, expires: now.Add(c.ttl)}
	// Sweep expired entries now and then so the map tracks what is failing
	// now, not everything that ever failed.
	if len(c.entries)%64 == 0 {
		for k, e := range c.entries {
			if !now.Before(e.expires) {
				delete(c.entries, k)
			}
		}
	}
}

// hostLimiter bounds requests in flight per registry host.
type hostLimiter struct {
	n  int
	mu sync.Mutex
	m  map[string]chan struct{}
}

func newHostLimiter(n int) *hostLimiter {
	return &hostLimiter{n: n, m: map[string]chan struct{}{}}
}

// acquire waits for a slot on host, or for ctx. The returned func releases it.
func (l *hostLimiter) acquire(ctx context.Context, host string) (func(), error) {
	l.mu.Lock()
	sem, ok := l.m[host]
	if !ok {
		sem = make(chan struct{}, l.n)
		l.m[host] = sem
	}
	l.mu.Unlock()
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
