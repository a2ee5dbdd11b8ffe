package slackapp

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// FuzzParseCommand: any text a person (or a client) sends gives either a
// well-formed Command or a *CommandError with a message — never a panic.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"", "help", "list", "list -n retail", "ui-new", "ui-new -n default", "-n default ui-new",
		"deployment/ui-new --namespace=retail", "sts/db -nretail", "ui-new —namespace x",
		"<http://ui.new|ui.new>", "a/b/c", "ui-new --", "-n", "UI", "\xff", "&lt;x&gt;", "ui-new -n a -n b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		c, err := ParseCommand(text)
		if err != nil {
			var ce *CommandError
			if !errors.As(err, &ce) || ce.Err == nil || err.Error() == "" {
				t.Fatalf("ParseCommand(%q): error %v is not a *CommandError with a kind", text, err)
			}
			if c != (Command{}) {
				t.Fatalf("ParseCommand(%q): error with a non-zero command %+v", text, c)
			}
			return
		}
		switch c.Kind {
		case CommandHelp:
			if c != (Command{Kind: CommandHelp}) {
				t.Fatalf("help with fields: %+v", c)
			}
		case CommandList:
			if c.Name != "" || c.WorkloadKind != "" || (c.Namespace != "" && !isDNS1123Label(c.Namespace)) {
				t.Fatalf("bad list command %+v", c)
			}
		case CommandDiagnose:
			if !isDNS1123Subdomain(c.Name) || (c.Namespace != "" && !isDNS1123Label(c.Namespace)) {
				t.Fatalf("ParseCommand(%q) accepted invalid names: %+v", text, c)
			}
			if c.WorkloadKind != "" {
				if k, err := canonicalKind(c.WorkloadKind); err != nil || k != c.WorkloadKind {
					t.Fatalf("kind %q is not canonical", c.WorkloadKind)
				}
			}
			// What Workload() renders parses back to the same workload.
			again, err := ParseCommand(c.Workload())
			if err != nil || again.Name != c.Name || again.WorkloadKind != c.WorkloadKind {
				t.Fatalf("Workload() %q does not parse back: %+v %v", c.Workload(), again, err)
			}
		default:
			t.Fatalf("unknown kind %q", c.Kind)
		}
	})
}

// FuzzDecodeAction: any button value (forged by a client, another app's,
// truncated) decodes to a valid ActionValue or a *ValueError; a decoded
// value re-encodes to exactly the input (one encoding per value, so
// nothing can be smuggled in a second spelling).
func FuzzDecodeAction(f *testing.F) {
	for _, s := range []string{
		"v1|prod-eu|inc-7f3a9c|set_image|c1", "v1|prod|inc|recheck|", "v1|prod%7Ceu|a%7Cb|dismiss|",
		"v1|prod|inc|add_secret|regcred", "v2|x|y|z|", "v1|||||", "v1|%zz|x|recheck|", "click_me_123", "",
	} {
		f.Add(s)
	}
	files, _ := filepath.Glob(filepath.Join("..", "..", "..", "shared", "data", "slack-payloads", "block-actions", "*.json"))
	for _, fv := range fixtureValues(f, files) {
		f.Add(fv.value)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := DecodeAction(s)
		if err != nil {
			var ve *ValueError
			if !errors.As(err, &ve) || !errors.Is(err, ErrMalformedValue) || ve.Reason == "" {
				t.Fatalf("DecodeAction(%q): %v is not a *ValueError wrapping ErrMalformedValue", s, err)
			}
			if v != (ActionValue{}) {
				t.Fatalf("error with a non-zero value %+v", v)
			}
			return
		}
		if err := v.Validate(); err != nil {
			t.Fatalf("decoded an invalid value %+v: %v", v, err)
		}
		if enc := EncodeAction(v); enc != s {
			t.Fatalf("DecodeAction(%q) = %+v, which encodes as %q", s, v, enc)
		}
		if v.Action.IsFix() && (v.Arg == "" || strings.ContainsAny(v.Arg, "/:@")) {
			t.Fatalf("fix argument %q could name an image", v.Arg)
		}
	})
}

// FuzzRender: whatever strings the cluster, the kubelet or a registry
// supply, the incident message stays within Slack's limits and its
// buttons decode.
func FuzzRender(f *testing.F) {
	f.Add("prod-eu", "ui-new", "retail", "public.ecr.aws/x:1", "not found", "c1", "regcred", uint8(0))
	f.Add(strings.Repeat("c", 300), strings.Repeat("n", 300), "", strings.Repeat("é", 4000), strings.Repeat("`<&>", 2000), "C1", "", uint8(3))
	f.Fuzz(func(t *testing.T, cluster, name, ns, image, evidence, candID, secret string, state uint8) {
		states := []State{StateOpen, StateFixing, StateResolved, StateStillFailing, StateDismissed, StateSnoozed}
		in := MessageInput{
			Cluster: cluster, Namespace: ns, Kind: "Deployment", Name: name, Container: name, Image: image,
			PodCount: len(evidence), IncidentID: name, State: states[int(state)%len(states)],
			FixImage: image, Actor: "U0X", ProvenSecrets: []string{secret},
			Diagnosis: diagnose.Diagnosis{
				Cause: diagnose.Causes()[len(evidence)%len(diagnose.Causes())], Summary: evidence, Remedy: evidence,
				Evidence:   []diagnose.Evidence{{Source: diagnose.FromKubelet, Text: evidence}, {Source: diagnose.FromProbe, Text: image}},
				Candidates: []diagnose.Candidate{{ID: candID, Image: image, Kind: diagnose.CandidateTag, Reason: evidence}},
				Probes:     []diagnose.ProbeStep{{Request: "HEAD " + image, Result: evidence}},
			},
		}
		m := Render(in)
		if err := m.Validate(); err != nil {
			t.Fatalf("Render: %v", err)
		}
		if !utf8.ValidString(m.Text) && utf8.ValidString(cluster+name+ns+image+evidence) {
			t.Fatalf("fallback text is not UTF-8")
		}
		for _, b := range buttonsOf(m) {
			if _, err := DecodeClick(cluster, b.ActionID, b.Value); err != nil {
				t.Fatalf("rendered button %q does not decode: %v", b.Text.Text, err)
			}
		}
		g := RenderGroup(GroupInput{Cluster: cluster, GroupID: name, Diagnosis: in.Diagnosis,
			Workloads: []GroupWorkload{{Namespace: ns, Kind: "Deployment", Name: name, Image: image}}})
		if err := g.Validate(); err != nil {
			t.Fatalf("RenderGroup: %v", err)
		}
		u := RenderThreadUpdate(ThreadUpdate{Cluster: cluster, Namespace: ns, Kind: "Deployment", Name: name, Event: UpdatePatched,
			OldImage: image, NewImage: image, Patch: evidence, Note: evidence})
		if err := u.Validate(); err != nil {
			t.Fatalf("RenderThreadUpdate: %v", err)
		}
		if err := RenderError(evidence).Validate(); err != nil {
			t.Fatalf("RenderError: %v", err)
		}
	})
}
