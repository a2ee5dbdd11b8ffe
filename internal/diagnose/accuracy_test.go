package diagnose

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
)

// heldout is one record of testdata/heldout.jsonl: a real message from a
// public thread the classifier was not written against, the cause the
// thread established (Cause), the causes an honest reader of the words
// alone may answer (Accept: the ambiguous cause where the words cannot
// decide), and the thread (Source). Batch "A" was collected after the
// rules of issue #12 were written and before any rule was changed for a
// miss; batch "B" before the two rule changes its misses prompted (the
// quoted reference before containerd's "not found", Docker's "no such
// manifest"); batch "C" after those and before two more its misses
// prompted (Docker on Windows naming the OS version in "no matching
// manifest for", spaces after "manifest for"); batch "D" after the last
// rule change.
type heldout struct {
	sample
	Registry string `json:"registry"`
	Batch    string `json:"batch"`
}

func loadHeldout(t testing.TB) []heldout {
	t.Helper()
	f, err := os.Open("testdata/heldout.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []heldout
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var h heldout
		if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
			t.Fatalf("heldout line %d: %v", n, err)
		}
		if h.Message == "" || h.Cause == "" || len(h.Accept) == 0 || !strings.HasPrefix(h.Source, "https://") || h.Batch == "" {
			t.Fatalf("heldout line %d: every record needs message, cause, accept, an https source and a batch", n)
		}
		for _, c := range append(slices.Clone(h.Accept), h.Cause) {
			if !slices.Contains(Causes(), c) {
				t.Fatalf("heldout line %d: %q is not a cause", n, c)
			}
		}
		out = append(out, h)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// minHeldoutAccuracy is the floor of issue #12 (goal 97 %).
const minHeldoutAccuracy = 0.95

// TestAccuracyHeldout measures the offline classifier on real messages
// from public threads that no rule was written against, per batch and per
// cause (the cause the thread established), and fails below 95 %. Every
// miss is logged with its source.
func TestAccuracyHeldout(t *testing.T) {
	records := loadHeldout(t)
	type tally struct{ n, ok int }
	perCause := map[Cause]*tally{}
	perBatch := map[string]*tally{}
	perRuntime := map[string]*tally{}
	var misses []string
	total, ok, exact := 0, 0, 0
	add := func(m map[string]*tally, k string, hit bool) {
		if m[k] == nil {
			m[k] = &tally{}
		}
		m[k].n++
		if hit {
			m[k].ok++
		}
	}
	for _, h := range records {
		c := Classify(h.Reason, h.Message)
		hit := slices.Contains(h.Accept, c.Cause)
		total++
		if c.Cause == h.Cause {
			exact++
		}
		if hit {
			ok++
		} else {
			misses = append(misses, fmt.Sprintf("[%s] %s, want %v (thread: %s) %s\n        %.300s", h.Batch, c.Cause, h.Accept, h.Cause, h.Source, h.Message))
		}
		if perCause[h.Cause] == nil {
			perCause[h.Cause] = &tally{}
		}
		perCause[h.Cause].n++
		if hit {
			perCause[h.Cause].ok++
		}
		add(perBatch, h.Batch, hit)
		add(perRuntime, h.Runtime, hit)
		if c.Evidence != "" && !strings.Contains(h.Message, c.Evidence) {
			t.Errorf("evidence %q is not a substring of %q", c.Evidence, h.Message)
		}
	}
	acc := float64(ok) / float64(total)
	t.Logf("held-out accuracy: %d/%d = %.1f%%", ok, total, 100*acc)
	// How often the words alone reach the cause the thread established
	// (the rest are the ambiguous causes the words honestly answer, or
	// misses): the gap is what the registry probe is for.
	t.Logf("words equal the thread's cause: %d/%d = %.1f%%", exact, total, 100*float64(exact)/float64(total))
	logTallies := func(name string, m map[string]*tally) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := m[k]
			t.Logf("  %-8s %-26s %3d/%3d = %5.1f%%", name, k, v.ok, v.n, 100*float64(v.ok)/float64(v.n))
		}
	}
	logTallies("batch", perBatch)
	logTallies("runtime", perRuntime)
	causes := map[string]*tally{}
	for k, v := range perCause {
		causes[string(k)] = v
	}
	logTallies("cause", causes)
	for _, m := range misses {
		t.Logf("  miss: %s", m)
	}
	if acc < minHeldoutAccuracy {
		t.Errorf("held-out accuracy %.1f%% is below %.0f%%", 100*acc, 100*minHeldoutAccuracy)
	}
}
