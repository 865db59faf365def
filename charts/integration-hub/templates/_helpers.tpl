{{/* Names, labels and shared pieces of the Integration Hub chart. */}}

{{- define "hub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hub.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of a service's objects: <fullname>-<service>. Call with (dict "root" $ "svc" "api"). */}}
{{- define "hub.svcName" -}}
{{- printf "%s-%s" (include "hub.fullname" .root) .svc | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hub.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "hub.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: integration-hub
{{- end }}

{{- define "hub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hub.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of one service's objects. Call with (dict "root" $ "svc" "api"). */}}
{{- define "hub.svcLabels" -}}
{{ include "hub.labels" .root }}
app.kubernetes.io/component: {{ .svc }}
{{- end }}

{{- define "hub.svcSelectorLabels" -}}
{{ include "hub.selectorLabels" .root }}
app.kubernetes.io/component: {{ .svc }}
{{- end }}

{{- define "hub.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret holding connection strings: the existing one, or the one this chart renders. */}}
{{- define "hub.secretName" -}}
{{- default (printf "%s-connections" (include "hub.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{- define "hub.configMapName" -}}
{{- printf "%s-config" (include "hub.fullname" .) }}
{{- end }}

{{- define "hub.operatorServiceAccountName" -}}
{{- if .Values.operator.serviceAccount.create }}
{{- default (include "hub.svcName" (dict "root" . "svc" "operator")) .Values.operator.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.operator.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "hub.issuerName" -}}
{{- default (printf "%s-letsencrypt" (include "hub.fullname" .)) .Values.ingress.certManager.issuerName }}
{{- end }}

{{/* Environment variables drawn from the shared Secret. Call with (dict "root" $ "keys" list). */}}
{{- define "hub.sharedSecretEnv" -}}
{{- $root := .root }}
{{- range .keys }}
{{- $key := required (printf "secrets.keys has no entry %q" .) (index $root.Values.secrets.keys .) }}
- name: {{ $key }}
  valueFrom:
    secretKeyRef:
      name: {{ include "hub.secretName" $root }}
      key: {{ $key }}
{{- end }}
{{- end }}

{{- define "hub.podSecurity" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end }}
