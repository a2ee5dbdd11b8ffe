package slackapp

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// CommandKind is what a /pullfix invocation asks for.
type CommandKind string

// Command kinds.
const (
	// CommandHelp: "/pullfix", "/pullfix help", "-h", "--help".
	CommandHelp CommandKind = "help"
	// CommandList: "/pullfix list [-n NAMESPACE]" — open incidents.
	CommandList CommandKind = "list"
	// CommandDiagnose: "/pullfix [KIND/]NAME [-n NAMESPACE]" — diagnose now.
	CommandDiagnose CommandKind = "diagnose"
)

// Command is a parsed /pullfix invocation.
type Command struct {
	Kind CommandKind
	// WorkloadKind is the canonical kind ("Deployment", "StatefulSet",
	// "DaemonSet", "CronJob", "Job", "Pod") when the person typed KIND/NAME,
	// and "" for a bare NAME (the caller decides: watch.ParseWorkload treats
	// a bare name as a Deployment).
	WorkloadKind string
	// Name is the workload's name (CommandDiagnose only).
	Name string
	// Namespace is the -n/--namespace value; "" when not given (the caller
	// searches its namespaces and reports an ambiguous name).
	Namespace string
}

// Workload renders the workload the way watch.ParseWorkload reads it:
// "deployment/ui-new", or "ui-new" when no kind was typed.
func (c Command) Workload() string {
	if c.WorkloadKind == "" {
		return c.Name
	}
	return strings.ToLower(c.WorkloadKind) + "/" + c.Name
}

// CommandUsage is the one-line grammar, also the manifest's usage hint.
const CommandUsage = "[KIND/]NAME [-n NAMESPACE] | list [-n NAMESPACE] | help"

// maxCommandText bounds the text parsed; Slack allows far longer, nobody
// types a workload name that long.
const maxCommandText = 1000

// Errors from ParseCommand, wrapped in a *CommandError.
var (
	ErrUnknownFlag      = errors.New("unknown flag")
	ErrFlagValue        = errors.New("flag needs a value")
	ErrDuplicateFlag    = errors.New("flag given twice")
	ErrTooManyArgs      = errors.New("too many arguments")
	ErrMissingName      = errors.New("missing workload name")
	ErrInvalidName      = errors.New("invalid workload name")
	ErrInvalidNamespace = errors.New("invalid namespace")
	ErrUnknownKind      = errors.New("unknown workload kind")
	ErrCommandTooLong   = errors.New("command too long")
)

// CommandError says what is wrong with a /pullfix text, in words fit for
// an ephemeral reply. errors.Is(err, ErrUnknownFlag) etc. select the kind.
type CommandError struct {
	Err    error  // one of the Err* sentinels above
	Arg    string // the offending word, if any
	Reason string // what to do instead
}

func (e *CommandError) Error() string {
	s := e.Err.Error()
	if e.Arg != "" {
		s += fmt.Sprintf(" %q", shorten(e.Arg, 80))
	}
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

func (e *CommandError) Unwrap() error { return e.Err }

func cmdErr(sentinel error, arg, format string, args ...any) error {
	return &CommandError{Err: sentinel, Arg: arg, Reason: fmt.Sprintf(format, args...)}
}

// slackLink matches Slack's auto-formatted links "<http://ui.new|ui.new>"
// and "<http://ui.new>": with should_escape=false Slack still linkifies
// words that look like hosts (a name with a dot).
var slackLink = regexp.MustCompile(`<([^<>|]*)(?:\|([^<>]*))?>`)

var commandUnescaper = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&", "\u2014", "--", "\u2013", "--", "\u2212", "-")

// normalizeCommandText undoes what Slack and phone keyboards do to typed
// text: HTML entities (&amp; &lt; &gt;), auto-links, and the em/en dash
// that autocorrect makes of "--".
func normalizeCommandText(s string) string {
	s = slackLink.ReplaceAllStringFunc(s, func(m string) string {
		sub := slackLink.FindStringSubmatch(m)
		if sub[2] != "" {
			return sub[2]
		}
		target := sub[1]
		for _, p := range []string{"http://", "https://", "mailto:"} {
			target = strings.TrimPrefix(target, p)
		}
		return target
	})
	return commandUnescaper.Replace(s)
}

// ParseCommand parses the text after "/pullfix" (Slack's `text` field):
//
//	(empty) | help | -h | --help          → CommandHelp
//	list [-n NAMESPACE]                    → CommandList
//	[KIND/]NAME [-n NAMESPACE]             → CommandDiagnose
//
// -n accepts "-n ns", "-n=ns", "-nns", "--namespace ns" and
// "--namespace=ns", before or after the name. KIND is one of deployment
// (deploy), statefulset (sts), daemonset (ds), cronjob (cj), job, pod (po),
// optionally plural or with a group ("deployments.apps"). A workload
// literally named "list" or "help" is reached as "deployment/list". Names
// must be DNS-1123 subdomains, namespaces DNS-1123 labels. Every error is a
// *CommandError whose message says what to type instead.
func ParseCommand(text string) (Command, error) {
	if len(text) > maxCommandText {
		return Command{}, cmdErr(ErrCommandTooLong, "", "at most %d characters", maxCommandText)
	}
	if !utf8.ValidString(text) {
		return Command{}, cmdErr(ErrInvalidName, "", "the text is not valid UTF-8")
	}
	words := strings.Fields(normalizeCommandText(text))
	var (
		args      []string
		namespace string
		nsSet     bool
		help      bool
	)
	setNS := func(flag, v string) error {
		if nsSet {
			return cmdErr(ErrDuplicateFlag, flag, "give the namespace once")
		}
		if v == "" {
			return cmdErr(ErrFlagValue, flag, "use %s NAMESPACE", flag)
		}
		if err := validNamespace(v); err != nil {
			return err
		}
		namespace, nsSet = v, true
		return nil
	}
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "-h" || w == "--help" || w == "-help":
			help = true
		case w == "-n" || w == "--namespace" || w == "-namespace":
			if i+1 >= len(words) || strings.HasPrefix(words[i+1], "-") {
				return Command{}, cmdErr(ErrFlagValue, w, "use %s NAMESPACE", w)
			}
			if err := setNS(w, words[i+1]); err != nil {
				return Command{}, err
			}
			i++
		case strings.HasPrefix(w, "--namespace="), strings.HasPrefix(w, "-namespace="):
			flag, v, _ := strings.Cut(w, "=")
			if err := setNS(flag, v); err != nil {
				return Command{}, err
			}
		case strings.HasPrefix(w, "-n"):
			// "-n=ns" or kubectl's glued "-nns".
			v := strings.TrimPrefix(strings.TrimPrefix(w, "-n"), "=")
			if err := setNS("-n", v); err != nil {
				return Command{}, err
			}
		case w == "--" || w == "-":
			return Command{}, cmdErr(ErrUnknownFlag, w, "flags are -n NAMESPACE and --help")
		case strings.HasPrefix(w, "-"):
			return Command{}, cmdErr(ErrUnknownFlag, w, "flags are -n NAMESPACE (or --namespace=NAMESPACE) and --help")
		default:
			args = append(args, w)
		}
	}
	if help {
		return Command{Kind: CommandHelp}, nil
	}
	switch {
	case len(args) == 0 && !nsSet:
		return Command{Kind: CommandHelp}, nil
	case len(args) == 0:
		return Command{}, cmdErr(ErrMissingName, "", "name the workload: /pullfix NAME -n %s", namespace)
	case len(args) > 1:
		if strings.EqualFold(args[0], "list") || strings.EqualFold(args[0], "help") {
			return Command{}, cmdErr(ErrTooManyArgs, args[1], "%s takes no argument (list accepts -n NAMESPACE)", strings.ToLower(args[0]))
		}
		return Command{}, cmdErr(ErrTooManyArgs, args[1], "give one workload: /pullfix [KIND/]NAME [-n NAMESPACE]")
	}
	switch a := args[0]; {
	case strings.EqualFold(a, "help"):
		if nsSet {
			return Command{}, cmdErr(ErrTooManyArgs, "-n", "help takes no flags")
		}
		return Command{Kind: CommandHelp}, nil
	case strings.EqualFold(a, "list"):
		return Command{Kind: CommandList, Namespace: namespace}, nil
	}
	kind, name, err := parseWorkloadRef(args[0])
	if err != nil {
		return Command{}, err
	}
	return Command{Kind: CommandDiagnose, WorkloadKind: kind, Name: name, Namespace: namespace}, nil
}

// parseWorkloadRef splits "KIND/NAME" or "NAME" and checks both parts.
func parseWorkloadRef(s string) (kind, name string, err error) {
	if strings.Count(s, "/") > 1 {
		return "", "", cmdErr(ErrInvalidName, s, "write KIND/NAME with one '/', e.g. deployment/ui-new")
	}
	k, n, hasKind := strings.Cut(s, "/")
	if !hasKind {
		n = s
	} else {
		if k == "" {
			return "", "", cmdErr(ErrUnknownKind, s, "write KIND/NAME, e.g. deployment/ui-new")
		}
		if kind, err = canonicalKind(k); err != nil {
			return "", "", err
		}
	}
	if n == "" {
		return "", "", cmdErr(ErrMissingName, s, "write KIND/NAME, e.g. deployment/ui-new")
	}
	if !isDNS1123Subdomain(n) {
		return "", "", cmdErr(ErrInvalidName, n, "names are lower-case letters, digits, '-' and '.', start and end alphanumeric, at most 253 characters")
	}
	return kind, n, nil
}

// canonicalKind maps what people type (as kubectl accepts it) to the kind.
func canonicalKind(k string) (string, error) {
	base, _, _ := strings.Cut(strings.ToLower(k), ".")
	switch base {
	case "deployment", "deployments", "deploy":
		return "Deployment", nil
	case "statefulset", "statefulsets", "sts":
		return "StatefulSet", nil
	case "daemonset", "daemonsets", "ds":
		return "DaemonSet", nil
	case "cronjob", "cronjobs", "cj":
		return "CronJob", nil
	case "job", "jobs":
		return "Job", nil
	case "pod", "pods", "po":
		return "Pod", nil
	}
	return "", cmdErr(ErrUnknownKind, k, "use deployment, statefulset, daemonset, cronjob, job or pod")
}

func validNamespace(ns string) error {
	if !isDNS1123Label(ns) {
		return cmdErr(ErrInvalidNamespace, ns, "namespaces are lower-case letters, digits and '-', start and end alphanumeric, at most 63 characters")
	}
	return nil
}

// isDNS1123Label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 (Kubernetes
// namespace names).
func isDNS1123Label(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return false
		}
	}
	return true
}

// isDNS1123Subdomain: dot-separated [a-z0-9]([-a-z0-9]*[a-z0-9])? parts,
// at most 253 in all — Kubernetes' rule for object names (Deployments,
// Pods, Secrets), which, unlike DNS, does not cap each part at 63.
func isDNS1123Subdomain(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for l := range strings.SplitSeq(s, ".") {
		if l == "" {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
			if !alnum && (c != '-' || i == 0 || i == len(l)-1) {
				return false
			}
		}
	}
	return true
}
