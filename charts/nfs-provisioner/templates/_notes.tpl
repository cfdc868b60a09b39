{{- define "nfs-provisioner.notes" -}}
{{- include "nfs-provisioner.prepare" . -}}
{{- $fullname := include "nfs-provisioner.fullname" . -}}
{{- $provisioner := include "nfs-provisioner.provisionerName" . -}}
{{- $ns := .Release.Namespace -}}
{{- $class := .Values.storageClass.name -}}
nfs-provisioner {{ .Chart.AppVersion }} serves {{ .Values.nfs.server }}:{{ .Values.nfs.path }} as provisioner "{{ $provisioner }}".
{{- range $export := (include "nfs-provisioner.extraExports" . | fromJson).exports }}
It also serves {{ $export.server }}:{{ $export.path }} (mounted at {{ $export.mountPath }}){{ with $export.storageClass }} through StorageClass "{{ .name }}"{{ else }}: a class selects it with parameters server and share{{ end }}.
{{- end }}
{{- if .Values.storageClass.create }}
StorageClass "{{ $class }}"{{ if .Values.storageClass.defaultClass }} is the cluster's default class{{ end }}: reclaimPolicy {{ .Values.storageClass.reclaimPolicy }}, {{ if .Values.storageClass.onDelete }}onDelete {{ .Values.storageClass.onDelete }}{{ else }}archiveOnDelete {{ .Values.storageClass.archiveOnDelete }}{{ end }}.
{{- else }}
No StorageClass was created (storageClass.create=false): create one with
  provisioner: {{ $provisioner }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}

WARNING: {{ .Values.replicaCount }} replicas with leaderElection.enabled=false: every replica
provisions and deletes at once. Enable leader election unless that is what you want.
{{- end }}
{{- range $kind, $values := dict "ServiceMonitor" .Values.metrics.serviceMonitor "PrometheusRule" .Values.metrics.prometheusRule }}
{{- if and $values.enabled (not (include "nfs-provisioner.monitoring" (dict "root" $ "values" $values "kind" $kind))) }}

NOTE: no {{ $kind }} was rendered: the cluster does not serve monitoring.coreos.com/v1 (install
the Prometheus Operator's CRDs first, or set metrics.{{ $kind | untitle }}.force=true).
{{- end }}
{{- end }}
{{- if not .Values.rbac.create }}

rbac.create=false: bind the ServiceAccount "{{ include "nfs-provisioner.serviceAccountName" . }}" to the rules listed in the
chart's README (section RBAC) yourself, or the provisioner cannot work.
{{- end }}

Check that it works:

1. The provisioner is running and ready (readiness = its caches are synced):
     kubectl -n {{ $ns }} rollout status deployment/{{ $fullname }}
     kubectl -n {{ $ns }} logs deployment/{{ $fullname }} --tail=20
{{- if .Values.storageClass.create }}

2. The class exists{{ if .Values.storageClass.defaultClass }} and is the only one marked (default){{ end }}:
     kubectl get storageclass
{{- end }}

3. A test claim gets a volume:
     echo '{"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "nfs-provisioner-check"}, "spec": {"storageClassName": "{{ $class }}", "accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "1Mi"}}}}' | kubectl -n {{ $ns }} apply -f -
     kubectl -n {{ $ns }} get pvc nfs-provisioner-check        # STATUS Bound within seconds
     kubectl -n {{ $ns }} describe pvc nfs-provisioner-check   # its events say why if not
   On the server, {{ .Values.nfs.path }} now holds the directory {{ $ns }}-nfs-provisioner-check-<volume name>.

4. Clean up: deleting the claim {{ if eq (toString .Values.storageClass.reclaimPolicy) "Retain" }}keeps the volume and its directory (reclaimPolicy Retain){{ else if eq (toString .Values.storageClass.onDelete) "retain" }}deletes the volume and keeps its directory{{ else if or (eq (toString .Values.storageClass.onDelete) "delete") (eq (toString .Values.storageClass.archiveOnDelete) "false") }}deletes the volume and removes its directory{{ else }}deletes the volume and renames its directory to archived-<directory>{{ end }}:
     kubectl -n {{ $ns }} delete pvc nfs-provisioner-check

Metrics, liveness and readiness: port {{ .Values.metrics.port }}, paths /metrics, /healthz, /readyz
{{- if .Values.metrics.service.enabled }} (Service {{ printf "%s-metrics" ($fullname | trunc 55 | trimSuffix "-") }}){{ end }}.
{{- end -}}
