package diagnose

import (
	"slices"
	"strings"
	"testing"
)

// FuzzClassify: any text, no panic; the evidence is always verbatim and
// the cause always one of the public values.
func FuzzClassify(f *testing.F) {
	for _, s := range loadSamples(f) {
		f.Add(s.Reason, s.Message)
	}
	for _, h := range loadHeldout(f) {
		f.Add(h.Reason, h.Message)
	}
	f.Add("InvalidImageName", "")
	f.Add("", `Failed to pull image "a": [`)
	f.Add("", "Failed to pull image \"x\": [rpc error: a, rpc error: b")
	f.Fuzz(func(t *testing.T, reason, msg string) {
		c := Classify(reason, msg)
		if !slices.Contains(Causes(), c.Cause) {
			t.Fatalf("cause %q is not one of Causes()", c.Cause)
		}
		if !strings.Contains(msg, c.Evidence) {
			t.Fatalf("evidence %q is not a substring of %q", c.Evidence, msg)
		}
		if c.Summary == "" || c.Remedy == "" {
			t.Fatalf("empty summary or remedy for %q", msg)
		}
		if c.Certainty != CertaintyWords {
			t.Fatalf("certainty %q offline, want words", c.Certainty)
		}
	})
}

// FuzzCheckReference: no panic, and the verdict agrees with the kubelet's
// parser (nil exactly when it accepts).
func FuzzCheckReference(f *testing.F) {
	for _, s := range loadSamples(f) {
		if img := extractImage(s.Message); img != "" {
			f.Add(img)
		}
	}
	f.Add("Nginx:1")
	f.Add("a//b@sha256:")
	f.Fuzz(func(t *testing.T, ref string) {
		err := CheckReference(ref)
		if err == nil {
			return
		}
		re, ok := err.(*ReferenceError)
		if !ok || re.Reason == "" || re.Ref != ref {
			t.Fatalf("CheckReference(%q) = %#v, want a *ReferenceError with a reason", ref, err)
		}
		_ = registryOf(ref)
	})
}
