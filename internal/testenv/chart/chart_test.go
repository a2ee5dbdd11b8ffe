package chart

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/pullfix/pullfix/internal/admission"
	"github.com/pullfix/pullfix/internal/testenv/controlplane"
)

var cp *controlplane.ControlPlane

func TestMain(m *testing.M) { os.Exit(controlplane.Run(m, &cp)) }

// Values the tests render with. nil is the chart's defaults.
var (
	namespacedValues = map[string]any{"watchNamespaces": []any{"team-a", "team-b"}}
	socketValues     = map[string]any{"slack": map[string]any{
		"enabled": true, "mode": "socket", "botToken": "xoxb-1-test", "appToken": "xapp-1-test",
		"channel":             "#pullfix",
		"channelPerNamespace": map[string]any{"payments": "#payments-oncall", "team-a": "C0TEAMA"},
		"approvers":           map[string]any{"global": []any{"U0AAA", "S0SRE"}, "namespaces": map[string]any{"payments": []any{"S0PAY"}}},
	}}
	httpValues = map[string]any{"slack": map[string]any{
		"enabled": true, "mode": "http", "existingSecret": "my-slack",
		"http": map[string]any{"ingress": map[string]any{"enabled": true, "host": "pullfix.example.com", "tlsSecretName": "pullfix-tls"}},
	}, "registryMirrors": map[string]any{"docker.io": "mirror.internal:5000", "quay.io": "quay-mirror:5000"}}
)

// TestHelmLintTemplate runs the pinned Helm on the chart: `helm lint
// --strict` and `helm template` pass for the default values, the namespaced
// values and both Slack modes; each renders what its mode promises; and
// values.schema.json (or a template's `required`) rejects every bad value in
// a table, naming the offending key.
func TestHelmLintTemplate(t *testing.T) {
	h := RequireHelm(t, "pullfix")
	ctx := t.Context()

	for _, tc := range []struct {
		name   string
		values map[string]any
		check  func(t *testing.T, objs []*unstructured.Unstructured)
	}{
		{"default", nil, func(t *testing.T, objs []*unstructured.Unstructured) {
			if n := len(Find(objs, "Role")); n != 1 {
				t.Errorf("default (cluster-wide) renders %d Roles, want only the own-namespace one", n)
			}
			wantNames(t, objs, "ClusterRole", "lint-pullfix", "lint-pullfix-gitops", "lint-pullfix-nodes")
			if n := len(Find(objs, "Secret")); n != 0 {
				t.Errorf("Slack is off by default, yet %d Secrets are rendered", n)
			}
			if n := len(Find(objs, "ValidatingWebhookConfiguration")); n != 0 {
				t.Errorf("the admission webhook is off by default, yet %d configurations are rendered", n)
			}
			env := deploymentEnv(t, objs)
			for k, v := range map[string]string{
				"PULLFIX_LEADER_ELECTION": "true", "PULLFIX_LEASE_NAME": "lint-pullfix",
				"PULLFIX_STATE_CONFIGMAP": "lint-pullfix-state", "PULLFIX_LISTEN_ADDR": ":8080",
				"PULLFIX_PULL_SECRET_PROBING": "true", "PULLFIX_CLUSTER_NAME": "default",
				"PULLFIX_PROBE_TIMEOUT": "5s", "PULLFIX_LOG_FORMAT": "json",
				"PULLFIX_GITOPS_TEMPORARY_PATCH": "false", "PULLFIX_ARGOCD_NAMESPACE": "argocd",
			} {
				if env[k] != v {
					t.Errorf("env %s = %q, want %q", k, env[k], v)
				}
			}
			if env["PULLFIX_POD_NAMESPACE"] != "fieldRef:metadata.namespace" {
				t.Errorf("PULLFIX_POD_NAMESPACE = %q, want it from the downward API", env["PULLFIX_POD_NAMESPACE"])
			}
			for _, k := range []string{"PULLFIX_NAMESPACES", "PULLFIX_SLACK_BOT_TOKEN", "PULLFIX_SLACK_RBAC_MAPPING"} {
				if _, ok := env[k]; ok {
					t.Errorf("env %s is set by default", k)
				}
			}
			d := Find(objs, "Deployment")[0]
			if r, _, _ := unstructured.NestedInt64(d.Object, "spec", "replicas"); r != 2 {
				t.Errorf("replicas = %d, want 2", r)
			}
			pdb := Find(objs, "PodDisruptionBudget")
			if len(pdb) != 1 {
				t.Fatalf("%d PodDisruptionBudgets, want 1", len(pdb))
			}
			if v, _, _ := unstructured.NestedFieldNoCopy(pdb[0].Object, "spec", "minAvailable"); v != int64(1) {
				t.Errorf("PDB minAvailable = %v, want 1", v)
			}
		}},
		{"namespaced", namespacedValues, func(t *testing.T, objs []*unstructured.Unstructured) {
			wantNames(t, objs, "ClusterRole", "lint-pullfix-gitops", "lint-pullfix-nodes")
			var nss []string
			for _, r := range Find(objs, "Role") {
				nss = append(nss, r.GetNamespace())
			}
			slices.Sort(nss)
			if want := []string{"pullfix-system", "team-a", "team-b"}; !slices.Equal(nss, want) {
				t.Errorf("Roles in %v, want %v (one per watched namespace + the own one)", nss, want)
			}
			if env := deploymentEnv(t, objs); env["PULLFIX_NAMESPACES"] != "team-a,team-b" {
				t.Errorf("PULLFIX_NAMESPACES = %q", env["PULLFIX_NAMESPACES"])
			}
		}},
		{"rbac-mapping-no-gitops", map[string]any{
			"watchNamespaces": []any{"team-a"}, "gitops": map[string]any{"readSources": false, "temporaryPatch": true},
			"slack": map[string]any{"enabled": true, "botToken": "xoxb-1-test", "appToken": "xapp-1-test", "rbacMapping": "U0AAA=alice|team-a,*={email}"},
		}, func(t *testing.T, objs []*unstructured.Unstructured) {
			// The mapping brings the SubjectAccessReview right; readSources
			// off takes the GitOps reads away.
			wantNames(t, objs, "ClusterRole", "lint-pullfix-nodes", "lint-pullfix-sar")
			env := deploymentEnv(t, objs)
			if env["PULLFIX_SLACK_RBAC_MAPPING"] != "U0AAA=alice|team-a,*={email}" || env["PULLFIX_GITOPS_TEMPORARY_PATCH"] != "true" {
				t.Errorf("PULLFIX_SLACK_RBAC_MAPPING = %q, PULLFIX_GITOPS_TEMPORARY_PATCH = %q", env["PULLFIX_SLACK_RBAC_MAPPING"], env["PULLFIX_GITOPS_TEMPORARY_PATCH"])
			}
		}},
		{"slack-socket", socketValues, func(t *testing.T, objs []*unstructured.Unstructured) {
			env := deploymentEnv(t, objs)
			for k, v := range map[string]string{
				"PULLFIX_SLACK_BOT_TOKEN":  "secret:lint-pullfix-slack/bot-token",
				"PULLFIX_SLACK_APP_TOKEN":  "secret:lint-pullfix-slack/app-token",
				"PULLFIX_SLACK_APPROVERS":  "U0AAA,S0SRE;payments=S0PAY",
				"PULLFIX_SLACK_CHANNELS":   "payments=#payments-oncall,team-a=C0TEAMA",
				"PULLFIX_SLACK_CHANNEL":    "#pullfix",
				"PULLFIX_REGISTRY_MIRRORS": "",
			} {
				if env[k] != v {
					t.Errorf("env %s = %q, want %q", k, env[k], v)
				}
			}
			if _, ok := env["PULLFIX_SLACK_SIGNING_SECRET"]; ok {
				t.Error("Socket Mode also mounts the signing secret")
			}
			s := Find(objs, "Secret")
			if len(s) != 1 {
				t.Fatalf("%d Secrets, want the chart's Slack Secret", len(s))
			}
			if v, _, _ := unstructured.NestedString(s[0].Object, "stringData", "app-token"); v != "xapp-1-test" {
				t.Errorf("Secret app-token = %q", v)
			}
			if len(Find(objs, "Ingress")) != 0 {
				t.Error("Socket Mode renders an Ingress")
			}
		}},
		{"slack-http", httpValues, func(t *testing.T, objs []*unstructured.Unstructured) {
			env := deploymentEnv(t, objs)
			if env["PULLFIX_SLACK_SIGNING_SECRET"] != "secret:my-slack/signing-secret" {
				t.Errorf("signing secret from %q, want the existing Secret", env["PULLFIX_SLACK_SIGNING_SECRET"])
			}
			if _, ok := env["PULLFIX_SLACK_APP_TOKEN"]; ok {
				t.Error("HTTP mode mounts the app token")
			}
			if env["PULLFIX_REGISTRY_MIRRORS"] != "docker.io=mirror.internal:5000,quay.io=quay-mirror:5000" {
				t.Errorf("PULLFIX_REGISTRY_MIRRORS = %q", env["PULLFIX_REGISTRY_MIRRORS"])
			}
			if len(Find(objs, "Secret")) != 0 {
				t.Error("existingSecret given, yet the chart renders a Secret")
			}
			ing := Find(objs, "Ingress")
			if len(ing) != 1 {
				t.Fatalf("%d Ingresses, want 1", len(ing))
			}
			paths, _, _ := unstructured.NestedSlice(ing[0].Object, "spec", "rules")
			if len(paths) != 1 || !strings.Contains(toJSON(t, paths), `"path":"/slack/events"`) {
				t.Errorf("Ingress rules %s, want only /slack/events", toJSON(t, paths))
			}
		}},
		{"admission", map[string]any{"admission": map[string]any{"enabled": true, "deny": []any{"payments"}}}, func(t *testing.T, objs []*unstructured.Unstructured) {
			env := deploymentEnv(t, objs)
			for k, v := range map[string]string{
				"PULLFIX_ADMISSION": "true", "PULLFIX_ADMISSION_ADDR": ":8443", "PULLFIX_ADMISSION_BUDGET": "2s",
				"PULLFIX_ADMISSION_DENY": "payments", "PULLFIX_ADMISSION_WEBHOOK_CONFIG": "lint-pullfix",
				"PULLFIX_ADMISSION_SERVICE": "lint-pullfix-admission", "PULLFIX_ADMISSION_CA_SECRET": "lint-pullfix-admission-ca",
			} {
				if env[k] != v {
					t.Errorf("env %s = %q, want %q", k, env[k], v)
				}
			}
			wantNames(t, objs, "ClusterRole", "lint-pullfix", "lint-pullfix-admission", "lint-pullfix-gitops", "lint-pullfix-nodes")
			vwcs := Find(objs, "ValidatingWebhookConfiguration")
			if len(vwcs) != 1 {
				t.Fatalf("%d ValidatingWebhookConfigurations, want 1", len(vwcs))
			}
			var vwc admissionregistrationv1.ValidatingWebhookConfiguration
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(vwcs[0].Object, &vwc); err != nil {
				t.Fatal(err)
			}
			wh := vwc.Webhooks[0]
			if wh.FailurePolicy == nil || *wh.FailurePolicy != admissionregistrationv1.Ignore {
				t.Error("failurePolicy is not Ignore: a broken webhook would block the cluster")
			}
			if wh.TimeoutSeconds == nil || *wh.TimeoutSeconds != 5 {
				t.Errorf("timeoutSeconds = %v, want 5 (the 2s budget well under it)", wh.TimeoutSeconds)
			}
			if wh.SideEffects == nil || *wh.SideEffects != admissionregistrationv1.SideEffectClassNone {
				t.Error("sideEffects is not None")
			}
			if len(wh.ClientConfig.CABundle) != 0 {
				t.Error("the chart sets a caBundle; the bot patches it in, and an upgrade must not reset it")
			}
			if s := wh.ClientConfig.Service; s == nil || s.Name != "lint-pullfix-admission" || s.Namespace != "pullfix-system" || s.Path == nil || *s.Path != admission.Path {
				t.Errorf("clientConfig.service = %+v", s)
			}
			sel := toJSON(t, wh.NamespaceSelector)
			if !strings.Contains(sel, `"operator":"NotIn","values":["kube-system","pullfix-system"]`) {
				t.Errorf("namespaceSelector %s does not exclude kube-system and the bot's namespace", sel)
			}
			if len(wh.MatchConditions) != 1 || wh.MatchConditions[0].Expression != admission.MatchNotControllerOwned {
				t.Errorf("matchConditions = %+v, want the controller-owned filter the handler assumes", wh.MatchConditions)
			}
			svc := Find(objs, "Service")
			if !strings.Contains(toJSON(t, svc), `"targetPort":"admission"`) {
				t.Error("no Service routes to the admission port")
			}
		}},
		{"admission-cert-manager", map[string]any{"admission": map[string]any{"enabled": true, "certManager": true}, "watchNamespaces": []any{"team-a"}}, func(t *testing.T, objs []*unstructured.Unstructured) {
			env := deploymentEnv(t, objs)
			if env["PULLFIX_ADMISSION_CERT_DIR"] != "/etc/pullfix/admission-tls" {
				t.Errorf("PULLFIX_ADMISSION_CERT_DIR = %q", env["PULLFIX_ADMISSION_CERT_DIR"])
			}
			if _, ok := env["PULLFIX_ADMISSION_CA_SECRET"]; ok {
				t.Error("cert-manager mode still names the bot's own CA Secret")
			}
			if len(Find(objs, "Certificate")) != 1 || len(Find(objs, "Issuer")) != 1 {
				t.Error("cert-manager mode renders no Certificate and Issuer")
			}
			vwc := Find(objs, "ValidatingWebhookConfiguration")[0]
			if vwc.GetAnnotations()["cert-manager.io/inject-ca-from"] != "pullfix-system/lint-pullfix-admission" {
				t.Errorf("annotations = %v, want cainjector's inject-ca-from", vwc.GetAnnotations())
			}
			if sel := toJSON(t, vwc.Object["webhooks"]); !strings.Contains(sel, `"operator":"In","values":["team-a"]`) {
				t.Errorf("a namespaced install reviews outside its namespaces: %s", sel)
			}
			rules := toJSON(t, append(Find(objs, "ClusterRole"), Find(objs, "Role")...))
			if strings.Contains(rules, "validatingwebhookconfigurations") || strings.Contains(rules, "admission-ca") {
				t.Error("cert-manager mode grants the caBundle patch or the CA Secret")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if out, err := h.Lint(ctx, tc.values); err != nil {
				t.Fatalf("lint: %v", err)
			} else if strings.Contains(string(out), "[WARNING]") {
				t.Errorf("lint warnings:\n%s", out)
			}
			objs, err := h.Render(ctx, "lint", "pullfix-system", tc.values)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, objs)
			checkHardened(t, objs)
		})
	}

	bad := []struct {
		name   string
		values map[string]any
		want   string // in helm's message: the JSON pointer of the bad value
	}{
		{"unknown top-level key", map[string]any{"replicas": 3}, "additional properties 'replicas'"},
		{"replicaCount not a number", map[string]any{"replicaCount": "two"}, "/replicaCount"},
		{"replicaCount zero", map[string]any{"replicaCount": 0}, "/replicaCount"},
		{"two replicas without election", map[string]any{"leaderElection": map[string]any{"enabled": false}}, "/leaderElection/enabled"},
		{"log level", map[string]any{"logLevel": "verbose"}, "/logLevel"},
		{"log format", map[string]any{"logFormat": "xml"}, "/logFormat"},
		{"probe timeout not a duration", map[string]any{"probeTimeout": "5 seconds"}, "/probeTimeout"},
		{"probing not a boolean", map[string]any{"pullSecretProbing": "yes"}, "/pullSecretProbing"},
		{"namespace not a DNS label", map[string]any{"watchNamespaces": []any{"Team_A"}}, "/watchNamespaces/0"},
		{"admission deny namespace not a DNS label", map[string]any{"admission": map[string]any{"deny": []any{"Team_A"}}}, "/admission/deny/0"},
		{"admission budget not a duration", map[string]any{"admission": map[string]any{"budget": "2 seconds"}}, "/admission/budget"},
		{"admission timeout above the API server's 30 s", map[string]any{"admission": map[string]any{"timeoutSeconds": 60}}, "/admission/timeoutSeconds"},
		{"admission unknown key", map[string]any{"admission": map[string]any{"failurePolicy": "Fail"}}, "additional properties 'failurePolicy'"},
		{"namespaces not a list", map[string]any{"watchNamespaces": "team-a,team-b"}, "/watchNamespaces"},
		{"slack mode", map[string]any{"slack": map[string]any{"mode": "rtm"}}, "/slack/mode"},
		{"slack on without tokens", map[string]any{"slack": map[string]any{"enabled": true}}, "/slack/botToken"},
		{"socket mode without app token", map[string]any{"slack": map[string]any{"enabled": true, "botToken": "xoxb-1"}}, "/slack/appToken"},
		{"http mode without signing secret", map[string]any{"slack": map[string]any{"enabled": true, "mode": "http", "botToken": "xoxb-1"}}, "/slack/signingSecret"},
		{"user token as bot token", map[string]any{"slack": map[string]any{"enabled": true, "botToken": "xoxp-1", "appToken": "xapp-1"}}, "/slack/botToken"},
		{"approver handle", map[string]any{"slack": map[string]any{"approvers": map[string]any{"global": []any{"@alice"}, "namespaces": map[string]any{}}}}, "/slack/approvers/global/0"},
		{"channel name with spaces", map[string]any{"slack": map[string]any{"channel": "my channel"}}, "/slack/channel"},
		{"root allowed", map[string]any{"securityContext": map[string]any{"runAsNonRoot": false, "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true}}, "/securityContext/runAsNonRoot"},
		{"writable root filesystem", map[string]any{"securityContext": map[string]any{"runAsNonRoot": true, "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": false}}, "/securityContext/readOnlyRootFilesystem"},
		{"image digest", map[string]any{"image": map[string]any{"digest": "latest"}}, "/image/digest"},
		{"existing service account without name", map[string]any{"serviceAccount": map[string]any{"create": false}}, "/serviceAccount/name"},
	}
	for _, tc := range bad {
		t.Run("rejects/"+tc.name, func(t *testing.T) {
			_, err := h.Template(ctx, "lint", "pullfix-system", tc.values)
			var he *HelmError
			if !errors.As(err, &he) {
				t.Fatalf("helm template accepted %s (err %v)", toJSON(t, tc.values), err)
			}
			if !strings.Contains(he.Stderr, tc.want) {
				t.Errorf("helm's message does not name %q:\n%s", tc.want, he.Stderr)
			}
		})
	}

	// NOTES.txt renders only on install; a client-side dry run against the
	// test control plane shows it without creating anything.
	t.Run("notes", func(t *testing.T) {
		controlplane.Require(t, cp)
		for _, tc := range []struct {
			values map[string]any
			want   []string
		}{
			{nil, []string{"every namespace", "Pull-secret probing is ON", "kubectl -n pullfix-system logs deployment/notes-pullfix", "/readyz", "Slack is off"}},
			{namespacedValues, []string{"namespaces: team-a, team-b"}},
			{socketValues, []string{"deploy/slack-app-manifest.yaml", "Socket Mode", "/pullfix help"}},
			{map[string]any{"pullSecretProbing": false}, []string{"cannot read any Secret"}},
		} {
			out, err := h.Run(ctx, "install", "notes", h.Chart, "--dry-run=client", "--kubeconfig", cp.Kubeconfig(), "--namespace", "pullfix-system", "-f", mustValuesFile(t, tc.values))
			if err != nil {
				t.Fatal(err)
			}
			notes := string(out[strings.Index(string(out), "NOTES:"):])
			for _, w := range tc.want {
				if !strings.Contains(notes, w) {
					t.Errorf("NOTES for %s lack %q:\n%s", toJSON(t, tc.values), w, notes)
				}
			}
		}
	})
}

// checkHardened asserts the pod runs as the chart promises: non-root user
// 65532, read-only root, no privilege escalation, no capabilities, seccomp
// RuntimeDefault, resource requests and a memory limit, both probes.
func checkHardened(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	ds := Find(objs, "Deployment")
	if len(ds) != 1 {
		t.Fatalf("%d Deployments, want 1", len(ds))
	}
	pod, _, _ := unstructured.NestedMap(ds[0].Object, "spec", "template", "spec")
	cs, _, _ := unstructured.NestedSlice(pod, "containers")
	if len(cs) != 1 {
		t.Fatalf("%d containers, want 1", len(cs))
	}
	c := cs[0].(map[string]any)
	for _, want := range []struct {
		obj  map[string]any
		path []string
		val  any
	}{
		{pod, []string{"securityContext", "runAsNonRoot"}, true},
		{pod, []string{"securityContext", "runAsUser"}, int64(65532)},
		{pod, []string{"securityContext", "seccompProfile", "type"}, "RuntimeDefault"},
		{c, []string{"securityContext", "runAsNonRoot"}, true},
		{c, []string{"securityContext", "runAsUser"}, int64(65532)},
		{c, []string{"securityContext", "readOnlyRootFilesystem"}, true},
		{c, []string{"securityContext", "allowPrivilegeEscalation"}, false},
		{c, []string{"securityContext", "capabilities", "drop"}, []any{"ALL"}},
		{c, []string{"livenessProbe", "httpGet", "path"}, "/healthz"},
		{c, []string{"readinessProbe", "httpGet", "path"}, "/readyz"},
		{c, []string{"resources", "requests", "cpu"}, "20m"},
		{c, []string{"resources", "requests", "memory"}, "48Mi"},
		{c, []string{"resources", "limits", "memory"}, "128Mi"},
	} {
		got, _, _ := unstructured.NestedFieldNoCopy(want.obj, want.path...)
		if toJSON(t, got) != toJSON(t, want.val) {
			t.Errorf("%s = %s, want %s", strings.Join(want.path, "."), toJSON(t, got), toJSON(t, want.val))
		}
	}
	// Ports: ops on 8080, and the admission webhook's HTTPS when it is on.
	ports := []any{map[string]any{"name": "http", "containerPort": int64(8080), "protocol": "TCP"}}
	if env := deploymentEnv(t, objs); env["PULLFIX_ADMISSION"] == "true" {
		ports = append(ports, map[string]any{"name": "admission", "containerPort": int64(8443), "protocol": "TCP"})
	}
	if got, _, _ := unstructured.NestedFieldNoCopy(c, "ports"); toJSON(t, got) != toJSON(t, ports) {
		t.Errorf("ports = %s, want %s", toJSON(t, got), toJSON(t, ports))
	}
}

// deploymentEnv returns the container's environment: plain values as they
// are, references as "fieldRef:PATH" and "secret:NAME/KEY".
func deploymentEnv(t *testing.T, objs []*unstructured.Unstructured) map[string]string {
	t.Helper()
	ds := Find(objs, "Deployment")
	if len(ds) != 1 {
		t.Fatalf("%d Deployments, want 1", len(ds))
	}
	cs, _, _ := unstructured.NestedSlice(ds[0].Object, "spec", "template", "spec", "containers")
	env := map[string]string{}
	list, _, _ := unstructured.NestedSlice(cs[0].(map[string]any), "env")
	for _, e := range list {
		m := e.(map[string]any)
		name := m["name"].(string)
		if _, dup := env[name]; dup {
			t.Errorf("env %s is set twice", name)
		}
		if v, ok, _ := unstructured.NestedString(m, "valueFrom", "fieldRef", "fieldPath"); ok {
			env[name] = "fieldRef:" + v
			continue
		}
		if n, ok, _ := unstructured.NestedString(m, "valueFrom", "secretKeyRef", "name"); ok {
			k, _, _ := unstructured.NestedString(m, "valueFrom", "secretKeyRef", "key")
			env[name] = "secret:" + n + "/" + k
			continue
		}
		env[name], _ = m["value"].(string)
	}
	return env
}

func wantNames(t *testing.T, objs []*unstructured.Unstructured, kind string, names ...string) {
	t.Helper()
	var got []string
	for _, o := range Find(objs, kind) {
		got = append(got, o.GetName())
	}
	slices.Sort(got)
	slices.Sort(names)
	if !slices.Equal(got, names) {
		t.Errorf("%s objects %v, want %v", kind, got, names)
	}
}

func mustValuesFile(t *testing.T, values map[string]any) string {
	t.Helper()
	if values == nil {
		values = map[string]any{}
	}
	p, cleanup, err := valuesFile(values)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return p
}
