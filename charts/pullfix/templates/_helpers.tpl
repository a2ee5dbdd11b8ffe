{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "pullfix.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Resource name prefix: <release>-pullfix, or <release> when it already says pullfix. */}}
{{- define "pullfix.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "pullfix.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pullfix.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pullfix.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "pullfix.labels" -}}
helm.sh/chart: {{ include "pullfix.chart" . }}
{{ include "pullfix.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "pullfix.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "pullfix.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "pullfix.leaseName" -}}
{{- default (include "pullfix.fullname" .) .Values.leaderElection.leaseName -}}
{{- end -}}

{{- define "pullfix.stateConfigMap" -}}
{{- default (printf "%s-state" (include "pullfix.fullname" .)) .Values.stateConfigMap -}}
{{- end -}}

{{- define "pullfix.secretName" -}}
{{- default (printf "%s-slack" (include "pullfix.fullname" .)) .Values.slack.existingSecret -}}
{{- end -}}

{{- define "pullfix.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* "k=v,k2=v2", keys sorted: the format of PULLFIX_REGISTRY_MIRRORS and PULLFIX_SLACK_CHANNELS. */}}
{{- define "pullfix.pairs" -}}
{{- $out := list -}}
{{- range $k, $v := . -}}
{{- $out = append $out (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}

{{/* PULLFIX_SLACK_APPROVERS: "GLOBAL;ns=LIST;…" with LIST = "ID,ID". */}}
{{- define "pullfix.approvers" -}}
{{- $out := list -}}
{{- with .Values.slack.approvers.global -}}
{{- $out = append $out (join "," .) -}}
{{- end -}}
{{- range $ns, $ids := .Values.slack.approvers.namespaces -}}
{{- $out = append $out (printf "%s=%s" $ns (join "," $ids)) -}}
{{- end -}}
{{- join ";" $out -}}
{{- end -}}

{{/*
The rules on the workloads the bot watches and fixes: the same list goes into
the ClusterRole (cluster-wide) or into one Role per watched namespace. Each
rule says which code needs it; the README's RBAC table is the same list.
*/}}
{{- define "pullfix.workloadRules" -}}
# Pending pods (informer), the pod behind a kubelet event (get), a workload's
# pods (on-demand diagnosis, rollout follow-up, pull-secret discovery); patch:
# the in-place image change of a bare Pod (the only Pod field it writes).
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, patch]
# Kubelet pull-failure events (informer); create: the audit Event on each
# approved change.
- apiGroups: [""]
  resources: [events]
  verbs: [list, watch, create]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create]
# Which pull secrets the namespace's service accounts carry.
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [list]
{{- if .Values.pullSecretProbing }}
# Probe with the pod's own imagePullSecrets: get by name only. Never list or
# watch: the bot reads only the Secrets a failing pod names.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end }}
# Owner resolution (pod → ReplicaSet → Deployment) and revision history (the
# last healthy image is a fix candidate).
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [get, list]
# The kinds it fixes: read, patch (JSON Patch with a test op, after a
# server-side dry run), and follow the rollout of the one object it patched
# (list/watch with a metadata.name field selector). list also reads which
# images a failing workload's namespace runs Ready (fix candidates).
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets]
  verbs: [get, list, watch, patch]
- apiGroups: [batch]
  resources: [cronjobs]
  verbs: [get, patch]
# Job → CronJob owner resolution.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get]
{{- end -}}

{{/* The admission webhook's Service, CA Secret and cert-manager names. */}}
{{- define "pullfix.admissionService" -}}
{{ include "pullfix.fullname" . }}-admission
{{- end -}}
{{- define "pullfix.admissionCASecret" -}}
{{ include "pullfix.fullname" . }}-admission-ca
{{- end -}}
{{- define "pullfix.admissionTLSSecret" -}}
{{ include "pullfix.fullname" . }}-admission-tls
{{- end -}}
