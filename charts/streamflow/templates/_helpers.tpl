{{/* Names ------------------------------------------------------------------------------- */}}
{{- define "streamflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-streamflow, or the release name alone when it already says streamflow. Kept
to 52 characters: a CronJob's name must leave room for the 11 characters of its Jobs' suffix. */}}
{{- define "streamflow.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "streamflow.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The ConfigMap the drift job annotates: the Role's resourceNames and the job's setting both read this. */}}
{{- define "streamflow.statusConfigMap" -}}
{{- default (printf "%s-drift-status" (include "streamflow.fullname" .)) .Values.status.configMapName }}
{{- end }}

{{- define "streamflow.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "streamflow.fullname" .) }}
{{- end }}

{{/* Labels ------------------------------------------------------------------------------ */}}
{{/* Call with (dict "ctx" $ "component" "api"). */}}
{{- define "streamflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "streamflow.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "streamflow.labels" -}}
helm.sh/chart: {{ include "streamflow.chart" .ctx }}
{{ include "streamflow.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: streamflow
{{- end }}

{{/* Images ------------------------------------------------------------------------------ */}}
{{/* A container's image and pull policy from an image's values: [registry/]repository, then
@digest when one is set (a digest names one build for good, so it wins over the tag), else :tag.
StreamFlow's own images default their tag to the chart's appVersion (the project version the
images are built at); call with (dict "image" .Values.api.image "defaultTag" .Chart.AppVersion),
or without defaultTag for third-party images, whose tag or digest the schema requires. */}}
{{- define "streamflow.image" -}}
{{- $ref := .image.repository }}
{{- with .image.registry }}
{{- $ref = printf "%s/%s" (trimSuffix "/" .) $ref }}
{{- end }}
{{- if .image.digest }}
{{- $ref = printf "%s@%s" $ref .image.digest }}
{{- else }}
{{- $ref = printf "%s:%s" $ref (default .defaultTag .image.tag) }}
{{- end -}}
image: {{ $ref | quote }}
imagePullPolicy: {{ .image.pullPolicy }}
{{- end }}

{{/* Security: Pod Security Standard "restricted" on every pod -------------------------- */}}
{{/* Call with (dict "user" 10001 "group" 10001 "fsGroup" 10001). */}}
{{- define "streamflow.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .user }}
runAsGroup: {{ .group }}
fsGroup: {{ .fsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "streamflow.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "streamflow.appPodSecurityContext" -}}
{{- include "streamflow.podSecurityContext" (dict "user" .Values.podSecurity.runAsUser "group" .Values.podSecurity.runAsGroup "fsGroup" .Values.podSecurity.fsGroup) }}
{{- end }}

{{/* Settings shared by the API, the bootstrap Job and the drift CronJob ------------------ */}}
{{/* The database URL is a Secret mounted as a file (never an environment variable, never in
values): the user's Secret for an external database, otherwise the bundled PostgreSQL's (the
user's database.postgresql.existingSecret, or the one the chart generates). */}}
{{- define "streamflow.databaseSecretName" -}}
{{- default (include "streamflow.postgresql.secretName" .) .Values.database.external.existingSecret }}
{{- end }}

{{- define "streamflow.databaseSecretKey" -}}
{{- ternary .Values.database.external.urlKey .Values.database.postgresql.urlKey (ne .Values.database.external.existingSecret "") }}
{{- end }}

{{/* The bundled PostgreSQL's Secret (its password and the URL to it): the user's existingSecret,
or the one the chart generates (templates/secret-postgresql.yaml). */}}
{{- define "streamflow.postgresql.secretName" -}}
{{- default (include "streamflow.postgresql.fullname" .) .Values.database.postgresql.existingSecret }}
{{- end }}

{{- define "streamflow.commonEnv" -}}
- name: STREAMFLOW_SECRETS_DIR
  value: /var/run/secrets/streamflow
- name: STREAMFLOW_FEAST_PROFILE
  value: postgres
- name: STREAMFLOW_MODEL_STORE
  value: database
- name: STREAMFLOW_DATA_DIR
  value: /var/lib/streamflow
- name: STREAMFLOW_LOG_FORMAT
  value: json
- name: HOME
  value: /tmp
{{- end }}

{{/* The only writable paths of a StreamFlow container (root filesystem read-only), and the
database URL as file streamflow_database_url (pydantic-settings reads it as STREAMFLOW_DATABASE_URL). */}}
{{- define "streamflow.appMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/streamflow
- name: secrets
  mountPath: /var/run/secrets/streamflow
  readOnly: true
{{- end }}

{{- define "streamflow.appVolumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 256Mi
- name: data
  emptyDir:
    sizeLimit: 1Gi
- name: secrets
  secret:
    secretName: {{ include "streamflow.databaseSecretName" . }}
    defaultMode: 0440
    items:
      - key: {{ include "streamflow.databaseSecretKey" . }}
        path: streamflow_database_url
{{- end }}

{{/* checkov skips every StreamFlow workload shares, with their reasons (checkov reads them
from these annotations). Numbered 1-2: a template adds its own from 3 on. */}}
{{- define "streamflow.checkovImageSkips" -}}
checkov.io/skip1: "CKV_K8S_43=Images are built locally by make images and loaded into kind/minikube; no registry digest exists. Set the workload's image.digest (or an immutable image.tag) once pushed."
checkov.io/skip2: "CKV_K8S_15=pullPolicy Always would fail for images loaded with kind load / minikube image load; it is a value (the workload's image.pullPolicy)."
{{- end }}

{{/* Pod options every workload takes ------------------------------------------------------ */}}
{{/* Call these with (dict "ctx" $ "component" "api" "pod" .Values.api "path" "api"): "pod" is the
workload's values, "path" where they are (for error messages). */}}

{{/* A pod's labels: the chart's, then the user's podLabels. These reach pods only, never a
selector (selectors are immutable and must keep matching); a podLabel that would replace one
of the chart's labels fails the render instead of producing a duplicate key. */}}
{{- define "streamflow.podLabels" -}}
{{- $labels := include "streamflow.labels" . }}
{{- $chart := fromYaml $labels }}
{{- range $key, $_ := .pod.podLabels }}
{{- if hasKey $chart $key }}
{{- fail (printf "%s.podLabels: %s is one of the chart's own labels" $.path $key) }}
{{- end }}
{{- end }}
{{- $labels }}
{{- with .pod.podLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* A pod template's metadata: its labels and the user's podAnnotations. */}}
{{- define "streamflow.podMetadata" -}}
labels:
  {{- include "streamflow.podLabels" . | nindent 2 }}
{{- with .pod.podAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Where a pod may run and how it pulls: the chart-wide imagePullSecrets (one list: a node
tries each, so a secret another workload needs costs nothing), then the workload's priority
class, node selector, tolerations and affinity. */}}
{{- define "streamflow.podPlacement" -}}
{{- /* No Docker-link variables: a Service named <release>-api would otherwise put
STREAMFLOW_API_PORT=tcp://10.96.x.y:8000 into every pod of the namespace, which the settings
(prefix STREAMFLOW_) read as the API port and refuse: the first real install failed so. */}}
enableServiceLinks: false
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with .pod.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .pod.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Monitoring ---------------------------------------------------------------------------- */}}
{{/* A ServiceMonitor for the Service of one component, port `http`: the operator turns it into
job="<service name>", namespace, service, pod, container and endpoint labels.
Call with (dict "ctx" $ "component" "api") and optionally "honorLabels" true. */}}
{{- define "streamflow.serviceMonitor" -}}
{{- $sm := .ctx.Values.serviceMonitor }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "streamflow.fullname" .ctx }}-{{ .component }}
  namespace: {{ .ctx.Release.Namespace }}
  labels:
    {{- include "streamflow.labels" . | nindent 4 }}
    {{- with $sm.additionalLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "streamflow.selectorLabels" . | nindent 6 }}
  namespaceSelector:
    matchNames: [{{ .ctx.Release.Namespace | quote }}]
  endpoints:
    - port: http
      path: /metrics
      scheme: http
      {{- if .honorLabels }}
      honorLabels: true
      {{- end }}
      interval: {{ $sm.interval }}
      scrapeTimeout: {{ $sm.scrapeTimeout }}
      {{- with $sm.relabelings }}
      relabelings:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $sm.metricRelabelings }}
      metricRelabelings:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{/* The NetworkPolicy peer that is Prometheus of kube-prometheus-stack (a `from` entry). */}}
{{- define "streamflow.prometheusPeer" -}}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .Values.networkPolicy.prometheus.namespace | quote }}
  podSelector:
    matchLabels:
      {{- toYaml .Values.networkPolicy.prometheus.podLabels | nindent 6 }}
{{- end }}
