package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"

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
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if incs == nil {
			incs = []watch.Incident{}
		}
		if err := enc.Encode(incs); err != nil {
			return 1
		}
		return 0
	}
	if len(incs) == 0 {
		fmt.Fprintf(stdout, "✅ %s in %s: no container is failing to pull its image\n", wl, *ns)
		return 0
	}
	for _, inc := range incs {
		var b strings.Builder
		k := inc.Key
		console.WriteDiagnosis(&b, fmt.Sprintf("%s/%s %s, container %s, cluster %s", k.Namespace, k.Kind, k.Name, k.Container, k.Cluster), len(inc.Pods), *inc.Diagnosis)
		io.WriteString(stdout, b.String())
	}
	return 0
}
