package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// explainResult is one line of `bot explain --jsonl`: the classification,
// plus the title for people and an error when the input line was not a
// JSON object.
// Every field is always present (empty when unknown), so a consumer of the
// JSON lines never has to tell "absent" from "empty".
type explainResult struct {
	Cause diagnose.Cause `json:"cause"`
	// Certainty is always "words": explain never asks a registry.
	Certainty diagnose.Certainty `json:"certainty"`
	Title     string             `json:"title"`
	Summary   string             `json:"summary"`
	Remedy    string             `json:"remedy"`
	Evidence  string             `json:"evidence"`
	Image     string             `json:"image"`
	Registry  string             `json:"registry"`
	Runtime   diagnose.Runtime   `json:"runtime"`
	Error     string             `json:"error,omitempty"`
}

func newExplainResult(c diagnose.Classification) explainResult {
	return explainResult{
		Cause: c.Cause, Certainty: diagnose.CertaintyWords, Title: c.Cause.Title(), Summary: c.Summary, Remedy: c.Remedy,
		Evidence: c.Evidence, Image: c.Image, Registry: c.Registry, Runtime: c.Runtime,
	}
}

// explainInput is one line of `bot explain --jsonl` input.
type explainInput struct {
	Message string `json:"message"`
	Reason  string `json:"reason"`
}

// runExplain classifies a kubelet message offline: no network, no cluster.
//
//	bot explain "MESSAGE" [--reason R]   readable diagnosis
//	bot explain < message.txt             the message from stdin (not a terminal)
//	bot explain --jsonl < in.jsonl        one JSON object per input line, in order
//
// In --jsonl mode every input line yields exactly one output object; a blank
// line or one that is not a JSON object yields {"cause":"unknown","error":…}
// rather than stopping the run, so the output can be zipped with the input.
func runExplain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	reason := fs.String("reason", "", "the kubelet's reason (Failed, BackOff, ErrImagePull, ImagePullBackOff, InvalidImageName, ErrImageNeverPull, InspectFailed)")
	jsonl := fs.Bool("jsonl", false, `read JSON lines {"message": "...", "reason": "..."} on stdin, write one JSON object per line`)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: bot explain \"MESSAGE\" [--reason R]\n       bot explain [--reason R] < message.txt\n       bot explain --jsonl < in.jsonl\n")
		fs.PrintDefaults()
	}
	// Flags may follow the message: `bot explain "msg" --reason Failed`.
	var positional []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		rest = fs.Args()[1:]
	}

	if *jsonl {
		if len(positional) > 0 {
			fmt.Fprintln(stderr, "bot explain: --jsonl reads stdin and takes no message argument")
			return 2
		}
		if err := explainJSONL(ctx, stdin, stdout); err != nil {
			fmt.Fprintf(stderr, "bot explain: %v\n", err)
			return 1
		}
		return 0
	}

	msg := strings.Join(positional, " ")
	if len(positional) == 0 {
		if readerIsTerminal(stdin) {
			fs.Usage()
			return 2
		}
		b, err := io.ReadAll(stdin)
		if err != nil {
			fmt.Fprintf(stderr, "bot explain: reading stdin: %v\n", err)
			return 1
		}
		msg = strings.TrimRight(string(b), "\r\n")
	}
	if strings.TrimSpace(msg) == "" && *reason == "" {
		fmt.Fprintln(stderr, "bot explain: no message to explain")
		fs.Usage()
		return 2
	}
	printExplanation(stdout, diagnose.Classify(*reason, msg))
	return 0
}

// explainJSONL streams: one line in, one object out, so a long input is
// never held whole and output order follows input order. Lines may be of
// any length (a bufio.Reader, not a Scanner with its 64 KiB token limit).
func explainJSONL(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
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
func explainLine(line []byte) explainResult {
	var in explainInput
	if len(bytes.TrimSpace(line)) == 0 {
		summary, remedy := diagnose.Describe(diagnose.Unknown, "", "")
		res := newExplainResult(diagnose.Classification{Cause: diagnose.Unknown, Summary: summary, Remedy: remedy})
		res.Error = `empty input line (want {"message": "...", "reason": "..."})`
		return res
	}
	if err := json.Unmarshal(line, &in); err != nil {
		summary, remedy := diagnose.Describe(diagnose.Unknown, "", "")
		res := newExplainResult(diagnose.Classification{Cause: diagnose.Unknown, Summary: summary, Remedy: remedy})
		res.Error = fmt.Sprintf(`invalid input line (want {"message": "...", "reason": "..."}): %v`, err)
		return res
	}
	return newExplainResult(diagnose.Classify(in.Reason, in.Message))
}

// printExplanation writes the diagnosis for a person reading a terminal.
func printExplanation(w io.Writer, c diagnose.Classification) {
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

// readerIsTerminal reports whether r is a character device (a person typing),
// in which case reading a message from it would just hang.
func readerIsTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
