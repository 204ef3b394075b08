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

{{/* SIDECAR_IMAGE: sidecar.image when set (by digest, or by tag), else the
     project image. An empty sidecar repository means image.repository. */}}
{{- define "jwt-sidecar.sidecarImage" -}}
{{- $img := .Values.sidecar.image -}}
{{- $repo := default .Values.image.repository $img.repository -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $repo $img.digest -}}
{{- else if or $img.repository $img.tag -}}
{{- printf "%s:%s" $repo (default (default .Chart.AppVersion .Values.image.tag) $img.tag) -}}
{{- else -}}
{{- include "jwt-sidecar.image" . -}}
{{- end -}}
{{- end -}}

{{/* DEFAULT_NATIVE_SIDECAR: sidecar.native, or with "auto" the cluster's
     version: native sidecars (restartPolicy on an init container) need 1.29. */}}
{{- define "jwt-sidecar.native" -}}
{{- if eq (toString .Values.sidecar.native) "auto" -}}
{{- semverCompare ">=1.29.0-0" .Capabilities.KubeVersion.Version | toString -}}
{{- else -}}
{{- .Values.sidecar.native | toString -}}
{{- end -}}
{{- end -}}

{{/* Labels of the helm test pod, which the injector's NetworkPolicy admits. */}}
{{- define "jwt-sidecar.testLabels" -}}
app.kubernetes.io/name: {{ include "jwt-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
{{- end -}}

{{/* The label every injected pod carries (the injector sets it). */}}
{{- define "jwt-sidecar.injectedLabel" -}}jwt-sidecar.io/injected{{- end -}}

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

{{/* The key relay's objects (Deployment, Service, PodDisruptionBudget). */}}
{{- define "jwt-sidecar.relayName" -}}
{{- printf "%s-key-relay" (include "jwt-sidecar.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "jwt-sidecar.relaySelectorLabels" -}}
app.kubernetes.io/name: {{ include "jwt-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: key-relay
{{- end -}}

{{- define "jwt-sidecar.relayLabels" -}}
helm.sh/chart: {{ include "jwt-sidecar.chart" . }}
{{ include "jwt-sidecar.relaySelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: jwt-sidecar
{{- end -}}

{{/* The relay's image: repository@digest, or repository:tag (tag defaults to appVersion). */}}
{{- define "jwt-sidecar.relayImage" -}}
{{- $img := .Values.relay.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* JWKS_RELAY_URL of the injected sidecars: the relay's Service, which
     they reach from any namespace. */}}
{{- define "jwt-sidecar.relayURL" -}}
{{- printf "http://%s.%s.svc:%d" (include "jwt-sidecar.relayName" .) .Release.Namespace (int .Values.relay.port) -}}
{{- end -}}

{{/* The relay's JWKS_URLS and OIDC_ISSUER_URLS as {"jwks": [...], "oidc":
     [...]} JSON: its own lists, or the sidecars' defaults. A relay with
     neither cannot start, so the chart refuses it. */}}
{{- define "jwt-sidecar.relaySources" -}}
{{- $jwks := .Values.relay.jwksURLs | default .Values.sidecar.jwksURLs -}}
{{- $oidc := .Values.relay.oidcIssuerURLs -}}
{{- if and (not $oidc) .Values.sidecar.oidcIssuerURL -}}
{{- $oidc = list .Values.sidecar.oidcIssuerURL -}}
{{- end -}}
{{- if not (or $jwks $oidc) -}}
{{- fail "relay.enabled: set relay.jwksURLs or relay.oidcIssuerURLs (or sidecar.jwksURLs / sidecar.oidcIssuerURL): the relay serves only the sources it is given" -}}
{{- end -}}
{{- dict "jwks" $jwks "oidc" $oidc | toJson -}}
{{- end -}}

{{/* SIDECAR_ENV: sidecar.env, plus JWKS_RELAY_URL when the relay is on
     (sidecar.env's own JWKS_RELAY_URL wins). */}}
{{- define "jwt-sidecar.sidecarEnv" -}}
{{- $env := deepCopy (.Values.sidecar.env | default dict) -}}
{{- if and .Values.relay.enabled (not (hasKey $env "JWKS_RELAY_URL")) -}}
{{- $_ := set $env "JWKS_RELAY_URL" (include "jwt-sidecar.relayURL" .) -}}
{{- end -}}
{{- $env | toJson -}}
{{- end -}}
