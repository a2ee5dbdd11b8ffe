package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
)

func TestExplainMessage(t *testing.T) {
	var out, errb bytes.Buffer
	msg := `Failed to pull image "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1": rpc error: code = NotFound desc = failed to pull and unpack image "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1": failed to resolve reference "public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1": public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1: not found`
	code := run(context.Background(), []string{"explain", msg, "--reason", "Failed"}, strings.NewReader(""), &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	// The runbook's own message: containerd's bare "not found" does not
	// say whether the repository or the tag is missing (issue #12).
	for _, want := range []string{"image_not_found", "Image not found (repository or tag)", "public.ecr.aws", "containerd", "evidence:", "remedy:", "certainty: words"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	for _, never := range []string{"tag_not_found", "repository exists"} {
		if strings.Contains(out.String(), never) {
			t.Errorf("output claims %q, which only the registry could say:\n%s", never, out.String())
		}
	}
}

func TestExplainStdin(t *testing.T) {
	var out, errb bytes.Buffer
	code := run(context.Background(), []string{"explain"}, strings.NewReader("Error: ErrImageNeverPull\n"), &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "never_pull") {
		t.Fatalf("exit %d, out %s, err %s", code, out.String(), errb.String())
	}
}

func TestExplainUsage(t *testing.T) {
	for _, args := range [][]string{
		{"explain", "--no-such-flag"},
		{"explain", "--jsonl", "a message"},
		{"explain", "--reason"},
	} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, strings.NewReader(""), &out, &errb); code != 2 {
			t.Errorf("run(%q) = %d, want 2", args, code)
		}
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"explain"}, strings.NewReader(""), &out, &errb); code != 2 {
		t.Errorf("empty stdin: exit %d, want 2", code)
	}
}

// TestExplainJSONL checks the contract: one object per input line, in
// order, a malformed line answered rather than dropped, and lines far past
// bufio.Scanner's 64 KiB limit.
func TestExplainJSONL(t *testing.T) {
	long := `Failed to pull image "nginx:1": ` + strings.Repeat("x", 2<<20) + ` toomanyrequests: slow down`
	lines := []string{
		jsonLine(t, `Failed to pull image "nginx:1.99": rpc error: code = Unknown desc = Error response from daemon: manifest for nginx:1.99 not found: manifest unknown: manifest unknown`, "Failed"),
		`{"message": "truncated`,
		"",
		jsonLine(t, long, ""),
		jsonLine(t, `Back-off pulling image "nginx:1"`, "BackOff"),
		`not json at all`,
		jsonLine(t, `Container image "app:dev" is not present with pull policy of Never`, "ErrImageNeverPull"),
	}
	want := []string{"tag_not_found", "unknown", "unknown", "rate_limited", "unknown", "unknown", "never_pull"}
	wantErr := []bool{false, true, true, false, false, true, false}

	var out, errb bytes.Buffer
	// The last line has no trailing newline: it still counts.
	in := strings.Join(lines, "\n")
	code := run(context.Background(), []string{"explain", "--jsonl"}, strings.NewReader(in), &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	got := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(got) != len(want) {
		t.Fatalf("%d output lines, want %d:\n%s", len(got), len(want), truncate(out.String()))
	}
	for i, line := range got {
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatalf("line %d is not JSON: %v", i, err)
		}
		if obj["cause"] != want[i] {
			t.Errorf("line %d cause = %v, want %s", i, obj["cause"], want[i])
		}
		for _, k := range []string{"cause", "summary", "remedy"} {
			if s, _ := obj[k].(string); s == "" {
				t.Errorf("line %d lacks %q", i, k)
			}
		}
		if obj["certainty"] != "words" {
			t.Errorf("line %d certainty = %v, want words (explain never probes)", i, obj["certainty"])
		}
		for _, k := range []string{"evidence", "image", "registry", "runtime"} {
			if _, ok := obj[k].(string); !ok {
				t.Errorf("line %d lacks the field %q", i, k)
			}
		}
		if _, has := obj["error"]; has != wantErr[i] {
			t.Errorf("line %d has error = %v, want %v", i, has, wantErr[i])
		}
	}
}

func jsonLine(t *testing.T, msg, reason string) string {
	t.Helper()
	b, err := json.Marshal(map[string]string{"message": msg, "reason": reason})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func truncate(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return s
}
