package ops

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pullfix/pullfix/internal/watch"
)

func TestServeOps(t *testing.T) {
	var ready atomic.Bool
	reg := prometheus.NewRegistry()
	m := watch.NewMetrics(reg)
	m.Patched("image", "applied")
	addr, err := Serve(t.Context(), "127.0.0.1:0", reg, ready.Load, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, _ := get("/readyz"); code != 503 {
		t.Errorf("/readyz before sync = %d, want 503", code)
	}
	ready.Store(true)
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz after sync = %d, want 200", code)
	}
	code, body := get("/metrics")
	if code != 200 || !strings.Contains(body, `pullfix_patches_total{kind="image",result="applied"} 1`) || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics = %d:\n%.500s", code, body)
	}
	if _, err := Serve(t.Context(), addr, prometheus.NewRegistry(), nil, nil, slog.New(slog.DiscardHandler)); err == nil {
		t.Error("binding a taken address succeeded")
	}
}
