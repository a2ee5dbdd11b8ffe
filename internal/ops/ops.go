// Package ops serves the process's operational endpoints: /healthz,
// /readyz (the informers have synced), /metrics, and on request Go's
// profiles.
package ops

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"
)

// Serve serves /healthz, /readyz and /metrics on addr until ctx ends.
// It returns the bound address (useful with ":0") or an error when the
// address cannot be bound.
//
// extra adds handlers by path (the Slack endpoint in HTTP mode).
//
// ready says whether the process is ready: the informers have synced (a
// follower replica is ready too: it can take over); nil is always ready.
func Serve(ctx context.Context, addr string, reg *prometheus.Registry, ready func() bool, extra map[string]http.Handler, log *slog.Logger) (string, error) {
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready != nil && !ready() {
			http.Error(w, "informers not synced", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	for path, h := range extra {
		mux.Handle(path, h)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("ops server stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	return ln.Addr().String(), nil
}

// AddPprof adds Go's profiling handlers (PULLFIX_PPROF): the benchmark
// takes a CPU profile of the bot during a storm through them. They are
// opt-in because a profile exposes the process's internals.
func AddPprof(extra map[string]http.Handler) {
	// Where workers wait (locks, channels) matters as much as CPU in a storm.
	runtime.SetMutexProfileFraction(5)
	runtime.SetBlockProfileRate(int(100 * time.Microsecond))
	extra["GET /debug/pprof/"] = http.HandlerFunc(pprof.Index)
	extra["GET /debug/pprof/cmdline"] = http.HandlerFunc(pprof.Cmdline)
	extra["GET /debug/pprof/profile"] = http.HandlerFunc(pprof.Profile)
	extra["GET /debug/pprof/symbol"] = http.HandlerFunc(pprof.Symbol)
	extra["GET /debug/pprof/trace"] = http.HandlerFunc(pprof.Trace)
}

// NewLogger returns the process logger — text, or JSON lines when format
// is "json" (PULLFIX_LOG_FORMAT), at level (PULLFIX_LOG_LEVEL: debug, info,
// warn, error; default info) — and routes client-go's klog through it.
func NewLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	log := slog.New(slog.NewTextHandler(w, opts))
	if format == "json" {
		log = slog.New(slog.NewJSONHandler(w, opts))
	}
	// client-go reports through klog (leader election, a reflector's
	// forbidden or failed watch): send that through the same logger, so
	// the log is one format (JSON lines for collectors) and RBAC denials
	// are not lost on a side channel.
	klog.SetSlogLogger(log)
	return log
}
