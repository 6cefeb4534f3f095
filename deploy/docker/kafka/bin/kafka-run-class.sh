#!/bin/bash
# Runs a class on the image's classpath, like the distribution's script of the same name. Tools
# get a small heap of their own (KAFKA_TOOLS_HEAP_OPTS) and a quick-starting JIT: the compose
# health check starts one every few seconds beside the broker.
set -euo pipefail
# shellcheck disable=SC2086 # the option lists are word lists
exec java ${KAFKA_TOOLS_HEAP_OPTS:--Xmx256m} -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile=/opt/kafka/config/tools-log4j2.properties \
    -cp '/opt/kafka/libs/*' "$@"
