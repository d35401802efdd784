{{/* Names and labels. */}}
{{- define "consentgate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "consentgate.labels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "consentgate.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "consentgate.image" -}}
{{- $v := .root.Values.image -}}
{{- $reg := ternary "" (printf "%s/" (trimSuffix "/" $v.registry)) (empty $v.registry) -}}
{{- printf "%s%s%s:%s" $reg $v.prefix .service (default .root.Chart.AppVersion $v.tag) -}}
{{- end -}}

{{- define "consentgate.policy" -}}
{{- if .Values.policy -}}{{ .Values.policy }}{{- else -}}{{ .Files.Get "files/policy.yaml" }}{{- end -}}
{{- end -}}

{{/* The port of host:port (addr), or default; what names the value. */}}
{{- define "consentgate.addrPort" -}}
{{- $p := regexFind ":[0-9]+$" .addr | trimPrefix ":" -}}
{{- if not $p -}}{{- $p = toString .default -}}{{- end -}}
{{- if or (lt (int $p) 1) (gt (int $p) 65535) -}}{{ fail (printf "%s: %q has no port between 1 and 65535" .what .addr) }}{{- end -}}
{{- $p -}}
{{- end -}}

{{/* The port a URL connects to: its own, or its scheme's (http 80, https 443). */}}
{{- define "consentgate.urlPort" -}}
{{- $u := urlParse .url -}}
{{- $p := regexFind ":[0-9]+$" $u.host | trimPrefix ":" -}}
{{- if not $p -}}
{{- $p = get (dict "http" "80" "https" "443") $u.scheme -}}
{{- end -}}
{{- if not $p -}}{{ fail (printf "%s must be an http:// or https:// URL (the NetworkPolicy opens its port; networkPolicy.egressPorts adds others)" .what) }}{{- end -}}
{{- $p -}}
{{- end -}}

{{/* Checks of the values: a bad value stops the render saying what to set. */}}
{{- define "consentgate.validate" -}}
{{- $v := .Values -}}
{{- if not $v.kafka.brokers -}}{{ fail "set kafka.brokers: the Kafka bootstrap brokers, comma-separated host:port" }}{{- end -}}
{{- if and $v.kafka.tls.enabled (not $v.kafka.tls.existingSecret) -}}{{ fail "kafka.tls.enabled needs kafka.tls.existingSecret: a Secret with ca.crt (and tls.crt, tls.key with kafka.tls.clientCert)" }}{{- end -}}
{{- if not $v.kafka.tls.enabled -}}
{{- range $k := list "existingSecret" "clientCert" "serverName" -}}
{{- if get $v.kafka.tls $k -}}{{ fail (printf "kafka.tls.%s is set while kafka.tls.enabled is false: the clients would connect in plaintext; set kafka.tls.enabled=true or unset kafka.tls.%s" $k $k) }}{{- end -}}
{{- end -}}
{{- end -}}
{{- range $key := list "enforcer" "consentSync" "ledger" -}}
{{- if and (dig "kafka" "sasl" "existingSecret" "" (get $v $key)) (not $v.kafka.sasl.mechanism) -}}{{ fail (printf "%s.kafka.sasl.existingSecret is set without kafka.sasl.mechanism: the clients would connect without SASL; set kafka.sasl.mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) or unset it" $key) }}{{- end -}}
{{- end -}}
{{- if and $v.kafka.sasl.existingSecret (not $v.kafka.sasl.mechanism) -}}{{ fail "kafka.sasl.existingSecret is set without kafka.sasl.mechanism: the clients would connect without SASL; set kafka.sasl.mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) or unset kafka.sasl.existingSecret" }}{{- end -}}
{{- if and (eq (toString $v.kafka.sasl.mechanism) "PLAIN") (not $v.kafka.tls.enabled) -}}{{ fail "kafka.sasl.mechanism PLAIN sends the password itself: it needs kafka.tls.enabled=true (or use SCRAM-SHA-256/SCRAM-SHA-512)" }}{{- end -}}
{{- if $v.kafka.sasl.mechanism -}}
{{- if not (has $v.kafka.sasl.mechanism (list "PLAIN" "SCRAM-SHA-256" "SCRAM-SHA-512")) -}}{{ fail (printf "kafka.sasl.mechanism %q: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512" $v.kafka.sasl.mechanism) }}{{- end -}}
{{- if not $v.kafka.sasl.existingSecret -}}
{{- range $key := list "enforcer" "consentSync" "ledger" -}}
{{- $c := get $v $key -}}
{{- if and $c.enabled (not (dig "kafka" "sasl" "existingSecret" "" $c)) -}}{{ fail (printf "kafka.sasl.mechanism needs a Secret with the user name and the password: set kafka.sasl.existingSecret (shared), or %s.kafka.sasl.existingSecret (its own principal, as provision plans)" $key) }}{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if or $v.enforcer.enabled $v.consentSync.enabled -}}
{{- if not $v.redis.addr -}}{{ fail "set redis.addr: Redis host:port (several, comma-separated, for a Redis Cluster)" }}{{- end -}}
{{- end -}}
{{- if not $v.redis.tls.enabled -}}
{{- range $k := list "existingSecret" "clientCert" "serverName" -}}
{{- if get $v.redis.tls $k -}}{{ fail (printf "redis.tls.%s is set while redis.tls.enabled is false: the clients would connect in plaintext; set redis.tls.enabled=true or unset redis.tls.%s" $k $k) }}{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $v.redis.tls.enabled (not $v.redis.tls.existingSecret) -}}{{ fail "redis.tls.enabled needs redis.tls.existingSecret: a Secret with ca.crt (and tls.crt, tls.key with redis.tls.clientCert)" }}{{- end -}}
{{- if and $v.redis.usernameKey (not $v.redis.existingSecret) -}}{{ fail "redis.usernameKey needs redis.existingSecret" }}{{- end -}}
{{- if not $v.topics.keys -}}{{ fail "set topics.keys: the keys topic of crypto-shredding (consent.keys), which the enforcer, consent-sync and the ledger must name alike" }}{{- end -}}
{{- if and $v.enforcer.kek.existingSecret (not $v.enforcer.kek.key) -}}{{ fail "enforcer.kek.existingSecret needs enforcer.kek.key: the item of the Secret that holds the key-encryption key" }}{{- end -}}
{{- if and $v.enforcer.enabled (not $v.pseudonymisation.existingSecret) -}}{{ fail "set pseudonymisation.existingSecret: the Secret holding the pseudonymisation key (the same for every enforcer; there is no default key)" }}{{- end -}}
{{- if and $v.consentSync.enabled $v.consentSync.intake.enabled (not (or $v.consentSync.intake.tokensSecret $v.consentSync.intake.clientCASecret)) -}}{{ fail "the intake needs consentSync.intake.tokensSecret (bearer tokens) or consentSync.intake.clientCASecret (mutual TLS)" }}{{- end -}}
{{- if and $v.consentSync.intake.clientCASecret (not $v.consentSync.intake.tlsSecret) -}}{{ fail "consentSync.intake.clientCASecret needs consentSync.intake.tlsSecret (the intake's own certificate)" }}{{- end -}}
{{- if and $v.ledger.enabled (gt (len $v.topics.consent) 1) -}}{{ fail (printf "topics.consent names %d topics and the ledger reads one (LEDGER_CHANGES_TOPIC): the changes on the others would never reach the compliance ledger; use one consent topic with ledger.enabled" (len $v.topics.consent)) }}{{- end -}}
{{- if and $v.ledger.enabled $v.ledger.console.enabled (not $v.ledger.console.tokensSecret) -}}{{ fail "ledger.console.enabled needs ledger.console.tokensSecret" }}{{- end -}}
{{- /*
The enforcers' consumer group is assigned partitions per input topic (the
range balancer of kafka-go, first of its defaults): the most enforcers that
get work is the largest input topic's partition count, not the sum over the
topics. topics.inputPartitions is that largest count.
*/ -}}
{{- $a := $v.enforcer.autoscaling -}}
{{- if $v.enforcer.enabled -}}
{{- if lt (int $v.topics.inputPartitions) 1 -}}{{ fail "topics.inputPartitions must be at least 1" }}{{- end -}}
{{- if $a.enabled -}}
{{- if gt (int $a.maxReplicaCount) (int $v.topics.inputPartitions) -}}{{ fail (printf "enforcer.autoscaling.maxReplicaCount %d is above topics.inputPartitions %d: an enforcer beyond the largest input topic's partitions gets no work; lower it or add partitions" (int $a.maxReplicaCount) (int $v.topics.inputPartitions)) }}{{- end -}}
{{- if gt (int $a.minReplicaCount) (int $a.maxReplicaCount) -}}{{ fail "enforcer.autoscaling.minReplicaCount is above maxReplicaCount" }}{{- end -}}
{{- if lt (int $a.minReplicaCount) 1 -}}{{ fail "enforcer.autoscaling.minReplicaCount must be at least 1: scaled to zero, nobody decides the events" }}{{- end -}}
{{- else -}}
{{- if lt (int $v.enforcer.replicas) 1 -}}{{ fail "enforcer.replicas must be at least 1: with none, nobody decides the events" }}{{- end -}}
{{- if gt (int $v.enforcer.replicas) (int $v.topics.inputPartitions) -}}{{ fail (printf "enforcer.replicas %d is above topics.inputPartitions %d: an enforcer beyond the largest input topic's partitions gets no work; lower it or add partitions (and raise topics.inputPartitions)" (int $v.enforcer.replicas) (int $v.topics.inputPartitions)) }}{{- end -}}
{{- end -}}
{{- end -}}
{{- /*
A PodDisruptionBudget must let a drain go on (maxUnavailable >= 1) and keep
one replica up (maxUnavailable below the replicas, so at least 2 of them).
*/ -}}
{{- range $key := list "enforcer" "consentSync" -}}
{{- $c := get $v $key -}}
{{- if and $c.enabled $c.pdb.enabled -}}
{{- $min := int $c.replicas -}}
{{- $what := printf "%s.replicas" $key -}}
{{- if and (eq $key "enforcer") $c.autoscaling.enabled -}}
{{- $min = int $c.autoscaling.minReplicaCount -}}
{{- $what = "enforcer.autoscaling.minReplicaCount" -}}
{{- end -}}
{{- if kindIs "string" $c.pdb.maxUnavailable -}}{{ fail (printf "%s.pdb.maxUnavailable must be a whole number of pods (1 or more, below %s), not a percentage" $key $what) }}{{- end -}}
{{- $mu := int $c.pdb.maxUnavailable -}}
{{- if lt $min 2 -}}{{ fail (printf "%s %d with %s.pdb.enabled: a node drain may take the only replica; set %s to 2 or more (or %s.pdb.enabled=false)" $what $min $key $what $key) }}{{- end -}}
{{- if lt $mu 1 -}}{{ fail (printf "%s.pdb.maxUnavailable %d blocks every node drain for good: set it to 1 or more" $key $mu) }}{{- end -}}
{{- if ge $mu $min -}}{{ fail (printf "%s.pdb.maxUnavailable %d lets a drain take all %d replicas (%s): set it below %d" $key $mu $min $what $min) }}{{- end -}}
{{- end -}}
{{- end -}}
{{- $svc := $v.consentSync.intake.service.type -}}
{{- if and $v.consentSync.enabled $v.consentSync.intake.enabled (has $svc (list "LoadBalancer" "NodePort")) (not $v.consentSync.intake.tlsSecret) -}}{{ fail (printf "consentSync.intake.service.type %s exposes the intake outside the cluster: it needs consentSync.intake.tlsSecret (HTTPS), or the bearer tokens and subject ids cross networks in clear text" $svc) }}{{- end -}}
{{- end -}}

{{/*
The Kafka SASL credentials of a component (a dict with root and values):
the component's own kafka.sasl.existingSecret (its own principal, as
provision plans one per service), or else the shared kafka.sasl.existingSecret.
*/}}
{{- define "consentgate.kafkaSaslSecret" -}}
{{- default .root.Values.kafka.sasl.existingSecret (dig "kafka" "sasl" "existingSecret" "" .values) -}}
{{- end -}}
{{- define "consentgate.kafkaSaslUsernameKey" -}}
{{- if dig "kafka" "sasl" "existingSecret" "" .values -}}{{ dig "kafka" "sasl" "usernameKey" "username" .values }}{{- else -}}{{ .root.Values.kafka.sasl.usernameKey }}{{- end -}}
{{- end -}}
{{- define "consentgate.kafkaSaslPasswordKey" -}}
{{- if dig "kafka" "sasl" "existingSecret" "" .values -}}{{ dig "kafka" "sasl" "passwordKey" "password" .values }}{{- else -}}{{ .root.Values.kafka.sasl.passwordKey }}{{- end -}}
{{- end -}}

{{/* Environment of every service (a dict with root and the component's
values): Kafka, schema registry, telemetry. */}}
{{- define "consentgate.kafkaEnv" -}}
{{- $v := .root.Values -}}
- name: KAFKA_BROKERS
  value: {{ $v.kafka.brokers | quote }}
{{- if $v.kafka.tls.enabled }}
- name: KAFKA_TLS
  value: "true"
- name: KAFKA_TLS_CA_FILE
  value: /var/run/secrets/consentgate/kafka-tls/ca.crt
{{- if $v.kafka.tls.clientCert }}
- name: KAFKA_TLS_CERT_FILE
  value: /var/run/secrets/consentgate/kafka-tls/tls.crt
- name: KAFKA_TLS_KEY_FILE
  value: /var/run/secrets/consentgate/kafka-tls/tls.key
{{- end }}
{{- if $v.kafka.tls.serverName }}
- name: KAFKA_TLS_SERVER_NAME
  value: {{ $v.kafka.tls.serverName | quote }}
{{- end }}
{{- end }}
{{- if $v.kafka.sasl.mechanism }}
- name: KAFKA_SASL_MECHANISM
  value: {{ $v.kafka.sasl.mechanism | quote }}
- name: KAFKA_SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ include "consentgate.kafkaSaslSecret" . }}
      key: {{ include "consentgate.kafkaSaslUsernameKey" . }}
- name: KAFKA_SASL_PASSWORD_FILE
  value: /var/run/secrets/consentgate/kafka-sasl/password
{{- end }}
{{- if $v.schemaRegistry.url }}
- name: SCHEMA_REGISTRY_URL
  value: {{ $v.schemaRegistry.url | quote }}
{{- end }}
- name: TRACE_SAMPLE_RATIO
  value: {{ $v.telemetry.traceSampleRatio | quote }}
{{- if $v.telemetry.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $v.telemetry.otlpEndpoint | quote }}
{{- end }}
{{- end -}}

{{/*
The Redis credentials of a component (a dict with root and values): the
component's own redis.existingSecret (its ACL user, README "Redis in
production"), or else the shared redis.existingSecret. Each prints a
string; redisSecret prints "" without credentials.
*/}}
{{- define "consentgate.redisSecret" -}}
{{- $own := dig "redis" "existingSecret" "" .values -}}
{{- default .root.Values.redis.existingSecret $own -}}
{{- end -}}
{{- define "consentgate.redisUsernameKey" -}}
{{- if dig "redis" "existingSecret" "" .values -}}{{ dig "redis" "usernameKey" "username" .values }}{{- else -}}{{ .root.Values.redis.usernameKey }}{{- end -}}
{{- end -}}
{{- define "consentgate.redisPasswordKey" -}}
{{- if dig "redis" "existingSecret" "" .values -}}{{ dig "redis" "passwordKey" "password" .values }}{{- else -}}{{ .root.Values.redis.passwordKey }}{{- end -}}
{{- end -}}

{{/* The Redis settings of a component (a dict with root and values). */}}
{{- define "consentgate.redisEnv" -}}
{{- $v := .root.Values -}}
{{- $secret := include "consentgate.redisSecret" . -}}
{{- $userKey := include "consentgate.redisUsernameKey" . -}}
- name: REDIS_ADDR
  value: {{ $v.redis.addr | quote }}
{{- if $v.redis.keyPrefix }}
- name: CONSENT_KEY_PREFIX
  value: {{ $v.redis.keyPrefix | quote }}
{{- end }}
{{- if $v.redis.tls.enabled }}
- name: REDIS_TLS
  value: "true"
- name: REDIS_TLS_CA_FILE
  value: /var/run/secrets/consentgate/redis-tls/ca.crt
{{- if $v.redis.tls.clientCert }}
- name: REDIS_TLS_CERT_FILE
  value: /var/run/secrets/consentgate/redis-tls/tls.crt
- name: REDIS_TLS_KEY_FILE
  value: /var/run/secrets/consentgate/redis-tls/tls.key
{{- end }}
{{- if $v.redis.tls.serverName }}
- name: REDIS_TLS_SERVER_NAME
  value: {{ $v.redis.tls.serverName | quote }}
{{- end }}
{{- end }}
{{- if $secret }}
{{- if $userKey }}
- name: REDIS_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $userKey }}
{{- end }}
- name: REDIS_PASSWORD_FILE
  value: /var/run/secrets/consentgate/redis-auth/password
{{- end }}
{{- end -}}

{{/* Secret volumes and their mounts; redis: whether Redis is used. */}}
{{- define "consentgate.secretVolumes" -}}
{{- $v := .root.Values -}}
{{- if $v.kafka.tls.enabled }}
- name: kafka-tls
  secret:
    secretName: {{ $v.kafka.tls.existingSecret }}
    defaultMode: 0440
    items:
      - {key: ca.crt, path: ca.crt}
{{- if $v.kafka.tls.clientCert }}
      - {key: tls.crt, path: tls.crt}
      - {key: tls.key, path: tls.key}
{{- end }}
{{- end }}
{{- if $v.kafka.sasl.mechanism }}
- name: kafka-sasl
  secret:
    secretName: {{ include "consentgate.kafkaSaslSecret" (dict "root" .root "values" .values) }}
    defaultMode: 0440
    items:
      - {key: {{ include "consentgate.kafkaSaslPasswordKey" (dict "root" .root "values" .values) }}, path: password}
{{- end }}
{{- if .redis }}
{{- if $v.redis.tls.enabled }}
- name: redis-tls
  secret:
    secretName: {{ $v.redis.tls.existingSecret }}
    defaultMode: 0440
    items:
      - {key: ca.crt, path: ca.crt}
{{- if $v.redis.tls.clientCert }}
      - {key: tls.crt, path: tls.crt}
      - {key: tls.key, path: tls.key}
{{- end }}
{{- end }}
{{- $secret := include "consentgate.redisSecret" (dict "root" .root "values" .values) }}
{{- if $secret }}
- name: redis-auth
  secret:
    secretName: {{ $secret }}
    defaultMode: 0440
    items:
      - {key: {{ include "consentgate.redisPasswordKey" (dict "root" .root "values" .values) }}, path: password}
{{- end }}
{{- end }}
{{- end -}}

{{- define "consentgate.secretMounts" -}}
{{- $v := .root.Values -}}
{{- if $v.kafka.tls.enabled }}
- {name: kafka-tls, mountPath: /var/run/secrets/consentgate/kafka-tls, readOnly: true}
{{- end }}
{{- if $v.kafka.sasl.mechanism }}
- {name: kafka-sasl, mountPath: /var/run/secrets/consentgate/kafka-sasl, readOnly: true}
{{- end }}
{{- if .redis }}
{{- if $v.redis.tls.enabled }}
- {name: redis-tls, mountPath: /var/run/secrets/consentgate/redis-tls, readOnly: true}
{{- end }}
{{- if include "consentgate.redisSecret" (dict "root" .root "values" .values) }}
- {name: redis-auth, mountPath: /var/run/secrets/consentgate/redis-auth, readOnly: true}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Names the chart sets (or that would undo what its values set) in some
component: <component>.env may not set them. The names rendered in a given
Deployment are added to these by consentgate.checkEnv.
*/}}
{{- define "consentgate.chartEnv" -}}
{{- list "KAFKA_BROKERS" "KAFKA_TLS" "KAFKA_TLS_CA_FILE" "KAFKA_TLS_CERT_FILE" "KAFKA_TLS_KEY_FILE" "KAFKA_TLS_SERVER_NAME"
    "KAFKA_SASL_MECHANISM" "KAFKA_SASL_USERNAME" "KAFKA_SASL_PASSWORD_FILE" "KAFKA_SASL_PASSWORD"
    "SCHEMA_REGISTRY_URL" "TRACE_SAMPLE_RATIO" "OTEL_EXPORTER_OTLP_ENDPOINT" "POLICY_FILE"
    "REDIS_ADDR" "REDIS_URL" "REDIS_PASSWORD" "REDIS_TLS" "REDIS_TLS_CA_FILE" "REDIS_TLS_CERT_FILE" "REDIS_TLS_KEY_FILE"
    "REDIS_TLS_SERVER_NAME" "REDIS_USERNAME" "REDIS_PASSWORD_FILE" "CONSENT_KEY_PREFIX"
    "PSEUDONYMISATION_KEY" "PSEUDONYMISATION_KEY_FILE" "ENFORCER_TOPICS" "ENFORCER_GROUP_ID" "ENFORCER_WORKERS"
    "AUDIT_TOPIC" "DLQ_SUFFIX" "CONSENT_SYNC_TOPICS" "CONSENT_SYNC_GROUP_ID" "REVOCATIONS_TOPIC"
    "CONSENT_INTAKE_ADDR" "CONSENT_INTAKE_TOKENS_FILE" "CONSENT_INTAKE_TLS_CERT_FILE" "CONSENT_INTAKE_TLS_KEY_FILE"
    "CONSENT_INTAKE_TLS_CLIENT_CA_FILE" "CONSENT_INTAKE_INSECURE"
    "KEYS_TOPIC" "CONSENT_KEK" "CONSENT_KEK_FILE" "LEDGER_KEYS_TOPIC"
    "LEDGER_DSN" "LEDGER_AUDIT_TOPIC" "LEDGER_CHANGES_TOPIC" "LEDGER_DEAD_LETTER_TOPICS" "LEDGER_SEAL_KEY_FILE"
    "LEDGER_CONSOLE_ADDR" "LEDGER_CONSOLE_TOKENS_FILE"
    "ENFORCER_TELEMETRY_ADDR" "CONSENT_SYNC_TELEMETRY_ADDR" "LEDGER_TELEMETRY_ADDR" | toJson -}}
{{- end -}}

{{/*
<component>.env is copied into the pod as plain values (the Deployment, etcd,
the release Secret): refuse a secret there, and a name the chart sets itself
(it would be set twice, and the second would undo the chart's: a telemetry
address off the probes' port, an intake without authentication). The
messages name the variable, never its value. Arguments: as
consentgate.deployment.
*/}}
{{- define "consentgate.checkEnv" -}}
{{- $root := .root -}}
{{- $key := get (dict "enforcer" "enforcer" "consent-sync" "consentSync" "ledger" "ledger") .component -}}
{{- $managed := include "consentgate.chartEnv" . | fromJsonArray -}}
{{- $managed = append $managed .telemetryEnv -}}
{{- range (include "consentgate.kafkaEnv" (dict "root" $root "values" .values) | fromYamlArray) -}}{{- $managed = append $managed .name -}}{{- end -}}
{{- if .redis -}}
{{- range (include "consentgate.redisEnv" (dict "root" $root "values" .values) | fromYamlArray) -}}{{- $managed = append $managed .name -}}{{- end -}}
{{- end -}}
{{- with get . "env" -}}
{{- range (fromYamlArray .) -}}{{- $managed = append $managed .name -}}{{- end -}}
{{- end -}}
{{- range $k, $val := .values.env -}}
{{- if and (not (hasSuffix "_FILE" $k)) (regexMatch "(PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL|DSN|PRIVATE|(^|_)KEY$|(^|_)KEK$)" $k) -}}
{{- fail (printf "%s.env.%s looks like a secret, and %s.env is copied into the Deployment as a plain value: put it in a Secret and use the chart's setting for it (values.yaml: existingSecret, dsnSecret, tokensSecret...)" $key $k $key) -}}
{{- end -}}
{{- if has $k $managed -}}
{{- fail (printf "%s.env.%s is set by the chart itself: remove it from %s.env and use the chart's value for it (values.yaml)" $key $k $key) -}}
{{- end -}}
{{- if regexMatch "://[^/@[:space:]]*:[^/@[:space:]]*@" (toString $val) -}}
{{- fail (printf "%s.env.%s holds a URL with a password in it, and %s.env is copied into the Deployment as a plain value: put it in a Secret" $key $k $key) -}}
{{- end -}}
{{- if not (regexMatch "^[A-Z][A-Z0-9_]*$" $k) -}}
{{- fail (printf "%s.env: %q is no environment variable name of the services (capitals, digits and _)" $key $k) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
A Deployment of one component. Arguments (a dict): root, component, service
(the image), values (the component's values), telemetryEnv (its
*_TELEMETRY_ADDR), env, volumes, mounts, ports (YAML), redis (bool),
replicas (bool: set spec.replicas), policy (bool: mount the policy).
*/}}
{{- define "consentgate.deployment" -}}
{{- $root := .root -}}
{{- include "consentgate.validate" $root -}}
{{- include "consentgate.checkEnv" . -}}
{{- $c := .values -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "consentgate.fullname" $root }}-{{ .component }}
  labels:
    {{- include "consentgate.labels" . | nindent 4 }}
spec:
  {{- if .replicas }}
  replicas: {{ $c.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "consentgate.selectorLabels" . | nindent 6 }}
  {{- if get . "strategy" }}
  strategy:
    {{- get . "strategy" | nindent 4 }}
  {{- end }}
  template:
    metadata:
      labels:
        {{- include "consentgate.selectorLabels" . | nindent 8 }}
      annotations:
        {{- if .policy }}
        checksum/policy: {{ include "consentgate.policy" $root | sha256sum }}
        {{- end }}
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $c.port | quote }}
        prometheus.io/path: /metrics
    spec:
      automountServiceAccountToken: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ $c.terminationGracePeriodSeconds }}
      containers:
        - name: {{ .service }}
          image: {{ include "consentgate.image" (dict "root" $root "service" .service) }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          ports:
            - {name: telemetry, containerPort: {{ $c.port }}, protocol: TCP}
            {{- with get . "ports" }}
            {{- . | nindent 12 }}
            {{- end }}
          env:
            - name: {{ .telemetryEnv }}
              value: "0.0.0.0:{{ $c.port }}"
            {{- include "consentgate.kafkaEnv" (dict "root" $root "values" $c) | nindent 12 }}
            {{- if .redis }}
            {{- include "consentgate.redisEnv" (dict "root" $root "values" $c) | nindent 12 }}
            {{- end }}
            {{- with get . "env" }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- range $k, $val := $c.env }}
            - name: {{ $k }}
              value: {{ $val | quote }}
            {{- end }}
          livenessProbe:
            httpGet: {path: /healthz, port: telemetry}
            initialDelaySeconds: 10
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            httpGet: {path: /readyz, port: telemetry}
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 2
          startupProbe:
            httpGet: {path: /healthz, port: telemetry}
            periodSeconds: 2
            failureThreshold: 60
          resources:
            {{- toYaml $c.resources | nindent 12 }}
          volumeMounts:
            - {name: tmp, mountPath: /tmp}
            {{- if .policy }}
            - {name: policy, mountPath: /etc/consentgate, readOnly: true}
            {{- end }}
            {{- include "consentgate.secretMounts" . | nindent 12 }}
            {{- with get . "mounts" }}
            {{- . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir: {sizeLimit: 256Mi}
        {{- if .policy }}
        - name: policy
          configMap:
            name: {{ include "consentgate.fullname" $root }}-policy
        {{- end }}
        {{- include "consentgate.secretVolumes" . | nindent 8 }}
        {{- with get . "volumes" }}
        {{- . | nindent 8 }}
        {{- end }}
      {{- with $c.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}
