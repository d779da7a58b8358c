#!/usr/bin/env bash
# Local Apache Kafka (KRaft, one combined broker+controller on 127.0.0.1), no Docker.
#
#   deploy/kafka/kafka.sh fetch            resolve the jars from Maven Central (cached)
#   deploy/kafka/kafka.sh start            format storage once, start, wait until clients connect
#   deploy/kafka/kafka.sh stop             stop the broker started here (by its pid)
#   deploy/kafka/kafka.sh status           exit 0 when the broker accepts clients
#   deploy/kafka/kafka.sh tool NAME ARGS   run a Kafka admin tool against it, e.g.
#                                          tool kafka-consumer-groups --describe --all-groups
#   deploy/kafka/kafka.sh admin-env        print the MATIH_KAFKA_* settings of its admin
#
# Secure mode (KAFKA_SECURE=1, for any of the above): a SASL_SSL listener (SCRAM-SHA-512
# over TLS) with a CA and broker certificate made here by openssl, KRaft's
# StandardAuthorizer with allow.everyone.if.no.acl.found=false, and a super-user
# "admin" whose SCRAM credential is written at format time. Its data dir is
# .data/kafka-secure-$KAFKA_PORT; the CA, certificate, admin password and the admin
# tools' client config are in its secrets/ folder (mode 700).
#
# A 3-node cluster on loopback (each node broker and controller; RF 3, min ISR 2):
#   deploy/kafka/kafka.sh cluster-start    format once, start the 3 nodes, wait for all
#   deploy/kafka/kafka.sh cluster-stop     stop them
#   deploy/kafka/kafka.sh node-start N     start node N (1-3) again, e.g. after node-kill
#   deploy/kafka/kafka.sh node-stop N      stop node N (SIGTERM: a clean shutdown)
#   deploy/kafka/kafka.sh node-kill N      kill -9 node N
#   deploy/kafka/kafka.sh cluster-bootstrap   print the bootstrap servers
#
# Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (KAFKA_PORT+1), KAFKA_SECURE (0),
# KAFKA_DATA_DIR (.data/kafka-$KAFKA_PORT, secure: .data/kafka-secure-$KAFKA_PORT), KAFKA_HEAP (512m), KAFKA_START_TIMEOUT (60 s).
# Cluster: KAFKA_CLUSTER_PORT (9192; node N listens on +2(N-1), its controller on the
# next port), KAFKA_CLUSTER_DIR (.data/kafka-cluster-$KAFKA_CLUSTER_PORT),
# KAFKA_CLUSTER_HEAP (256m a node).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
libs="$root/.cache/kafka/libs"
port=${KAFKA_PORT:-9092}
controller_port=${KAFKA_CONTROLLER_PORT:-$((port + 1))}
secure=${KAFKA_SECURE:-0}
[ "$secure" = 1 ] && default_data=$root/.data/kafka-secure-$port || default_data=$root/.data/kafka-$port
data=${KAFKA_DATA_DIR:-$default_data}
secrets="$data/secrets"
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

# The CA, the broker's key and certificate (for 127.0.0.1 and localhost), the admin's
# password and the admin tools' client config, once per data dir.
make_secrets() {
  [ -f "$secrets/admin.properties" ] && return 0
  mkdir -p "$secrets" && chmod 700 "$secrets"
  local days=825
  openssl req -x509 -newkey rsa:2048 -nodes -days "$days" -subj "/CN=matih-ingest local CA" \
    -keyout "$secrets/ca.key" -out "$secrets/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=matih-broker" \
    -keyout "$secrets/broker.key" -out "$secrets/broker.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' \
    >"$secrets/broker.ext"
  openssl x509 -req -days "$days" -in "$secrets/broker.csr" -CA "$secrets/ca.pem" \
    -CAkey "$secrets/ca.key" -CAcreateserial -extfile "$secrets/broker.ext" \
    -out "$secrets/broker.crt" 2>/dev/null
  cat "$secrets/broker.key" "$secrets/broker.crt" >"$secrets/broker.pem"
  openssl rand -hex 24 >"$secrets/admin.password"
  cat >"$secrets/admin.properties" <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(cat "$secrets/admin.password")";
ssl.truststore.type=PEM
ssl.truststore.location=$secrets/ca.pem
PROPS
  chmod 600 "$secrets"/*
  log "made a CA, a broker certificate and the admin's credential in $secrets"
}

configure() {
  mkdir -p "$data/logs"
  local template="$here/server.properties" scram=()
  if [ "$secure" = 1 ]; then
    make_secrets
    template="$here/secure.properties"
    scram=(--add-scram "SCRAM-SHA-512=[name=admin,password=$(cat "$secrets/admin.password")]")
  fi
  sed -e "s#@PORT@#$port#g" -e "s#@CONTROLLER_PORT@#$controller_port#g" -e "s#@LOG_DIR@#$data/log#g" \
    -e "s#@SECRETS@#$secrets#g" -e "s#@ADMIN_PASSWORD@#$(cat "$secrets/admin.password" 2>/dev/null)#g" \
    "$template" >"$data/server.properties"
  chmod 600 "$data/server.properties"
  if [ ! -f "$data/log/meta.properties" ]; then
    local cluster_id; cluster_id=$(java_run kafka.tools.StorageTool random-uuid)
    java_run kafka.tools.StorageTool format -t "$cluster_id" -c "$data/server.properties" \
      "${scram[@]}" >"$data/logs/format.log"
    log "formatted KRaft storage in $data/log (cluster $cluster_id)"
  fi
}

# The admin tools' client options: the admin's SASL_SSL config in secure mode.
client_config() {
  [ "$secure" = 1 ] && echo "--command-config $secrets/admin.properties" || true
}

admin_env() {
  [ "$secure" = 1 ] || { echo "MATIH_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$port"; return 0; }
  cat <<ENV
MATIH_KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$port
MATIH_KAFKA_SECURITY_PROTOCOL=SASL_SSL
MATIH_KAFKA_SASL_MECHANISM=SCRAM-SHA-512
MATIH_KAFKA_USERNAME=admin
MATIH_KAFKA_PASSWORD=$(cat "$secrets/admin.password")
MATIH_KAFKA_CA_FILE=$secrets/ca.pem
ENV
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
  # shellcheck disable=SC2046 # the config options are words
  until reachable && java_run org.apache.kafka.tools.BrokerApiVersionsCommand \
      --bootstrap-server "127.0.0.1:$port" $(client_config) >/dev/null 2>&1; do
    if ! running_pid >/dev/null; then
      log "broker exited during start; last lines of $data/logs/stdout.log:"; tail -n 20 "$data/logs/stdout.log" >&2
      return 1
    fi
    if [ "$waited" -ge "$timeout" ]; then log "broker not ready after ${timeout}s"; stop; return 1; fi
    sleep 1; waited=$((waited + 1))
  done
  log "ready on 127.0.0.1:$port$([ "$secure" = 1 ] && echo " (SASL_SSL)") (pid $(cat "$pidfile"), data $data)"
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
    kafka-configs) main=kafka.admin.ConfigCommand ;;
    kafka-acls) main=org.apache.kafka.tools.AclCommand ;;
    *) log "unknown tool '$name' (kafka-consumer-groups, kafka-topics, kafka-get-offsets, kafka-console-consumer, kafka-console-producer, kafka-broker-api-versions, kafka-configs, kafka-acls)"; return 2 ;;
  esac
  fetch
  mkdir -p "$data/logs"
  # shellcheck disable=SC2046 # the config options are words
  java_run "$main" --bootstrap-server "127.0.0.1:$port" $(client_config) "$@"
}

# --- the 3-node cluster --------------------------------------------------------------
cluster_port=${KAFKA_CLUSTER_PORT:-9192}
cluster_dir=${KAFKA_CLUSTER_DIR:-$root/.data/kafka-cluster-$cluster_port}
cluster_nodes=3

# Points the single-broker functions (reachable, running_pid, stop) at node $1.
use_node() {
  local n=$1
  case "$n" in [1-3]) ;; *) log "no node '$n' (1-$cluster_nodes)"; exit 2 ;; esac
  port=$((cluster_port + 2 * (n - 1)))
  controller_port=$((port + 1))
  data="$cluster_dir/node-$n"
  pidfile="$data/kafka.pid"
  heap=${KAFKA_CLUSTER_HEAP:-256m}
}

cluster_bootstrap() {
  local n out=""
  for n in $(seq 1 $cluster_nodes); do out+="${out:+,}127.0.0.1:$((cluster_port + 2 * (n - 1)))"; done
  echo "$out"
}

cluster_configure() {
  local n voters=""
  for n in $(seq 1 $cluster_nodes); do voters+="${voters:+,}$n@127.0.0.1:$((cluster_port + 2 * (n - 1) + 1))"; done
  local cluster_id=""
  [ -f "$cluster_dir/cluster.id" ] && cluster_id=$(cat "$cluster_dir/cluster.id")
  for n in $(seq 1 $cluster_nodes); do
    use_node "$n"
    mkdir -p "$data/logs"
    sed -e "s#@NODE_ID@#$n#g" -e "s#@PORT@#$port#g" -e "s#@CONTROLLER_PORT@#$controller_port#g" \
      -e "s#@VOTERS@#$voters#g" -e "s#@LOG_DIR@#$data/log#g" \
      "$here/cluster.properties" >"$data/server.properties"
    if [ ! -f "$data/log/meta.properties" ]; then
      [ -n "$cluster_id" ] || cluster_id=$(java_run kafka.tools.StorageTool random-uuid)
      echo "$cluster_id" >"$cluster_dir/cluster.id"
      java_run kafka.tools.StorageTool format -t "$cluster_id" -c "$data/server.properties" \
        >"$data/logs/format.log"
    fi
  done
}

# Starts node $1 without waiting; the JVM is the pid recorded (exec), so that a kill -9
# of that pid is a broker crash.
node_launch() {
  use_node "$1"
  if pid=$(running_pid); then log "node $1 already running (pid $pid)"; return 0; fi
  if reachable; then log "something else listens on 127.0.0.1:$port; not starting node $1"; return 1; fi
  nohup bash -c "cd '$data' && exec java -Xms64m -Xmx$heap -XX:+UseSerialGC \
    -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile='$here/log4j2.properties' -Dkafka.logs.dir='$data/logs' \
    -cp '$libs/*' kafka.Kafka '$data/server.properties'" >"$data/logs/stdout.log" 2>&1 &
  echo $! >"$pidfile"
}

# Waits until node $1 answers clients.
node_wait() {
  use_node "$1"
  local waited=0
  until reachable && java_run org.apache.kafka.tools.BrokerApiVersionsCommand \
      --bootstrap-server "127.0.0.1:$port" >/dev/null 2>&1; do
    if ! running_pid >/dev/null; then
      log "node $1 exited during start; last lines of $data/logs/stdout.log:"
      tail -n 20 "$data/logs/stdout.log" >&2
      return 1
    fi
    if [ "$waited" -ge "$timeout" ]; then log "node $1 not ready after ${timeout}s"; return 1; fi
    sleep 1; waited=$((waited + 1))
  done
  log "node $1 ready on 127.0.0.1:$port (pid $(cat "$pidfile"))"
}

cluster_start() {
  fetch
  cluster_configure
  local n
  # All nodes first: a controller quorum needs a majority up before any node is ready.
  for n in $(seq 1 $cluster_nodes); do node_launch "$n"; done
  for n in $(seq 1 $cluster_nodes); do node_wait "$n" || { cluster_stop; return 1; }; done
  log "cluster ready: $(cluster_bootstrap) (data $cluster_dir)"
}

cluster_stop() {
  local n
  for n in $(seq 1 $cluster_nodes); do use_node "$n"; stop; done
}

node_kill() {
  use_node "$1"
  local pid
  if ! pid=$(running_pid); then log "node $1 not running"; return 0; fi
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$pidfile"
  log "node $1 killed (pid $pid)"
}

case "${1:-}" in
  cluster-start) cluster_start ;;
  cluster-stop) cluster_stop ;;
  cluster-bootstrap) cluster_bootstrap ;;
  node-start) fetch; cluster_configure; node_launch "${2:?node 1-3}"; node_wait "$2" ;;
  node-stop) use_node "${2:?node 1-3}"; stop ;;
  node-kill) node_kill "${2:?node 1-3}" ;;
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) reachable ;;
  tool) shift; tool "$@" ;;
  admin-env) admin_env ;;
  *) sed -n '2,35p' "$0" >&2; exit 2 ;;
esac
