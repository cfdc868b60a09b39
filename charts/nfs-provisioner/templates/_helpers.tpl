{{/* Chart name, overridable with nameOverride. */}}
{{- define "nfs-provisioner.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full name of the release's objects. As in both upstream charts, a release whose name already
contains the chart name is used as is. The upstream chart names count too, so that
`helm install nfs-client-provisioner ...` (or nfs-subdir-external-provisioner) pointed at this
chart yields the very names, and so the provisioner name, that the upstream chart gave.
*/}}
{{- define "nfs-provisioner.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "nfs-provisioner.name" . -}}
{{- $releaseHasName := false -}}
{{- range list $name "nfs-client-provisioner" "nfs-subdir-external-provisioner" -}}
{{- if contains . $.Release.Name -}}{{- $releaseHasName = true -}}{{- end -}}
{{- end -}}
{{- if $releaseHasName -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "nfs-provisioner.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels: `app` and `release`, the keys both upstream charts select on. A Deployment's
selector is immutable, so keeping them lets an upstream release be upgraded in place (with
nameOverride set to the upstream chart name).
*/}}
{{- define "nfs-provisioner.selectorLabels" -}}
app: {{ include "nfs-provisioner.name" . }}
release: {{ .Release.Name }}
{{- end -}}

{{- define "nfs-provisioner.labels" -}}
{{ include "nfs-provisioner.selectorLabels" . }}
chart: {{ include "nfs-provisioner.chart" . }}
heritage: {{ .Release.Service }}
app.kubernetes.io/name: {{ include "nfs-provisioner.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "nfs-provisioner.chart" . }}
{{- with .Values.labels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The name StorageClasses use as `provisioner`; upstream's default when unset. */}}
{{- define "nfs-provisioner.provisionerName" -}}
{{- if .Values.storageClass.provisionerName -}}
{{- .Values.storageClass.provisionerName -}}
{{- else -}}
{{- printf "cluster.local/%s" (include "nfs-provisioner.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* The provisioner's default Lease name: the provisioner name with "/" replaced by "-". */}}
{{- define "nfs-provisioner.leaseName" -}}
{{- include "nfs-provisioner.provisionerName" . | replace "/" "-" -}}
{{- end -}}

{{- define "nfs-provisioner.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "nfs-provisioner.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "nfs-provisioner.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Name of the static PersistentVolume/Claim that carry nfs.mountOptions (as upstream). */}}
{{- define "nfs-provisioner.rootVolumeName" -}}
{{- printf "pv-%s" (include "nfs-provisioner.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "nfs-provisioner.rootClaimName" -}}
{{- printf "pvc-%s" (include "nfs-provisioner.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Checks that no schema can express; each failure is one line that says what to set. */}}
{{- define "nfs-provisioner.validate" -}}
{{- if not .Values.nfs.server -}}
{{- fail "nfs.server is required: set it to the NFS server's name or IP, e.g. --set nfs.server=10.0.0.5" -}}
{{- end -}}
{{- if not (hasPrefix "/" (toString .Values.nfs.path)) -}}
{{- fail (printf "nfs.path must be the absolute path of the export on the server, got %q" (toString .Values.nfs.path)) -}}
{{- end -}}
{{- end -}}
