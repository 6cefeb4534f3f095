#!/bin/bash
# The image's entry point, with apache/kafka's conventions: it writes server.properties from the
# environment, formats the data directory once and runs the broker in the foreground.
#   KAFKA_<NAME>=value  ->  <name>=value   (lower case; `_` -> `.`, `__` -> `_`, `___` -> `-`)
#   CLUSTER_ID          the KRaft cluster id the storage is formatted with
#   KAFKA_SSL_KEYSTORE_FILENAME, KAFKA_SSL_TRUSTSTORE_FILENAME: key/trust stores, and
#   KAFKA_SSL_KEYSTORE_CREDENTIALS, KAFKA_SSL_KEY_CREDENTIALS, KAFKA_SSL_TRUSTSTORE_CREDENTIALS:
#   files holding their passwords, all under /etc/kafka/secrets
# With no broker setting at all it runs a single-node broker and controller on :9092.
set -euo pipefail

CONFIG=/opt/kafka/config/server.properties
SECRETS=/etc/kafka/secrets
# Variables for the JVM or for this script, not broker properties.
NOT_PROPERTIES=" KAFKA_HEAP_OPTS KAFKA_OPTS KAFKA_JVM_PERFORMANCE_OPTS KAFKA_GC_LOG_OPTS \
KAFKA_LOG4J_OPTS KAFKA_JMX_OPTS KAFKA_TOOLS_HEAP_OPTS KAFKA_VERSION \
KAFKA_SSL_KEYSTORE_FILENAME KAFKA_SSL_KEYSTORE_CREDENTIALS KAFKA_SSL_KEY_CREDENTIALS \
KAFKA_SSL_TRUSTSTORE_FILENAME KAFKA_SSL_TRUSTSTORE_CREDENTIALS "
DEFAULTS="process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
listeners=PLAINTEXT://:9092,CONTROLLER://localhost:9093
advertised.listeners=PLAINTEXT://localhost:9092
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=/var/lib/kafka/data
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0"

property_name() {
    local name="${1#KAFKA_}"
    name="${name,,}"
    name="${name//___/-}"
    name="${name//__/$'\x01'}"
    name="${name//_/.}"
    printf '%s' "${name//$'\x01'/_}"
}

secret() {  # the content of a file under /etc/kafka/secrets
    [[ -r "$SECRETS/$1" ]] || { echo "kafka: cannot read $SECRETS/$1" >&2; exit 1; }
    tr -d '\r\n' <"$SECRETS/$1"
}

properties() {
    local var
    for var in $(compgen -e | grep '^KAFKA_' | sort); do
        [[ "$NOT_PROPERTIES" == *" $var "* ]] && continue
        printf '%s=%s\n' "$(property_name "$var")" "${!var}"
    done
}

stores() {
    if [[ -n "${KAFKA_SSL_KEYSTORE_FILENAME:-}" ]]; then
        echo "ssl.keystore.location=$SECRETS/$KAFKA_SSL_KEYSTORE_FILENAME"
        [[ -z "${KAFKA_SSL_KEYSTORE_CREDENTIALS:-}" ]] \
            || echo "ssl.keystore.password=$(secret "$KAFKA_SSL_KEYSTORE_CREDENTIALS")"
        [[ -z "${KAFKA_SSL_KEY_CREDENTIALS:-}" ]] \
            || echo "ssl.key.password=$(secret "$KAFKA_SSL_KEY_CREDENTIALS")"
    fi
    if [[ -n "${KAFKA_SSL_TRUSTSTORE_FILENAME:-}" ]]; then
        echo "ssl.truststore.location=$SECRETS/$KAFKA_SSL_TRUSTSTORE_FILENAME"
        [[ -z "${KAFKA_SSL_TRUSTSTORE_CREDENTIALS:-}" ]] \
            || echo "ssl.truststore.password=$(secret "$KAFKA_SSL_TRUSTSTORE_CREDENTIALS")"
    fi
}

umask 077  # the file may hold store passwords
given="$(properties)"
{ if [[ -n "$given" ]]; then echo "$given"; else echo "$DEFAULTS"; fi; stores; } >"$CONFIG"

# `--ignore-formatted`: a restart keeps its data. No --standalone: it is refused where
# controller.quorum.voters is set.
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted \
    -t "${CLUSTER_ID:-5L6g3nShT-eMCtK--X86sw}" -c "$CONFIG" >/dev/null

# shellcheck disable=SC2086 # the option lists are word lists
exec java ${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G} \
    ${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true} \
    ${KAFKA_OPTS:-} \
    -Dlog4j2.configurationFile=/opt/kafka/config/log4j2.properties \
    -cp '/opt/kafka/libs/*' kafka.Kafka "$CONFIG"
