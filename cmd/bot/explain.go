package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/pullfix/pullfix/internal/console"
	"github.com/pullfix/pullfix/internal/diagnose"
)

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
		if err := diagnose.ExplainJSONL(ctx, stdin, stdout); err != nil {
			fmt.Fprintf(stderr, "bot explain: %v\n", err)
			return 1
		}
		return 0
	}

	msg := strings.Join(positional, " ")
	if len(positional) == 0 {
		if console.IsTerminal(stdin) {
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
	diagnose.PrintExplanation(stdout, diagnose.Classify(*reason, msg))
	return 0
}
