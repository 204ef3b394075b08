{{/* Chart name, overridable. */}}
{{- define "jwt-sidecar.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: release-chart, or the release name when it already contains the chart name. */}}
{{- define "jwt-sidecar.fullname" -}}
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

{{/* Name of the injector's objects (Deployment, Service, webhook configuration). */}}
{{- define "jwt-sidecar.injectorName" -}}
{{- printf "%s-injector" (include "jwt-sidecar.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "jwt-sidecar.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "jwt-sidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jwt-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: injector
{{- end -}}

{{- define "jwt-sidecar.labels" -}}
helm.sh/chart: {{ include "jwt-sidecar.chart" . }}
{{ include "jwt-sidecar.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: jwt-sidecar
{{- end -}}

{{- define "jwt-sidecar.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "jwt-sidecar.injectorName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The project image: repository@digest, or repository:tag (tag defaults to appVersion). */}}
{{- define "jwt-sidecar.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* SIDECAR_IMAGE: sidecar.image when set, else the project image. */}}
{{- define "jwt-sidecar.sidecarImage" -}}
{{- if or .Values.sidecar.image.repository .Values.sidecar.image.tag -}}
{{- printf "%s:%s" (default .Values.image.repository .Values.sidecar.image.repository) (default (default .Chart.AppVersion .Values.image.tag) .Values.sidecar.image.tag) -}}
{{- else -}}
{{- include "jwt-sidecar.image" . -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding tls.crt, tls.key (and ca.crt) for the webhook listener. */}}
{{- define "jwt-sidecar.tlsSecretName" -}}
{{- printf "%s-tls" (include "jwt-sidecar.injectorName" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "jwt-sidecar.certificateName" -}}
{{- include "jwt-sidecar.injectorName" . -}}
{{- end -}}

{{- define "jwt-sidecar.issuerName" -}}
{{- printf "%s-selfsigned" (include "jwt-sidecar.injectorName" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "jwt-sidecar.caName" -}}
{{- printf "%s-ca" (include "jwt-sidecar.injectorName" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* DNS names the API server may use for the webhook Service. */}}
{{- define "jwt-sidecar.serviceDNSNames" -}}
{{- $svc := include "jwt-sidecar.injectorName" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson -}}
{{- end -}}

{{/* Where the TLS Secret is mounted in the injector. */}}
{{- define "jwt-sidecar.tlsDir" -}}/etc/jwt-sidecar-injector/tls{{- end -}}
