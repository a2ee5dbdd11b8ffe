package console

import (
	"strings"
	"testing"

	"github.com/pullfix/pullfix/internal/diagnose"
)

// TestWriteDiagnosisCertainty: the console (and `bot diagnose`) says who
// decided the cause: the registry, or the kubelet's words alone.
func TestWriteDiagnosisCertainty(t *testing.T) {
	for _, tc := range []struct {
		certainty diagnose.Certainty
		want      string
	}{
		{diagnose.CertaintyRegistry, "certainty: registry"},
		{diagnose.CertaintyWords, "certainty: words"},
	} {
		var b strings.Builder
		WriteDiagnosis(&b, "default/Deployment ui-new", 1, diagnose.Diagnosis{Cause: diagnose.RepoNotFound, Summary: "s", Certainty: tc.certainty})
		if !strings.Contains(b.String(), tc.want) {
			t.Errorf("certainty %s: output lacks %q:\n%s", tc.certainty, tc.want, b.String())
		}
	}
}
