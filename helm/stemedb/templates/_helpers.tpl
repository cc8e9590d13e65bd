{{- define "stemedb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "stemedb.fullname" -}}
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

{{- define "stemedb.headless" -}}
{{- printf "%s-headless" (include "stemedb.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "stemedb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stemedb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "stemedb.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "stemedb.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "stemedb.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Clustering is on with more than one node. */}}
{{- define "stemedb.clustered" -}}
{{- if and .Values.cluster.enabled (gt (int .Values.replicaCount) 1) -}}true{{- end -}}
{{- end -}}

{{/* Stable DNS name of pod $i: <sts>-<i>.<headless>.<ns>.svc.<domain> */}}
{{- define "stemedb.podHost" -}}
{{- $ := index . 0 -}}
{{- printf "%s-%d.%s.%s.svc.%s" (include "stemedb.fullname" $) (index . 1) (include "stemedb.headless" $) $.Release.Namespace $.Values.cluster.clusterDomain -}}
{{- end -}}

{{- define "stemedb.tlsSecret" -}}
{{- default (printf "%s-tls" (include "stemedb.fullname" .)) .Values.tls.existingSecret -}}
{{- end -}}
{{- define "stemedb.authSecret" -}}
{{- default (printf "%s-admin-key" (include "stemedb.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}
{{- define "stemedb.clusterKeySecret" -}}
{{- default (printf "%s-cluster-key" (include "stemedb.fullname" .)) .Values.clusterKeyExistingSecret -}}
{{- end -}}

{{/* gRPC health (grpc.health.v1) on 18182; kubelet cannot speak it over
TLS, so with TLS on it is a TCP check. */}}
{{- define "stemedb.serverProbe" -}}
{{- if .Values.tls.enabled -}}
tcpSocket:
  port: 18182
{{- else -}}
grpc:
  port: 18182
{{- end -}}
{{- end -}}

{{- define "stemedb.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}
