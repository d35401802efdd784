#!/bin/sh
# Creates consentgate's topics on the compose cluster with kafka-topics.sh of
# the Kafka image, then sets the configuration the pipeline relies on. It is
# idempotent: a second `docker compose up` finds the topics and sets the same
# configuration again. Every topic has replication factor REPLICATION_FACTOR
# (3) and min.insync.replicas 2, so an acks=all write survives one broker down.
#
# The topics and their settings (README.md, Topics):
#   consent.changes            the system of record: no retention limit, no
#                              compaction (consent-sync refuses to start
#                              otherwise; a replay must find every change)
#   consent.audit              one record per input event; kept (sealed and
#                              verified from the topic)
#   consent.audit.checkpoints  the sealer's signed checkpoints; must exist before
#                              the sealer starts; kept
#   consent.revocations        notices downstream must act on; kept
#   customer.events            the input
#   <input>.dlq                dead letters of customer.events and consent.changes
#   OUTPUT_TOPICS              the policy's streams (deploy/policy.yaml)
set -eu

: "${BOOTSTRAP:?set BOOTSTRAP to the brokers, host:port comma-separated}"
: "${OUTPUT_TOPICS:?set OUTPUT_TOPICS to the policy's stream topics, comma-separated}"
RF=${REPLICATION_FACTOR:-3}
PARTITIONS=${PARTITIONS:-6}
BIN=/opt/kafka/bin

create() {
	topic=$1 partitions=$2
	"$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
		--topic "$topic" --partitions "$partitions" --replication-factor "$RF"
	"$BIN/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --alter --entity-type topics \
		--entity-name "$topic" --add-config "min.insync.replicas=2,cleanup.policy=delete${3:+,$3}"
}

keep='retention.ms=-1,retention.bytes=-1'

create consent.changes "$PARTITIONS" "$keep"
create consent.changes.dlq 3
create customer.events "$PARTITIONS"
create customer.events.dlq 3
create consent.audit "$PARTITIONS" "$keep"
create consent.audit.checkpoints 1 "$keep"
create consent.revocations 3 "$keep"
for t in $(echo "$OUTPUT_TOPICS" | tr ',' ' '); do
	create "$t" "$PARTITIONS"
done

"$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --describe --topic consent.changes
echo "topics ready"
