{{/* Names, labels and shared fragments of the cni-migrate-ipam chart. */}}

{{- define "cni-migrate-ipam.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cni-migrate-ipam.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "cni-migrate-ipam.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "cni-migrate-ipam.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "cni-migrate-ipam.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cni-migrate-ipam.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cni-migrate-ipam.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "cni-migrate-ipam.labels" -}}
helm.sh/chart: {{ include "cni-migrate-ipam.chart" . }}
{{ include "cni-migrate-ipam.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: ipam-operator
app.kubernetes.io/part-of: cni-migrate
{{- end -}}

{{- define "cni-migrate-ipam.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "cni-migrate-ipam.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "cni-migrate-ipam.webhookSecretName" -}}
{{- default (printf "%s-webhook-tls" (include "cni-migrate-ipam.fullname" .)) .Values.webhook.existingSecret -}}
{{- end -}}

{{- define "cni-migrate-ipam.validateValues" -}}
{{- if not (has .Values.operator.mode (list "spec" "annotation")) -}}
{{- fail (printf "operator.mode must be \"spec\" or \"annotation\", not %q" .Values.operator.mode) -}}
{{- end -}}
{{- if and .Values.webhook.existingSecret (not .Values.webhook.caBundle) -}}
{{- fail "webhook.existingSecret needs webhook.caBundle (the PEM of the CA that signed its certificate)" -}}
{{- end -}}
{{- if and .Values.webhook.url (not (hasPrefix "https://" .Values.webhook.url)) -}}
{{- fail "webhook.url must start with https://" -}}
{{- end -}}
{{- end -}}
