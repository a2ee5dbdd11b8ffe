package slackapp

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/slack-go/slack"
	"sigs.k8s.io/yaml"
)

func TestParseCommand(t *testing.T) {
	diag := func(kind, name, ns string) Command {
		return Command{Kind: CommandDiagnose, WorkloadKind: kind, Name: name, Namespace: ns}
	}
	tests := []struct {
		text string
		want Command
	}{
		{"", Command{Kind: CommandHelp}},
		{"   ", Command{Kind: CommandHelp}},
		{"help", Command{Kind: CommandHelp}},
		{"HELP", Command{Kind: CommandHelp}},
		{"--help", Command{Kind: CommandHelp}},
		{"ui-new -h", Command{Kind: CommandHelp}},
		{"list", Command{Kind: CommandList}},
		{"list -n retail", Command{Kind: CommandList, Namespace: "retail"}},
		{"ui-new", diag("", "ui-new", "")},
		{"ui-new -n default", diag("", "ui-new", "default")},
		{"-n default ui-new", diag("", "ui-new", "default")},
		{"ui-new -n=default", diag("", "ui-new", "default")},
		{"ui-new -ndefault", diag("", "ui-new", "default")},
		{"ui-new --namespace default", diag("", "ui-new", "default")},
		{"ui-new --namespace=default", diag("", "ui-new", "default")},
		{"ui-new —namespace=default", diag("", "ui-new", "default")}, // autocorrected em dash
		{"ui-new –namespace default", diag("", "ui-new", "default")}, // en dash
		{"deployment/ui-new", diag("Deployment", "ui-new", "")},
		{"deploy/ui-new -n retail", diag("Deployment", "ui-new", "retail")},
		{"deployments.apps/ui-new", diag("Deployment", "ui-new", "")},
		{"sts/db", diag("StatefulSet", "db", "")},
		{"StatefulSet/db", diag("StatefulSet", "db", "")},
		{"ds/agent", diag("DaemonSet", "agent", "")},
		{"cj/report", diag("CronJob", "report", "")},
		{"job/migrate-42", diag("Job", "migrate-42", "")},
		{"po/ui-new-5d8f7c9b6-abcde", diag("Pod", "ui-new-5d8f7c9b6-abcde", "")},
		{"deployment/list", diag("Deployment", "list", "")},
		{"ui.new", diag("", "ui.new", "")},
		{"<http://ui.new|ui.new> -n retail", diag("", "ui.new", "retail")}, // Slack's auto-link
		{"<http://ui.new>", diag("", "ui.new", "")},
		{"\u00a0ui-new\u00a0-n\u00a0retail", diag("", "ui-new", "retail")}, // non-breaking spaces
		{"\tui-new\n", diag("", "ui-new", "")},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			got, err := ParseCommand(tt.text)
			if err != nil {
				t.Fatalf("ParseCommand(%q): %v", tt.text, err)
			}
			if got != tt.want {
				t.Errorf("ParseCommand(%q) = %+v, want %+v", tt.text, got, tt.want)
			}
		})
	}
}

func TestParseCommandErrors(t *testing.T) {
	tests := []struct {
		text    string
		want    error
		mention string // the message must say this
	}{
		{"ui-new --foo", ErrUnknownFlag, `"--foo"`},
		{"ui-new -x", ErrUnknownFlag, "-n NAMESPACE"},
		{"ui-new --", ErrUnknownFlag, `"--"`},
		{"ui-new -n", ErrFlagValue, "-n NAMESPACE"},
		{"ui-new --namespace", ErrFlagValue, "--namespace NAMESPACE"},
		{"ui-new -n -h", ErrFlagValue, "NAMESPACE"},
		{"ui-new --namespace=", ErrFlagValue, "NAMESPACE"},
		{"ui-new -n=", ErrFlagValue, "NAMESPACE"},
		{"ui-new -n a -n b", ErrDuplicateFlag, "once"},
		{"ui-new cart", ErrTooManyArgs, `"cart"`},
		{"list everything", ErrTooManyArgs, "list takes no argument"},
		{"help me", ErrTooManyArgs, "help takes no argument"},
		{"help -n x", ErrTooManyArgs, "help takes no flags"},
		{"-n retail", ErrMissingName, "/pullfix NAME -n retail"},
		{"deployment/", ErrMissingName, "KIND/NAME"},
		{"/ui-new", ErrUnknownKind, "KIND/NAME"},
		{"service/ui-new", ErrUnknownKind, "deployment, statefulset"},
		{"a/b/c", ErrInvalidName, "one '/'"},
		{"UI-New", ErrInvalidName, "lower-case"},
		{"ui_new", ErrInvalidName, "lower-case"},
		{"-ui", ErrUnknownFlag, "-ui"},
		{"ui-", ErrInvalidName, "start and end"},
		{strings.Repeat("a", 254), ErrInvalidName, "253"},
		{"ui-new -n Retail", ErrInvalidNamespace, `"Retail"`},
		{"ui-new -n team.a", ErrInvalidNamespace, "63"},
		{"ui-new -n " + strings.Repeat("n", 64), ErrInvalidNamespace, "63"},
		{strings.Repeat("x ", 600), ErrCommandTooLong, "1000"},
		{"ui-new \xff", ErrInvalidName, "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			got, err := ParseCommand(tt.text)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseCommand(%q) = %+v, %v; want %v", tt.text, got, err, tt.want)
			}
			var ce *CommandError
			if !errors.As(err, &ce) {
				t.Fatalf("%T is not a *CommandError", err)
			}
			if !strings.Contains(err.Error(), tt.mention) {
				t.Errorf("error %q does not mention %q", err, tt.mention)
			}
		})
	}
}

func TestCommandWorkload(t *testing.T) {
	for text, want := range map[string]string{"ui-new": "ui-new", "sts/db": "statefulset/db", "cj/x": "cronjob/x"} {
		c, err := ParseCommand(text)
		if err != nil || c.Workload() != want {
			t.Errorf("ParseCommand(%q).Workload() = %q, %v; want %q", text, c.Workload(), err, want)
		}
	}
}

// TestParseCommandFixtures parses the text of real slash-command bodies
// (shared fixtures) the way the HTTP handler receives them.
func TestParseCommandFixtures(t *testing.T) {
	want := map[string]struct {
		kind CommandKind
		err  error
	}{
		"01": {kind: CommandHelp},     // empty text
		"02": {kind: CommandDiagnose}, // "94070": a valid name
		"03": {kind: CommandHelp},     // empty text
		"04": {kind: CommandDiagnose}, // "test"
		"05": {kind: CommandHelp},     // empty text
		"06": {err: ErrInvalidName},   // "Hi": upper case
	}
	files, _ := filepath.Glob(filepath.Join("..", "..", "..", "shared", "data", "slack-payloads", "slash-commands", "*.txt"))
	if len(files) != len(want) {
		t.Fatalf("%d slash-command fixtures, want %d", len(files), len(want))
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		form, err := url.ParseQuery(string(body))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		w := want[filepath.Base(f)[:2]]
		c, err := ParseCommand(form.Get("text"))
		if w.err != nil {
			if !errors.Is(err, w.err) {
				t.Errorf("%s: text %q: %v, want %v", filepath.Base(f), form.Get("text"), err, w.err)
			}
			continue
		}
		if err != nil || c.Kind != w.kind {
			t.Errorf("%s: text %q: %+v, %v; want %s", filepath.Base(f), form.Get("text"), c, err, w.kind)
		}
	}
}

// TestManifest checks deploy/slack-app-manifest.yaml against Slack's
// manifest schema rules (facts/slack.md §8) and against the code: the
// command, its usage hint and the scopes the bot uses.
func TestManifest(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "deploy", "slack-app-manifest.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var m slack.Manifest
	if err := yaml.UnmarshalStrict(raw, &m); err != nil {
		t.Fatalf("manifest does not match slack-go's Manifest type: %v", err)
	}
	check := func(ok bool, format string, args ...any) {
		t.Helper()
		if !ok {
			t.Errorf(format, args...)
		}
	}
	di := m.Display
	check(len(di.Name) >= 1 && len(di.Name) <= 35, "display_information.name %q: 1..35 characters", di.Name)
	check(len(di.Description) <= 140, "description longer than 140")
	check(di.LongDescription == "" || len(di.LongDescription) >= 175 && len(di.LongDescription) <= 4000, "long_description must be 175..4000 characters, is %d", len(di.LongDescription))
	check(di.BackgroundColor == "" || regexp.MustCompile(`^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`).MatchString(di.BackgroundColor), "background_color %q", di.BackgroundColor)
	check(m.Features.BotUser.DisplayName != "" && len(m.Features.BotUser.DisplayName) <= 80, "bot_user.display_name required, ≤80")
	if len(m.Features.SlashCommands) != 1 {
		t.Fatalf("%d slash commands, want 1", len(m.Features.SlashCommands))
	}
	sc := m.Features.SlashCommands[0]
	check(sc.Command == "/pullfix", "command %q", sc.Command)
	check(sc.Description != "" && len(sc.Description) <= 2000, "command description")
	check(sc.UsageHint == CommandUsage, "usage_hint %q, want CommandUsage %q", sc.UsageHint, CommandUsage)
	check(sc.Url == "", "Socket Mode manifest must not set a command url")
	if it := m.Settings.Interactivity; it == nil || !it.IsEnabled || it.RequestUrl != "" {
		t.Errorf("interactivity = %+v: want enabled, no request_url (Socket Mode)", it)
	}
	check(m.Settings.SocketModeEnabled, "socket_mode_enabled must be true")
	for _, s := range []string{"chat:write", "commands", "usergroups:read", "channels:history", "groups:history"} {
		found := false
		for _, have := range m.OAuthConfig.Scopes.Bot {
			found = found || have == s
		}
		check(found, "bot scope %s missing", s)
	}
	check(len(m.OAuthConfig.Scopes.Bot) <= 255, "too many scopes")
}
