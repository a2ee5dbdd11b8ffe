package diagnose

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
)

// ExplainResult is one line of `bot explain --jsonl`: the classification,
// plus the title for people and an error when the input line was not a
// JSON object.
// Every field is always present (empty when unknown), so a consumer of the
// JSON lines never has to tell "absent" from "empty".
type ExplainResult struct {
	Cause Cause `json:"cause"`
	// Certainty is always "words": explain never asks a registry.
	Certainty Certainty `json:"certainty"`
	Title     string    `json:"title"`
	Summary   string    `json:"summary"`
	Remedy    string    `json:"remedy"`
	Evidence  string    `json:"evidence"`
	Image     string    `json:"image"`
	Registry  string    `json:"registry"`
	Runtime   Runtime   `json:"runtime"`
	Error     string    `json:"error,omitempty"`
}

func newExplainResult(c Classification) ExplainResult {
	return ExplainResult{
		Cause: c.Cause, Certainty: CertaintyWords, Title: c.Cause.Title(), Summary: c.Summary, Remedy: c.Remedy,
		Evidence: c.Evidence, Image: c.Image, Registry: c.Registry, Runtime: c.Runtime,
	}
}

// explainInput is one line of `bot explain --jsonl` input.
type explainInput struct {
	Message string `json:"message"`
	Reason  string `json:"reason"`
}

// ExplainJSONL classifies JSON lines {"message","reason"} from stdin into
// one ExplainResult per line on stdout (`bot explain --jsonl`). It
// streams: one line in, one object out, so a long input is never held
// whole and output order follows input order. Lines may be of
// any length (a bufio.Reader, not a Scanner with its 64 KiB token limit).
func ExplainJSONL(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	r := bufio.NewReaderSize(stdin, 64<<10)
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, readErr := r.ReadBytes('\n')
		// Every line yields one object, a blank one included, so the output
		// zips with the input; only the empty tail after the last newline
		// is not a line.
		if len(line) > 0 {
			if err := enc.Encode(explainLine(line)); err != nil {
				return err
			}
		}
		// Flush whenever no more input is buffered, so a caller that writes
		// a line and waits for its answer never deadlocks.
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
		if readErr == io.EOF {
			return nil
		}
		if readErr != nil {
			return fmt.Errorf("reading stdin: %w", readErr)
		}
	}
}

// explainLine classifies one JSON input line; a malformed line becomes an
// unknown cause with the parse error.
func explainLine(line []byte) ExplainResult {
	var in explainInput
	if len(bytes.TrimSpace(line)) == 0 {
		summary, remedy := Describe(Unknown, "", "")
		res := newExplainResult(Classification{Cause: Unknown, Summary: summary, Remedy: remedy})
		res.Error = `empty input line (want {"message": "...", "reason": "..."})`
		return res
	}
	if err := json.Unmarshal(line, &in); err != nil {
		summary, remedy := Describe(Unknown, "", "")
		res := newExplainResult(Classification{Cause: Unknown, Summary: summary, Remedy: remedy})
		res.Error = fmt.Sprintf(`invalid input line (want {"message": "...", "reason": "..."}): %v`, err)
		return res
	}
	return newExplainResult(Classify(in.Reason, in.Message))
}

// PrintExplanation writes the diagnosis for a person reading a terminal.
func PrintExplanation(w io.Writer, c Classification) {
	field := func(name, value string) {
		if value == "" {
			value = "-"
		}
		fmt.Fprintf(w, "%-10s %s\n", name+":", value)
	}
	fmt.Fprintf(w, "%s (%s)\n\n", c.Cause.Title(), c.Cause)
	field("certainty", "words (the kubelet's message alone; `bot diagnose` asks the registry)")
	field("image", c.Image)
	field("registry", c.Registry)
	field("runtime", string(c.Runtime))
	field("evidence", c.Evidence)
	fmt.Fprintln(w)
	field("summary", c.Summary)
	field("remedy", c.Remedy)
}
