package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/watch"
)

// console reports incidents on standard output: readable text on a
// terminal, one JSON object per line otherwise. It is the notifier when no
// Slack tokens are set, so pullfix is useful with nothing but a kubeconfig.
type console struct {
	mu    sync.Mutex
	w     io.Writer
	human bool
}

func newConsole(w io.Writer, human bool) *console { return &console{w: w, human: human} }

// consoleRecord is the JSON-lines form.
type consoleRecord struct {
	Event    string              `json:"event"` // opened | resolved
	Time     time.Time           `json:"time"`
	Incident watch.Incident      `json:"incident"`
	Title    string              `json:"title,omitempty"`
	Diag     *diagnose.Diagnosis `json:"-"`
}

func (c *console) Opened(_ context.Context, inc watch.Incident) error {
	return c.write("opened", inc)
}

func (c *console) Resolved(_ context.Context, inc watch.Incident) error {
	return c.write("resolved", inc)
}

func (c *console) write(event string, inc watch.Incident) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.human {
		rec := consoleRecord{Event: event, Time: time.Now().UTC(), Incident: inc}
		if inc.Diagnosis != nil {
			rec.Title = inc.Diagnosis.Cause.Title()
		}
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.w, "%s\n", b)
		return err
	}
	k := inc.Key
	where := fmt.Sprintf("%s/%s %s, container %s, cluster %s", k.Namespace, k.Kind, k.Name, k.Container, k.Cluster)
	if event == "resolved" {
		_, err := fmt.Fprintf(c.w, "✅ resolved: %s — pods run and are ready\n\n", where)
		return err
	}
	var b strings.Builder
	if inc.Diagnosis != nil {
		writeDiagnosis(&b, where, len(inc.Pods), *inc.Diagnosis)
	}
	_, err := io.WriteString(c.w, b.String())
	return err
}

// writeDiagnosis renders a diagnosis as text for people: the same content
// as the Slack message, in the same order.
func writeDiagnosis(b *strings.Builder, where string, pods int, d diagnose.Diagnosis) {
	fmt.Fprintf(b, "❌ %s: %s\n", d.Cause.Title(), where)
	if pods > 0 {
		fmt.Fprintf(b, "   pods: %d   image: %s\n", pods, d.Target.Image)
	}
	fmt.Fprintf(b, "   %s\n", d.Summary)
	for _, e := range d.Evidence {
		fmt.Fprintf(b, "   %-8s %s\n", string(e.Source)+":", e.Text)
	}
	if d.Remedy != "" {
		fmt.Fprintf(b, "   fix:     %s\n", d.Remedy)
	}
	for _, c := range d.Candidates {
		fmt.Fprintf(b, "   [%s] set image to %s — %s\n", c.ID, c.Image, c.Reason)
	}
	if len(d.Probes) > 0 {
		fmt.Fprintf(b, "   probed %d request(s) in %s, confidence %s\n", len(d.Probes), d.ProbeDuration.Round(time.Millisecond), d.Confidence)
	}
	b.WriteString("\n")
}
