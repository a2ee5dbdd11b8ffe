// Package console reports incidents on standard output when no Slack
// tokens are set: readable text on a terminal, one JSON object per line
// otherwise, so pullfix is useful with nothing but a kubeconfig.
package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/pullfix/pullfix/internal/diagnose"
	"github.com/pullfix/pullfix/internal/watch"
)

// Console is the watcher's Notifier (and Refiner) on a writer.
type Console struct {
	mu    sync.Mutex
	w     io.Writer
	human bool
}

// New returns a Console writing to w: text for people when human is set,
// JSON lines otherwise.
func New(w io.Writer, human bool) *Console { return &Console{w: w, human: human} }

// consoleRecord is the JSON-lines form.
type consoleRecord struct {
	Event    string              `json:"event"` // opened | fixing | dismissed | snoozed | resolved
	Time     time.Time           `json:"time"`
	Incident watch.Incident      `json:"incident"`
	Title    string              `json:"title,omitempty"`
	Diag     *diagnose.Diagnosis `json:"-"`
}

// Opened prints the incident. The reference only names it: the console
// cannot edit what it printed, so a refinement is printed anew.
func (c *Console) Opened(_ context.Context, inc watch.Incident) (string, error) {
	return "console:" + inc.ID, c.write("opened", inc)
}

// Refined prints the full diagnosis of an incident first printed on the
// kubelet's words (the registry answered after the diagnosis budget).
func (c *Console) Refined(_ context.Context, inc watch.Incident) error {
	return c.write("refined", inc)
}

// Updated prints a lifecycle change (fixing, dismissed, snoozed).
func (c *Console) Updated(_ context.Context, inc watch.Incident) error {
	return c.write(string(inc.State), inc)
}

// Resolved prints that the incident's pods run and are ready.
func (c *Console) Resolved(_ context.Context, inc watch.Incident) error {
	return c.write("resolved", inc)
}

// UpdatedGroup prints a storm group: one line per member.
func (c *Console) UpdatedGroup(_ context.Context, g watch.Group) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.human {
		b, err := json.Marshal(struct {
			Event string      `json:"event"`
			Time  time.Time   `json:"time"`
			Group watch.Group `json:"group"`
		}{"group", time.Now().UTC(), g})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.w, "%s\n", b)
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "⚠️  %s at %s: %d workloads (%d still failing)\n", g.Cause.Title(), g.Registry, len(g.Members), g.Open())
	for _, m := range g.Members {
		k := m.Key
		fmt.Fprintf(&b, "   %-9s %s/%s %s, container %s\n", m.State, k.Namespace, k.Kind, k.Name, k.Container)
	}
	b.WriteString("\n")
	_, err := io.WriteString(c.w, b.String())
	return err
}

func (c *Console) write(event string, inc watch.Incident) error {
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
	switch event {
	case "resolved":
		_, err := fmt.Fprintf(c.w, "✅ resolved: %s — pods run and are ready\n\n", where)
		return err
	case "fixing", "dismissed", "snoozed":
		line := fmt.Sprintf("ℹ️  %s: %s", event, where)
		if inc.By != "" {
			line += " by " + inc.By
		}
		if event == "snoozed" {
			line += " until " + inc.SnoozedUntil.Format(time.RFC3339)
		}
		_, err := fmt.Fprintf(c.w, "%s\n\n", line)
		return err
	}
	var b strings.Builder
	if event == "refined" {
		b.WriteString("🔎 the registry answered; updated diagnosis:\n")
	}
	if inc.Diagnosis != nil {
		WriteDiagnosis(&b, where, len(inc.Pods), *inc.Diagnosis)
	}
	_, err := io.WriteString(c.w, b.String())
	return err
}

// certaintyText says who decided the cause, for people.
func certaintyText(c diagnose.Certainty) string {
	if c == diagnose.CertaintyRegistry {
		return "registry (the registry answered this when pullfix asked)"
	}
	return string(c) + " (from the kubelet's message alone)"
}

// WriteDiagnosis renders a diagnosis as text for people: the same content
// as the Slack message, in the same order.
func WriteDiagnosis(b *strings.Builder, where string, pods int, d diagnose.Diagnosis) {
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
	if d.Certainty != "" {
		fmt.Fprintf(b, "   certainty: %s\n", certaintyText(d.Certainty))
	}
	b.WriteString("\n")
}

// IsTerminal reports whether stream (stdin or stdout) is a character
// device, a person at a terminal: output for people, and a message read
// from it would hang.
func IsTerminal(stream any) bool {
	f, ok := stream.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// PrintDiagnoses writes one-shot diagnoses (`bot diagnose`): JSON (a list,
// empty when healthy) or text for people, where names what was diagnosed.
func PrintDiagnoses(w io.Writer, where string, incs []watch.Incident, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if incs == nil {
			incs = []watch.Incident{}
		}
		return enc.Encode(incs)
	}
	if len(incs) == 0 {
		_, err := fmt.Fprintf(w, "✅ %s: no container is failing to pull its image\n", where)
		return err
	}
	var b strings.Builder
	for _, inc := range incs {
		k := inc.Key
		WriteDiagnosis(&b, fmt.Sprintf("%s/%s %s, container %s, cluster %s", k.Namespace, k.Kind, k.Name, k.Container, k.Cluster), len(inc.Pods), *inc.Diagnosis)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
