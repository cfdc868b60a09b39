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
{{- /* The provisioner refuses to start on two exports with one source or one mount. */ -}}
{{- $mounts := dict "/persistentvolumes" "the export nfs.server:nfs.path" -}}
{{- $sources := dict (printf "%s:%s" (lower (toString .Values.nfs.server)) (clean (toString .Values.nfs.path))) "nfs.server:nfs.path" -}}
{{- $classes := dict -}}
{{- if .Values.storageClass.create -}}
{{- $_ := set $classes (toString .Values.storageClass.name) "storageClass.name" -}}
{{- end -}}
{{- range $i, $export := (include "nfs-provisioner.extraExports" . | fromJson).exports -}}
{{- $key := printf "nfs.extraExports[%d]" $i -}}
{{- $mount := clean $export.mountPath -}}
{{- if hasKey $mounts $mount -}}
{{- fail (printf "%s.mountPath %s is already where %s is mounted: give each export its own mountPath" $key $export.mountPath (get $mounts $mount)) -}}
{{- end -}}
{{- $_ := set $mounts $mount (printf "the export %s" $key) -}}
{{- $source := printf "%s:%s" (lower $export.server) (clean $export.path) -}}
{{- if hasKey $sources $source -}}
{{- fail (printf "%s is %s:%s, the same export as %s: list each export once" $key $export.server $export.path (get $sources $source)) -}}
{{- end -}}
{{- $_ := set $sources $source $key -}}
{{- with $export.storageClass -}}
{{- $name := toString .name -}}
{{- if hasKey $classes $name -}}
{{- fail (printf "%s.storageClass.name %q is also the name of %s: StorageClass names must differ" $key $name (get $classes $name)) -}}
{{- end -}}
{{- $_ := set $classes $name (printf "%s.storageClass.name" $key) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
A value as the provisioner reads it: strings verbatim, whole numbers without an exponent. YAML
numbers reach templates as float64, which `toString` prints as 1e+06 for 1000000 and
4.294967294e+09 for a large uid; the provisioner parses ids as digits only.
*/}}
{{- define "nfs-provisioner.string" -}}
{{- if kindIs "string" . -}}
{{- . -}}
{{- else if and (kindIs "float64" .) (eq . (floor .)) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/* "true" when a value is set: not null and not "" (0 counts as set: uid 0 is root). */}}
{{- define "nfs-provisioner.isSet" -}}
{{- if and (not (kindIs "invalid" .)) (ne (toString .) "") -}}true{{- end -}}
{{- end -}}

{{/*
nfs.extraExports with the chart's defaults filled in, as JSON {"exports": [...]} (templates can
only return strings). Each: server, path, mountPath (default /persistentvolumes-<i>), the pod
volume name, the static PersistentVolume/Claim names used with nfs.mountOptions, and
storageClass (the entry's, or null).
*/}}
{{- define "nfs-provisioner.extraExports" -}}
{{- $exports := list -}}
{{- $volumeName := include "nfs-provisioner.rootVolumeName" . | trunc 54 | trimSuffix "-" -}}
{{- $claimName := include "nfs-provisioner.rootClaimName" . | trunc 54 | trimSuffix "-" -}}
{{- range $i, $entry := .Values.nfs.extraExports -}}
{{- $exports = append $exports (dict
      "server" (toString $entry.server)
      "path" (toString $entry.path)
      "mountPath" (default (printf "/persistentvolumes-%d" $i) $entry.mountPath)
      "volumeName" (printf "extra-export-%d" $i)
      "pvName" (printf "%s-extra-%d" $volumeName $i)
      "claimName" (printf "%s-extra-%d" $claimName $i)
      "storageClass" $entry.storageClass) -}}
{{- end -}}
{{- dict "exports" $exports | toJson -}}
{{- end -}}

{{/* NFS_PROVISIONER_EXTRA_EXPORTS: SERVER:/SHARE=/LOCAL/MOUNT per extra export, comma-separated. */}}
{{- define "nfs-provisioner.extraExportsEnv" -}}
{{- $entries := list -}}
{{- range (include "nfs-provisioner.extraExports" . | fromJson).exports -}}
{{- $entries = append $entries (printf "%s:%s=%s" .server .path .mountPath) -}}
{{- end -}}
{{- join "," $entries -}}
{{- end -}}

{{/*
One StorageClass. Context: dict "root" (the chart's top context), "class" (storageClass values:
the main class's, or an extra export's merged over them) and "export" (null for the main export;
else server and path, which become the parameters server and share that select it).
*/}}
{{- define "nfs-provisioner.storageClass" -}}
{{- $root := .root -}}
{{- $class := .class -}}
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: {{ $class.name }}
  labels:
    {{- include "nfs-provisioner.labels" $root | nindent 4 }}
  {{- if or $class.defaultClass $class.annotations }}
  annotations:
    {{- with $class.annotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- if $class.defaultClass }}
    storageclass.kubernetes.io/is-default-class: "true"
    {{- end }}
  {{- end }}
provisioner: {{ include "nfs-provisioner.provisionerName" $root | quote }}
allowVolumeExpansion: {{ $class.allowVolumeExpansion }}
reclaimPolicy: {{ $class.reclaimPolicy }}
volumeBindingMode: {{ $class.volumeBindingMode }}
# Only the parameters the provisioner knows: it refuses a class with any other.
parameters:
  {{- with .export }}
  server: {{ .server | quote }}
  share: {{ .path | quote }}
  {{- end }}
  archiveOnDelete: {{ $class.archiveOnDelete | toString | quote }}
  {{- with $class.onDelete }}
  onDelete: {{ . | quote }}
  {{- end }}
  {{- with $class.pathPattern }}
  pathPattern: {{ . | quote }}
  {{- end }}
  {{- if include "nfs-provisioner.isSet" $class.uid }}
  uid: {{ include "nfs-provisioner.string" $class.uid | quote }}
  {{- end }}
  {{- if include "nfs-provisioner.isSet" $class.gid }}
  gid: {{ include "nfs-provisioner.string" $class.gid | quote }}
  {{- end }}
  {{- with $class.mode }}
  mode: {{ . | quote }}
  {{- end }}
  {{- if $class.allowClaimOwnership }}
  allowClaimOwnership: "true"
  {{- end }}
  {{- with $class.archiveRetention }}
  archiveRetention: {{ . | quote }}
  {{- end }}
{{- with $root.Values.nfs.mountOptions }}
mountOptions:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
