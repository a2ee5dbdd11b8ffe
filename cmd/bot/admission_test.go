package main

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/pullfix/pullfix/internal/admission"
	"github.com/pullfix/pullfix/internal/testenv/chart"
	"github.com/pullfix/pullfix/internal/testenv/controlplane"
	"github.com/pullfix/pullfix/internal/testenv/registries"
	"github.com/pullfix/pullfix/internal/testenv/slackemu"
)

// TestAdmissionHeadsUpThreadedIntoIncident runs the bot with the chart's
// admission.enabled (its RBAC, its environment, its webhook configuration;
// the API server reaches the webhook by URL on loopback instead of the
// Service): the bot makes its CA, patches the caBundle, and answers the
// runbook's ui-new apply with the warning; the workload is applied anyway,
// so one heads-up goes to Slack; its pods then fail, and the incident's
// message gets the heads-up in its thread.
func TestAdmissionHeadsUpThreadedIntoIncident(t *testing.T) {
	reg := registries.New(t)
	registries.SeedRunbook(t, reg)
	e := newE2E(t, world{mirrors: map[string]string{registries.PublicECR: reg.Host},
		values: map[string]any{"admission": map[string]any{"enabled": true}}})
	ctx := t.Context()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for k, want := range map[string]string{"PULLFIX_ADMISSION": "true", "PULLFIX_ADMISSION_BUDGET": "2s"} {
		if e.env[k] != want {
			t.Fatalf("the chart's Deployment sets %s=%q, want %q", k, e.env[k], want)
		}
	}
	e.env["PULLFIX_ADMISSION_ADDR"] = addr
	e.env["PULLFIX_ADMISSION_HOSTS"] = "127.0.0.1"

	vwcs := chart.Find(e.objs, "ValidatingWebhookConfiguration")
	if len(vwcs) != 1 {
		t.Fatalf("the chart rendered %d webhook configurations", len(vwcs))
	}
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(vwcs[0].Object, &vwc); err != nil {
		t.Fatal(err)
	}
	url := "https://" + addr + admission.Path
	vwc.Webhooks[0].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url}
	api := e.admin.AdmissionregistrationV1().ValidatingWebhookConfigurations()

	// Helm's order: the Deployment first, the webhook configuration last;
	// the bot sets its caBundle once it exists (its first check 10 s in).
	startBot(t, e)
	if _, err := api.Create(ctx, &vwc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = api.Delete(context.Background(), vwc.Name, metav1.DeleteOptions{}) })
	poll(t, 60*time.Second, "the bot to put its CA in the webhook configuration", func(ctx context.Context) (bool, error) {
		got, err := api.Get(ctx, vwc.Name, metav1.GetOptions{})
		return err == nil && len(got.Webhooks[0].ClientConfig.CABundle) > 0, nil
	})

	warn := &controlplane.Warnings{}
	cfg := rest.CopyConfig(cp.AdminConfig())
	cfg.WarningHandler = warn
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	one := int32(1)
	labels := map[string]string{"app": "ui-new"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "ui-new", Labels: labels},
		Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "ui", Image: badImage}}, TerminationGracePeriodSeconds: new(int64(1))}}},
	}
	want := "image " + badImage + ": repository not found at public.ecr.aws; " + goodImage + " exists"
	// The API server picks up a new webhook configuration asynchronously:
	// dry runs (no heads-up) until it calls the bot.
	poll(t, 60*time.Second, "the API server to call the bot's webhook", func(ctx context.Context) (bool, error) {
		if _, err := cs.AppsV1().Deployments(e.ns).Create(ctx, dep, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
			return false, err
		}
		return len(warn.Take()) > 0, nil
	})
	if _, err := cs.AppsV1().Deployments(e.ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	e.mu.Lock()
	e.created = append(e.created, "ui-new")
	e.mu.Unlock()
	if got := warn.Take(); len(got) != 1 || got[0] != want {
		t.Fatalf("kubectl apply's warnings = %q, want [%q]", got, want)
	}
	t.Logf("kubectl apply -f ui-new.yaml\nWarning: %s\ndeployment.apps/ui-new created", want)

	isHeadsUp := func(m slackemu.Message) bool { return strings.HasPrefix(m.Text, "Heads-up: Deployment ui-new") }
	var headsUp, incident slackemu.Message
	waitSlack(t, e.emu, 90*time.Second, "the heads-up and the incident's message", func() bool {
		headsUp, incident = slackemu.Message{}, slackemu.Message{}
		for _, m := range e.emu.Messages(channelID) {
			if isHeadsUp(m) {
				headsUp = m
			} else {
				incident = m
			}
		}
		return headsUp.TS != "" && incident.TS != ""
	})
	if !strings.Contains(parseBlocks(t, headsUp.Blocks).text(), want) {
		t.Errorf("the heads-up does not carry the warning's words:\n%s", parseBlocks(t, headsUp.Blocks).text())
	}
	if h := parseBlocks(t, incident.Blocks).header(); h != "ui-new: repository not found" {
		t.Errorf("incident header %q", h)
	}
	waitSlack(t, e.emu, 30*time.Second, "the heads-up in the incident's thread", func() bool {
		for _, m := range e.emu.Thread(channelID, incident.TS) {
			if strings.Contains(m.Text, "pullfix warned at apply") && strings.Contains(m.Text, want) {
				return true
			}
		}
		return false
	})
	if roots := e.emu.Messages(channelID); len(roots) != 2 {
		t.Errorf("%d root messages, want the heads-up and the incident: %q", len(roots), texts(roots))
	}
	evs, err := e.admin.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=" + admission.EventReason})
	if err != nil || len(evs.Items) != 1 {
		t.Fatalf("heads-up Events: %v, %v; want one", evs, err)
	}
	if !strings.Contains(evs.Items[0].Message, want) || evs.Items[0].InvolvedObject.Name != "ui-new" {
		t.Errorf("heads-up Event = %q on %s", evs.Items[0].Message, evs.Items[0].InvolvedObject.Name)
	}
	e.checkNoForbidden(t)
}
