package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/pullfix/pullfix/internal/console"
	"github.com/pullfix/pullfix/internal/watch"
)

// runDiagnose is `bot diagnose KIND/NAME [-n NS] [--json]`: one workload,
// now, against the current kubeconfig; no Slack.
func runDiagnose(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("diagnose", flag.ContinueOnError)
	fs.SetOutput(stderr)
	ns := fs.String("n", "default", "namespace")
	fs.StringVar(ns, "namespace", "default", "namespace")
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	// Accept flags before or after the workload, as kubectl does.
	var positional []string
	for len(args) > 0 {
		if err := fs.Parse(args); err != nil {
			return 2
		}
		args = fs.Args()
		if len(args) > 0 {
			positional = append(positional, args[0])
			args = args[1:]
		}
	}
	if len(positional) != 1 {
		fmt.Fprintln(stderr, "usage: bot diagnose KIND/NAME [-n NAMESPACE] [--json]   e.g. bot diagnose deployment/ui-new -n default")
		return 2
	}
	wl, err := watch.ParseWorkload(positional[0])
	if err != nil {
		fmt.Fprintf(stderr, "bot diagnose: %v\n", err)
		return 2
	}
	env, code := setup(stderr)
	if code != 0 {
		return code
	}
	incs, err := watch.DiagnoseWorkload(ctx, env.cs, env.diag, env.log, env.cfg.Cluster, *ns, wl)
	if err != nil {
		fmt.Fprintf(stderr, "bot diagnose: %v\n", err)
		return 1
	}
	if err := console.PrintDiagnoses(stdout, wl.String()+" in "+*ns, incs, *asJSON); err != nil {
		return 1
	}
	return 0
}
