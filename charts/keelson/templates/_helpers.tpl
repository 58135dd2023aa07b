{{/* Names. */}}
{{- define "keelson.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "keelson.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "keelson.selectorLabels" -}}
app.kubernetes.io/name: {{ include "keelson.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Keelson's own objects are managed by Helm here; "keelson" in managed-by marks what Keelson applies. */}}
{{- define "keelson.labels" -}}
{{ include "keelson.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: keelson
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "keelson.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "keelson.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "keelson.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "keelson.gitSecretName" -}}
{{- default (printf "%s-git" (include "keelson.fullname" .)) .Values.git.auth.existingSecret }}
{{- end }}

{{- define "keelson.webhookSecretName" -}}
{{- default (printf "%s-webhook" (include "keelson.fullname" .)) .Values.webhook.existingSecret }}
{{- end }}

{{/*
What Keelson needs in a namespace it applies OpenStack objects to: the kinds it renders, with the verbs
of server-side apply, drift watching and pruning; Pods and ReplicaSets listed and watched (never changed)
for the reason a workload is not ready; Events about the objects.
Secrets, because Keelson makes the ones the topology declares (spec.secrets), creating them only when
absent and deleting a generated one only for a tombstone. Roles and RoleBindings are only
ever as wide as these rules, because the API server refuses to let Keelson grant what it does not hold.
deploy/manifests/rbac-target.yaml carries the same rules (tests/install_manifests.rs compares them).
*/}}
{{- define "keelson.targetRules" -}}
- apiGroups: [""]
  resources: [configmaps, services, serviceaccounts, persistentvolumeclaims]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, list, watch, create, patch, delete]
# list/watch: a workload's Pods for the reason it is not ready; get: held so that Keelson may write the Role
# of a `for: SameNode` component, which grants its Pods get and list on Pods (RBAC escalation check).
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [list, watch]
{{- with .Values.rbac.extraRules }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Keelson's own namespace: the leader-election Lease, status and inventory ConfigMaps, Events. */}}
{{- define "keelson.ownRules" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/* Combinations of values the schema cannot express; each message says which value to change. */}}
{{- define "keelson.validate" -}}
{{- if not .Values.git.repo }}
{{- fail "git.repo is required: the clone URL of the repository that describes the cloud (--set git.repo=https://git.example.com/ops/cloud.git)" }}
{{- end }}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicas > 1 needs leaderElection.enabled=true: two reconcilers must never apply at the same time" }}
{{- end }}
{{- $auth := .Values.git.auth }}
{{- if and (ne $auth.type "none") (not $auth.existingSecret) }}
{{- if and (eq $auth.type "token") (not $auth.values.token) }}
{{- fail "git.auth.type=token needs git.auth.existingSecret or git.auth.values.token" }}
{{- end }}
{{- if and (eq $auth.type "basic") (or (not $auth.values.username) (not $auth.values.password)) }}
{{- fail "git.auth.type=basic needs git.auth.existingSecret or git.auth.values.username and .password" }}
{{- end }}
{{- if and (eq $auth.type "ssh") (or (not $auth.values.sshPrivateKey) (not $auth.values.sshKnownHosts)) }}
{{- fail "git.auth.type=ssh needs git.auth.existingSecret or git.auth.values.sshPrivateKey and .sshKnownHosts" }}
{{- end }}
{{- end }}
{{- if and .Values.webhook.enabled (not .Values.webhook.existingSecret) (not .Values.webhook.secret) }}
{{- fail "webhook.enabled=true needs webhook.existingSecret or webhook.secret" }}
{{- end }}
{{- if and .Values.webhook.ingress.enabled (not .Values.webhook.enabled) }}
{{- fail "webhook.ingress.enabled=true needs webhook.enabled=true" }}
{{- end }}
{{- if and .Values.webhook.ingress.enabled (not .Values.webhook.ingress.host) }}
{{- fail "webhook.ingress.enabled=true needs webhook.ingress.host" }}
{{- end }}
{{- if and .Values.rbac.create (eq .Values.rbac.scope "namespaced") (not .Values.rbac.targetNamespaces) }}
{{- fail "rbac.scope=namespaced needs at least one entry in rbac.targetNamespaces" }}
{{- end }}
{{- end }}

{{/* Whether the chart mounts a passphrase file for the SSH key. */}}
{{- define "keelson.sshPassphrase" -}}
{{- if .Values.git.auth.existingSecret }}
{{- if .Values.git.auth.sshPassphrase }}true{{ end }}
{{- else if .Values.git.auth.values.sshPassphrase }}true{{ end }}
{{- end }}
