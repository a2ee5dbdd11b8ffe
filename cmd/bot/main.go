// Command bot is pullfix: it finds out why a pod cannot pull its image, says
// so in Slack (or on the console), and patches the workload once an approver
// agrees.
//
//	bot [run]                          watch the cluster (Slack when tokens are set, console otherwise)
//	bot diagnose deployment/NAME [-n NS]  one-shot diagnosis against the current kubeconfig
//	bot explain [MESSAGE] | --jsonl    classify a kubelet message offline
//	bot version                        print the version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is stamped at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches a subcommand and returns the process exit code: 0 success,
// 1 failure, 2 usage error.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "pullfix %s\n", version)
		return 0
	case "explain":
		return runExplain(ctx, args, stdin, stdout, stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		if sub, ok := subcommands[cmd]; ok {
			return sub(ctx, args, stdin, stdout, stderr)
		}
		fmt.Fprintf(stderr, "bot: unknown command %q\n\n", cmd)
		usage(stderr)
		return 2
	}
}

// subcommands holds the commands registered by other files of this package
// (run, diagnose), so each lives beside its own flags.
var subcommands = map[string]func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int{}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  bot [run]                              watch the cluster and report image-pull failures
  bot diagnose deployment/NAME [-n NS]   diagnose one workload now, no Slack
  bot explain "MESSAGE" [--reason R]     classify a kubelet message offline
  bot explain --jsonl < in.jsonl         one JSON diagnosis per input line {"message","reason"}
  bot version                            print the version
`)
}
