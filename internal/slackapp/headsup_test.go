package slackapp

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestRenderHeadsUp(t *testing.T) {
	w := "image public.ecr.aws/aws-containers/retailing-store-sample-ui:1.2.1: repository not found at public.ecr.aws; " +
		"public.ecr.aws/aws-containers/retail-store-sample-ui:1.2.1 exists"
	m := RenderHeadsUp(HeadsUpInput{Cluster: "prod", Namespace: "shop", Kind: "Deployment", Name: "ui-new", User: "alice", Warnings: []string{w}})
	if m.Text != "Heads-up: Deployment ui-new was applied with an image that cannot be pulled" {
		t.Errorf("text %q", m.Text)
	}
	b, err := json.Marshal(m.Blocks)
	if err != nil {
		t.Fatal(err)
	}
	body := string(b)
	for _, want := range []string{"`shop/ui-new`", "`alice`", "• " + w, "prod · shop · checked at admission"} {
		if !strings.Contains(body, want) {
			t.Errorf("blocks lack %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, `"type":"actions"`) {
		t.Error("a heads-up carries buttons; there is no incident to act on yet")
	}
	r := RenderHeadsUpReply("applied by alice with warnings: "+w, time.Date(2026, 12, 6, 17, 2, 0, 0, time.UTC))
	if want := ":warning: pullfix warned at apply (17:02 UTC): applied by alice with warnings: " + w; r.Text != want {
		t.Errorf("reply %q, want %q", r.Text, want)
	}
}
