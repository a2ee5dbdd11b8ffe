package approval

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pullfix/pullfix/internal/watch/fix"
)

// TestBindingOffAndActAs: without a mapping the binding is nil and binds
// nothing (the approver is the Slack user, no identity in the context, no
// write guard, every click authorized); with one, ActAs names the
// Kubernetes identity beside the Slack user and carries it in the
// context, and an unmapped user is refused as a refusal (*fix.RefusedError),
// not a failure.
func TestBindingOffAndActAs(t *testing.T) {
	ctx := context.Background()
	off, err := NewBinding(nil, "")
	if err != nil || off != nil {
		t.Fatalf(`NewBinding(""): %v, %v; want nil, nil`, off, err)
	}
	c, who, err := off.ActAs(ctx, "U0ALICE01")
	if _, has := FromContext(c); err != nil || who != "<@U0ALICE01> (Slack)" || has {
		t.Errorf("off.ActAs = %q, %v (identity in ctx: %v)", who, err, has)
	}
	if off.PatcherOptions() != nil || off.AuthorizeFix(ctx, "U0BOB0001", "Deployment", "shop", "ui") != nil {
		t.Error("a nil binding guards writes or refuses clicks")
	}
	if Approver("") != "" {
		t.Errorf("Approver(\"\") = %q", Approver(""))
	}

	on, err := NewBinding(nil, "U0ALICE01=alice|shop-deployers")
	if err != nil || on == nil {
		t.Fatalf("NewBinding: %v, %v", on, err)
	}
	c, who, err = on.ActAs(ctx, "U0ALICE01")
	id, has := FromContext(c)
	if err != nil || !has || id.User != "alice" || !strings.HasPrefix(who, "<@U0ALICE01> (Slack) as ") || !strings.Contains(who, `"alice"`) {
		t.Errorf("ActAs = %q, %v, identity %+v (%v)", who, err, id, has)
	}
	if len(on.PatcherOptions()) != 1 {
		t.Errorf("PatcherOptions: %d, want the one write guard", len(on.PatcherOptions()))
	}
	_, _, err = on.ActAs(ctx, "U0BOB0001")
	var refused *fix.RefusedError
	if !errors.As(err, &refused) || !fix.IsRefusal(err) || !strings.Contains(err.Error(), "U0BOB0001") {
		t.Errorf("ActAs(unmapped) = %v, want a *fix.RefusedError naming the user", err)
	}
	if err := on.WriteGuard(ctx, fix.WriteIntent{Namespace: "shop", Workload: fix.Workload{Kind: "Deployment", Name: "ui"}}); err == nil ||
		!strings.Contains(err.Error(), "no Kubernetes identity") {
		t.Errorf("WriteGuard without an identity = %v, want a refusal", err)
	}
}
