{{/*
Every template starts with this: it completes .Values in place, so that all templates see the
same complete values whatever helm passed.
- Keys missing from .Values are filled from files/defaults.yaml (a copy of values.yaml; a test
  keeps the two equal). `helm upgrade --reuse-values` of an upstream release replaces this
  chart's defaults with the old chart's values, which lack every key upstream did not have.
  Only missing keys are filled: a false, 0 or "" given by the user stays as given. The fill
  runs only when .Values lacks `valuesOf`, a key of this chart's values.yaml that no upstream
  chart has and no migration command sets: with this chart's own values, a key missing is one
  the user set to null to drop a default (securityContext, resources), and it stays dropped.
- nfs.path, when empty, gets the default of the chart the release came from (compat).
*/}}
{{- define "nfs-provisioner.prepare" -}}
{{- if not (hasKey .Values "_prepared") -}}
{{- if not (hasKey .Values "valuesOf") -}}
{{- include "nfs-provisioner.fillMissing" (dict "dst" .Values "src" (.Files.Get "files/defaults.yaml" | fromYaml)) -}}
{{- end -}}
{{- if not (include "nfs-provisioner.isSet" .Values.nfs.path) -}}
{{- $_ := set .Values.nfs "path" (eq (toString .Values.compat) "nfs-client-provisioner" | ternary "/ifs/kubernetes" "/nfs-storage") -}}
{{- end -}}
{{- $_ := set .Values "_prepared" true -}}
{{- include "nfs-provisioner.validate" . -}}
{{- end -}}
{{- end -}}

{{/* Sets each key of .src missing from .dst, recursing into maps both have. */}}
{{- define "nfs-provisioner.fillMissing" -}}
{{- $dst := .dst -}}
{{- range $key, $value := .src -}}
{{- if not (hasKey $dst $key) -}}
{{- $_ := set $dst $key $value -}}
{{- else if and (kindIs "map" $value) (kindIs "map" (get $dst $key)) -}}
{{- include "nfs-provisioner.fillMissing" (dict "dst" (get $dst $key) "src" $value) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Chart name: nameOverride, else the name of the chart the release came from (compat), else
this chart's.
*/}}
{{- define "nfs-provisioner.name" -}}
{{- default (default .Chart.Name .Values.compat) .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full name of the release's objects. With compat set: exactly the upstream chart's rule (a
release whose name contains the chart name, or nameOverride, is used as is). Without: the same
rule, where the upstream chart names count too, so that `helm install nfs-client-provisioner`
pointed at this chart yields the names stable/nfs-client-provisioner gave that release.
*/}}
{{- define "nfs-provisioner.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "nfs-provisioner.name" . -}}
{{- $releaseHasName := contains $name .Release.Name -}}
{{- if not .Values.compat -}}
{{- range list "nfs-client-provisioner" "nfs-subdir-external-provisioner" -}}
{{- if contains . $.Release.Name -}}{{- $releaseHasName = true -}}{{- end -}}
{{- end -}}
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
Selector labels: `app` and `release`, the keys and values both upstream charts select on (with
compat set, `app` is the upstream chart's name). A Deployment's selector is immutable: these let
an upstream release be upgraded in place.
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
{{- /* With compat, untruncated as upstream (volume and claim names may be 253 long). */ -}}
{{- define "nfs-provisioner.rootVolumeName" -}}
{{- $name := printf "pv-%s" (include "nfs-provisioner.fullname" .) -}}
{{- if .Values.compat }}{{ $name }}{{ else }}{{ $name | trunc 63 | trimSuffix "-" }}{{ end -}}
{{- end -}}

{{- define "nfs-provisioner.rootClaimName" -}}
{{- $name := printf "pvc-%s" (include "nfs-provisioner.fullname" .) -}}
{{- if .Values.compat }}{{ $name }}{{ else }}{{ $name | trunc 63 | trimSuffix "-" }}{{ end -}}
{{- end -}}

{{/* Checks that no schema can express; each failure is one line that says what to set. */}}
{{- define "nfs-provisioner.validate" -}}
{{- if not .Values.nfs.server -}}
{{- fail "nfs.server is required: set it to the NFS server's name or IP, e.g. --set nfs.server=10.0.0.5" -}}
{{- end -}}
{{- if not (hasPrefix "/" (toString .Values.nfs.path)) -}}
{{- fail (printf "nfs.path must be the absolute path of the export on the server, got %q" (toString .Values.nfs.path)) -}}
{{- end -}}
{{- $compat := toString .Values.compat -}}
{{- if not (has $compat (list "" "nfs-client-provisioner" "nfs-subdir-external-provisioner")) -}}
{{- fail (printf "compat must be empty, nfs-subdir-external-provisioner or nfs-client-provisioner (the chart the release was installed with), got %q" $compat) -}}
{{- end -}}
{{- if .Values.buildMode -}}
{{- fail "buildMode is the upstream charts' CI switch (the export replaced by an emptyDir), which this chart does not have: remove it from your values" -}}
{{- end -}}
{{- if .Values.podSecurityPolicy.enabled -}}
{{- fail "podSecurityPolicy.enabled=true: PodSecurityPolicy was removed in Kubernetes 1.25 and this chart renders none. Set podSecurityPolicy.enabled=false; use Pod Security Admission (namespace label pod-security.kubernetes.io/enforce) or, on an older cluster that still enforces PodSecurityPolicy, let the ServiceAccount use a policy yourself" -}}
{{- end -}}
{{- include "nfs-provisioner.validateImage" . -}}
{{- if and (not .Values.rbac.create) (not .Values.rbac.externalRulesGranted) -}}
{{- fail "rbac.create=false: this provisioner needs rules that the upstream charts' RBAC lacks (leases create, get and update in the release namespace; persistentvolumes patch; persistentvolumeclaims/status patch; no endpoints). Grant the rules listed under RBAC in the chart's README to its ServiceAccount, then set rbac.externalRulesGranted=true; or set rbac.create=true" -}}
{{- end -}}
{{- include "nfs-provisioner.validateLive" . -}}
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
{{- $archive := toString $class.archiveOnDelete -}}
{{- if not (has $archive (list "1" "t" "T" "TRUE" "true" "True" "0" "f" "F" "FALSE" "false" "False")) -}}
{{- fail (printf "StorageClass %s: archiveOnDelete %q is not one of Go's ParseBool spellings (true, false, 1, 0, t, f, TRUE, FALSE, True, False): the Go provisioner failed to delete this class's volumes with it, and this one refuses the class. Set storageClass.archiveOnDelete to true (archive) or false (remove)" $class.name $archive) -}}
{{- end -}}
{{- $onDelete := toString (default "" $class.onDelete) -}}
{{- if not (has $onDelete (list "" "delete" "retain")) -}}
{{- fail (printf "StorageClass %s: onDelete %q is neither delete nor retain. The Go provisioner ignored it (it compares case-sensitively) and archiveOnDelete decided; this provisioner refuses such a class. Set storageClass.onDelete to delete or retain, or leave it empty to keep archiving; a StorageClass's parameters cannot change in place, so an existing class must be deleted first (kubectl delete storageclass %s; its volumes stay)" $class.name $onDelete $class.name) -}}
{{- end -}}
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

{{/* The Go provisioner's images, and their tags, cannot run under this chart. */}}
{{- define "nfs-provisioner.validateImage" -}}
{{- $repository := toString .Values.image.repository -}}
{{- $reuse := printf "with helm upgrade --reuse-values, add --set image.repository=ghcr.io/nfs-provisioner/nfs-provisioner --set image.tag=%s" .Chart.AppVersion -}}
{{- if has (last (splitList "/" $repository)) (list "nfs-subdir-external-provisioner" "nfs-client-provisioner") -}}
{{- fail (printf "image.repository %s is the Go provisioner's image: it serves no /healthz or /readyz, so this chart's probes would restart it for ever. Remove image.repository and image.tag from your values to run this chart's image (%s)" $repository $reuse) -}}
{{- end -}}
{{- if regexMatch "^v(3\\.1\\.0-k8s1\\.11|4\\.0\\.[0-9]+)$" (toString .Values.image.tag) -}}
{{- fail (printf "image.tag %s is a tag of the Go provisioner's image, not of %s. Remove image.tag from your values (%s)" (toString .Values.image.tag) $repository $reuse) -}}
{{- end -}}
{{- end -}}

{{/*
Checks against the live cluster (lookup answers nothing under `helm template`): a release must
not take over an existing StorageClass or Deployment under other names. Changing the
provisioner name would orphan every volume of the class, the selector cannot change, and a
rolling update from the Go image would let two provisioners act at once.
*/}}
{{- define "nfs-provisioner.validateLive" -}}
{{- $provisioner := include "nfs-provisioner.provisionerName" . -}}
{{- if .Values.storageClass.create -}}
{{- $class := lookup "storage.k8s.io/v1" "StorageClass" "" (toString .Values.storageClass.name) -}}
{{- if and $class (ne (toString $class.provisioner) $provisioner) -}}
{{- fail (printf "StorageClass %s exists with provisioner %s, and this release would serve %s: the volumes of the class would never be archived or deleted. %s" $class.metadata.name $class.provisioner $provisioner (include "nfs-provisioner.compatAdvice" (dict "root" . "provisioner" $class.provisioner))) -}}
{{- end -}}
{{- end -}}
{{- $fullname := include "nfs-provisioner.fullname" . -}}
{{- range $deployment := (lookup "apps/v1" "Deployment" .Release.Namespace "").items -}}
{{- $release := dig "metadata" "annotations" "meta.helm.sh/release-name" "" $deployment -}}
{{- if or (eq $deployment.metadata.name $fullname) (eq (toString $release) $.Release.Name) -}}
{{- $app := toString (dig "spec" "selector" "matchLabels" "app" "" $deployment) -}}
{{- if and (eq $deployment.metadata.name $fullname) $app (ne $app (include "nfs-provisioner.name" $)) -}}
{{- fail (printf "Deployment %s selects app=%s and a Deployment's selector cannot change: set compat to the chart the release was installed with (nfs-subdir-external-provisioner or nfs-client-provisioner), and nameOverride as it was then (app=%s)" $deployment.metadata.name $app $app) -}}
{{- end -}}
{{- range (dig "spec" "template" "spec" "containers" (list) $deployment) -}}
{{- range (default (list) .env) -}}
{{- if and (eq .name "PROVISIONER_NAME") (ne (toString .value) $provisioner) -}}
{{- fail (printf "Deployment %s of this release runs provisioner %s, and the upgrade would run %s instead: the volumes it made would never be archived or deleted. %s" $deployment.metadata.name .value $provisioner (include "nfs-provisioner.compatAdvice" (dict "root" $ "provisioner" .value))) -}}
{{- end -}}
{{- end -}}
{{- $image := regexReplaceAll "[:@].*$" (last (splitList "/" (toString .image))) "" -}}
{{- if and (has $image (list "nfs-subdir-external-provisioner" "nfs-client-provisioner")) (ne (toString $.Values.strategyType) "Recreate") -}}
{{- fail (printf "Deployment %s runs the Go provisioner (%s): replace it with strategyType=Recreate, so that its pods are gone before this chart's start. Its leader lock (an Endpoints object) and this provisioner's (a Lease) are different locks, so during a rolling update both would act" $deployment.metadata.name .image) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* What to set so that the provisioner name is .provisioner (context: dict "root", "provisioner"). */}}
{{- define "nfs-provisioner.compatAdvice" -}}
{{- $root := .root -}}
{{- $advice := printf "Set storageClass.provisionerName=%s" .provisioner -}}
{{- range $mode := list "nfs-subdir-external-provisioner" "nfs-client-provisioner" -}}
{{- $values := merge (dict "compat" $mode) (omit $root.Values "compat") -}}
{{- if eq (toString $.provisioner) (include "nfs-provisioner.provisionerName" (dict "Values" $values "Release" $root.Release "Chart" $root.Chart)) -}}
{{- $advice = printf "Set compat=%s (the chart this release was installed with)" $mode -}}
{{- end -}}
{{- end -}}
{{- $advice -}}
{{- end -}}

{{/* The metrics Service; Service names are DNS labels: at most 63 characters. */}}
{{- define "nfs-provisioner.metricsServiceName" -}}
{{- printf "%s-metrics" (include "nfs-provisioner.fullname" . | trunc 55 | trimSuffix "-") -}}
{{- end -}}

{{/*
"true" when a monitoring.coreos.com object is to be rendered: enabled, and the cluster serves
the kind (or force: e.g. helm template, or the CRDs come with the same install).
Context: dict "root", "values" (its values: enabled, force) and "kind".
*/}}
{{- define "nfs-provisioner.monitoring" -}}
{{- if and .values.enabled (or .values.force (.root.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" .kind))) -}}true{{- end -}}
{{- end -}}

{{/* The common labels, with "extra" (user-given, e.g. release: kube-prometheus-stack) winning. */}}
{{- define "nfs-provisioner.monitoringLabels" -}}
{{- $labels := include "nfs-provisioner.labels" .root | fromYaml -}}
{{- toYaml (mergeOverwrite $labels (default (dict) .extra)) -}}
{{- end -}}
