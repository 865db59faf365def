{{/* What the services may ask of the cluster at most: PostgreSQL connections and each pod's heap.
     docs/deployment.md "Database connections" and "Memory" explain the sums. */}}

{{/* Pods a service may run at once: its HPA maximum (or replicas), plus the rolling update's
     surge pod. Call with the service's values. */}}
{{- define "hub.podsAtMost" -}}
{{- $n := int .replicas }}
{{- if and .autoscaling .autoscaling.enabled }}{{ $n = int .autoscaling.maxReplicas }}{{ end }}
{{- if gt $n 0 }}{{ $n = add $n 1 }}{{ end }}
{{- $n }}
{{- end }}

{{/* Connections of the migration hook's pool (it migrates one transaction at a time). */}}
{{- define "hub.migrationPoolMax" -}}2{{- end }}

{{/* Whether a service's pods need DATABASE_SESSION_URL: they hold LISTEN connections and the
     pool goes through PgBouncer. Call with (dict "root" $ "s" <service values>). */}}
{{- define "hub.needsSessionUrl" -}}
{{- if and .root.Values.postgresql.pgbouncer.enabled (gt (int .s.database.listenConnections) 0) }}true{{ end }}
{{- end }}

{{/* The services' connections at their most, as JSON: pool (through PgBouncer when enabled,
     the migration hook included), listen (always on PostgreSQL itself), onPostgres, budget. */}}
{{- define "hub.connectionSums" -}}
{{- $pg := .Values.postgresql }}
{{- $pool := 0 }}
{{- $listen := 0 }}
{{- range $svc, $s := .Values.services }}
{{- if $s.enabled }}
{{- $pods := int (include "hub.podsAtMost" $s) }}
{{- $pool = add $pool (mul $pods (int $s.database.poolMax)) }}
{{- $listen = add $listen (mul $pods (int $s.database.listenConnections)) }}
{{- end }}
{{- end }}
{{- if .Values.migration.enabled }}{{ $pool = add $pool (int (include "hub.migrationPoolMax" .)) }}{{ end }}
{{- $onPostgres := add $pool $listen }}
{{- if $pg.pgbouncer.enabled }}{{ $onPostgres = add (int $pg.pgbouncer.serverConnections) $listen }}{{ end }}
{{- dict "pool" (int $pool) "listen" (int $listen) "onPostgres" (int $onPostgres) "budget" (int (sub (int $pg.maxConnections) (int $pg.reservedConnections))) | toJson }}
{{- end }}

{{/* Fails the render when the services' connections at their most do not fit the server. */}}
{{- define "hub.checkConnections" -}}
{{- $pg := .Values.postgresql }}
{{- $c := include "hub.connectionSums" . | fromJson }}
{{- $pool := int $c.pool }}
{{- $listen := int $c.listen }}
{{- $budget := int $c.budget }}
{{- if $pg.pgbouncer.enabled }}
{{- if gt $pool (int $pg.pgbouncer.maxClientConnections) }}
{{- fail (printf "the services' pools open up to %d connections to PgBouncer, over postgresql.pgbouncer.maxClientConnections (%d): lower services.<name>.database.poolMax or autoscaling.maxReplicas, or raise PgBouncer's max_client_conn (docs/deployment.md, \"Database connections\")" $pool (int $pg.pgbouncer.maxClientConnections)) }}
{{- end }}
{{- if gt (int $c.onPostgres) $budget }}
{{- fail (printf "PgBouncer's %d server connections and %d LISTEN connections need %d of PostgreSQL's connections, over postgresql.maxConnections (%d) less postgresql.reservedConnections (%d) (docs/deployment.md, \"Database connections\")" (int $pg.pgbouncer.serverConnections) $listen (int $c.onPostgres) (int $pg.maxConnections) (int $pg.reservedConnections)) }}
{{- end }}
{{- else if gt (int $c.onPostgres) $budget }}
{{- fail (printf "the services may open %d PostgreSQL connections (pools %d, LISTEN %d, at each HPA maximum plus the rolling update's surge pod), over postgresql.maxConnections (%d) less postgresql.reservedConnections (%d): lower services.<name>.database.poolMax or autoscaling.maxReplicas, or put PgBouncer in front (postgresql.pgbouncer; docs/deployment.md, \"Database connections\")" (int $c.onPostgres) $pool $listen (int $pg.maxConnections) (int $pg.reservedConnections)) }}
{{- end }}
{{- end }}

{{/* The V8 heap limit of a service, in MiB: nodeHeap.percentOfMemoryLimit of its memory limit, so
     the heap gives out (a JavaScript out-of-memory error with a stack) before the kernel's OOM
     kill. Call with (dict "root" $ "svc" name "s" <service values>). */}}
{{- define "hub.heapMb" -}}
{{- $limit := required (printf "services.%s.resources.limits.memory is required (the heap limit is derived from it)" .svc) (dig "limits" "memory" "" .s.resources) }}
{{- $mi := 0 }}
{{- if hasSuffix "Gi" $limit }}{{ $mi = mul (int (trimSuffix "Gi" $limit)) 1024 }}
{{- else if hasSuffix "Mi" $limit }}{{ $mi = int (trimSuffix "Mi" $limit) }}
{{- else }}{{ fail (printf "services.%s.resources.limits.memory must be in Mi or Gi, not %s" .svc $limit) }}
{{- end }}
{{- div (mul $mi (int .root.Values.nodeHeap.percentOfMemoryLimit)) 100 }}
{{- end }}
