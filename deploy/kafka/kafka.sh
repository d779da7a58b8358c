#!/usr/bin/env bash
# Local Apache Kafka (KRaft, one combined broker+controller on 127.0.0.1), no Docker.
#
#   deploy/kafka/kafka.sh fetch            resolve the jars from Maven Central (cached)
#   deploy/kafka/kafka.sh start            format storage once, start, wait until clients connect
#   deploy/kafka/kafka.sh stop             stop the broker started here (by its pid)
#   deploy/kafka/kafka.sh status           exit 0 when the broker accepts clients
#   deploy/kafka/kafka.sh tool NAME ARGS   run a Kafka admin tool against it, e.g.
#                                          tool kafka-consumer-groups --describe --all-groups
#
# Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (KAFKA_PORT+1),
# KAFKA_DATA_DIR (.data/kafka-$KAFKA_PORT), KAFKA_HEAP (512m), KAFKA_START_TIMEOUT (60 s).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
libs="$root/.cache/kafka/libs"
port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-$((port + 1))}
data=${KAFKA_DATA_DIR:-$root/.data/kafka-$port}
heap=${KAFKA_HEAP:-512m}
timeout=${KAFKA_START_TIMEOUT:-60}
pidfile="$data/kafka.pid"

log() { printf 'kafka: %s\n' "$*" >&2; }

java_run() {
  local main=$1; shift
  java -Xms64m -Xmx"$heap" -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$here/log4j2.properties" -Dkafka.logs.dir="$data/logs" \
    -cp "$libs/*" "$main" "$@"
}

fetch() {
  # The marker names the pom's hash so that a changed pom re-resolves the jars.
  local stamp; stamp="$libs/.pom-$(sha256sum "$here/pom.xml" | cut -c1-16)"
  [ -f "$stamp" ] && return 0
  log "resolving Kafka jars from Maven Central into $libs"
  rm -rf "$libs" && mkdir -p "$libs"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$libs" -DincludeScope=runtime
  touch "$stamp"
}

reachable() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

running_pid() {
  [ -f "$pidfile" ] || return 1
  local pid; pid=$(cat "$pidfile")
  kill -0 "$pid" 2>/dev/null && echo "$pid"
}

configure() {
  mkdir -p "$data/logs"
  sed -e "s#@PORT@#$port#g" -e "s#@CONTROLLER_PORT@#$controller_port#g" -e "s#@LOG_DIR@#$data/log#g" \
    "$here/server.properties" >"$data/server.properties"
  if [ ! -f "$data/log/meta.properties" ]; then
    local cluster_id; cluster_id=$(java_run kafka.tools.StorageTool random-uuid)
    java_run kafka.tools.StorageTool format -t "$cluster_id" -c "$data/server.properties" >"$data/logs/format.log"
    log "formatted KRaft storage in $data/log (cluster $cluster_id)"
  fi
}

start() {
  if pid=$(running_pid); then log "already running (pid $pid) on 127.0.0.1:$port"; return 0; fi
  if reachable; then log "something else already listens on 127.0.0.1:$port; not starting"; return 1; fi
  fetch
  configure
  nohup bash -c "$(declare -f java_run); heap=$heap here=$here data=$data libs=$libs; \
    java_run kafka.Kafka '$data/server.properties'" >"$data/logs/stdout.log" 2>&1 &
  echo $! >"$pidfile"
  local waited=0
  until reachable && java_run org.apache.kafka.tools.BrokerApiVersionsCommand \
      --bootstrap-server "127.0.0.1:$port" >/dev/null 2>&1; do
    if ! running_pid >/dev/null; then
      log "broker exited during start; last lines of $data/logs/stdout.log:"; tail -n 20 "$data/logs/stdout.log" >&2
      return 1
    fi
    if [ "$waited" -ge "$timeout" ]; then log "broker not ready after ${timeout}s"; stop; return 1; fi
    sleep 1; waited=$((waited + 1))
  done
  log "ready on 127.0.0.1:$port (pid $(cat "$pidfile"), data $data)"
}

stop() {
  local pid
  if ! pid=$(running_pid); then log "not running on port $port"; rm -f "$pidfile"; return 0; fi
  # The pid is bash's, whose child is the JVM: signal the whole process group.
  pkill -TERM -P "$pid" 2>/dev/null || true
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  if kill -0 "$pid" 2>/dev/null; then pkill -KILL -P "$pid" 2>/dev/null || true; kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$pidfile"
  log "stopped (pid $pid)"
}

tool() {
  local name=${1:?tool name, e.g. kafka-consumer-groups}; shift
  local main
  case "$name" in
    kafka-consumer-groups) main=org.apache.kafka.tools.consumer.group.ConsumerGroupCommand ;;
    kafka-topics) main=org.apache.kafka.tools.TopicCommand ;;
    kafka-get-offsets) main=org.apache.kafka.tools.GetOffsetShell ;;
    kafka-console-consumer) main=org.apache.kafka.tools.consumer.ConsoleConsumer ;;
    kafka-console-producer) main=org.apache.kafka.tools.ConsoleProducer ;;
    kafka-broker-api-versions) main=org.apache.kafka.tools.BrokerApiVersionsCommand ;;
    *) log "unknown tool '$name' (kafka-consumer-groups, kafka-topics, kafka-get-offsets, kafka-console-consumer, kafka-console-producer, kafka-broker-api-versions)"; return 2 ;;
  esac
  fetch
  mkdir -p "$data/logs"
  java_run "$main" --bootstrap-server "127.0.0.1:$port" "$@"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) reachable ;;
  tool) shift; tool "$@" ;;
  *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac
