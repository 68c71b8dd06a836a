#!/usr/bin/env bash
# Apache Kafka 4.x for local development and CI: one KRaft node that is both broker and
# controller, run from its Maven Central artifacts as a plain java process on 127.0.0.1.
#
#   kafka.sh install | start | stop | kill | status | env | reset   (kill: SIGKILL, as a crash)
#
# State (config, data, logs, pid) lives in $ORDEXA_STATE_DIR/kafka; the resolved jars live in
# $ORDEXA_CACHE_DIR so a reset or a fresh clone does not download them again.
SERVER=kafka
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_HOME=$ORDEXA_STATE_DIR/kafka
KAFKA_DATA=$KAFKA_HOME/data
KAFKA_LOGS=$KAFKA_HOME/log
KAFKA_PIDFILE=$KAFKA_HOME/kafka.pid
KAFKA_OUT=$KAFKA_LOGS/kafka.out
KAFKA_PROPS=$KAFKA_HOME/server.properties
KAFKA_LOG4J=$KAFKA_HOME/log4j2.properties
KAFKA_CLASSPATH=$ORDEXA_CACHE_DIR/kafka-$KAFKA_VERSION.classpath
KAFKA_ADDR=$ORDEXA_BIND:$ORDEXA_KAFKA_PORT
KAFKA_HEAP=${ORDEXA_KAFKA_HEAP:-512m}
KAFKA_START_TIMEOUT=${ORDEXA_KAFKA_START_TIMEOUT:-90}
PROBE=$ORDEXA_ROOT/infra/probe_kafka.py

probe() { python3 "$PROBE" "$KAFKA_ADDR"; }

# A pid file outlives reboots and machine hand-overs, and its number may since belong to an
# unrelated process: only a java running kafka.Kafka on our config counts as ours.
kafka_pid_alive() {
  pid_alive "$KAFKA_PIDFILE" || return 1
  tr '\0' ' ' <"/proc/$(cat "$KAFKA_PIDFILE")/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $KAFKA_PROPS"
}

forget_stale_pid() {
  if [[ -f $KAFKA_PIDFILE ]] && ! kafka_pid_alive; then rm -f "$KAFKA_PIDFILE"; fi
}

# ---- install -------------------------------------------------------------------------------

# has_classes JAR CLASS...: the jar holds every named class (python3 is needed for the probe
# anyway, while unzip or a JDK's jar tool may be missing).
has_classes() {
  python3 - "$@" <<'PY'
import sys, zipfile
names = set(zipfile.ZipFile(sys.argv[1]).namelist())
missing = [c for c in sys.argv[2:] if c.replace(".", "/") + ".class" not in names]
if missing:
    sys.exit("missing " + ", ".join(missing))
PY
}

cmd_install() {
  mkdir -p "$ORDEXA_CACHE_DIR"
  # A classpath naming a jar that has since been removed from the cache is redone.
  if [[ -s $KAFKA_CLASSPATH ]]; then
    local jar jars
    IFS=: read -ra jars <"$KAFKA_CLASSPATH"
    for jar in "${jars[@]}"; do
      [[ -f $jar ]] && continue
      info "cached jar $jar is gone; resolving again"
      rm -f "$KAFKA_CLASSPATH" "$ORDEXA_CACHE_DIR"/kafka-"$KAFKA_VERSION".broker.classpath "$ORDEXA_CACHE_DIR"/log4j-slf4j-impl-*.classpath
      break
    done
  fi
  if [[ ! -s $KAFKA_CLASSPATH ]]; then
    local broker_cp log4j_version binding_cp
    broker_cp=$ORDEXA_CACHE_DIR/kafka-$KAFKA_VERSION.broker.classpath
    mvn_classpath "org.apache.kafka:kafka_2.13:$KAFKA_VERSION" "$broker_cp"
    # The kafka_2.13 POM brings slf4j-api and log4j-core but not the bridge between them that
    # the distribution ships in libs/; without it slf4j falls back to a no-op logger and the
    # broker writes no log at all. Match the bridge to the log4j-core the broker came with.
    log4j_version=$(tr ':' '\n' <"$broker_cp" | sed -n 's|.*/log4j-core-\([0-9][0-9.]*\)\.jar$|\1|p;T;q')
    [[ -n $log4j_version ]] || die "no log4j-core on the Kafka $KAFKA_VERSION classpath ($broker_cp); this script expects Kafka 4.x"
    binding_cp=$ORDEXA_CACHE_DIR/log4j-slf4j-impl-$log4j_version.classpath
    mvn_classpath "org.apache.logging.log4j:log4j-slf4j-impl:$log4j_version" "$binding_cp"
    # Kafka's jars first, the bridge after; both lists hold log4j-api and slf4j-api, so keep
    # the first of each jar.
    cat "$broker_cp" "$binding_cp" | tr ':' '\n' | sed '/^$/d' | awk '!seen[$0]++' | paste -sd: >"$KAFKA_CLASSPATH.partial"
    mv "$KAFKA_CLASSPATH.partial" "$KAFKA_CLASSPATH"
  fi
  local main_jar
  main_jar=$ORDEXA_CACHE_DIR/m2/org/apache/kafka/kafka_2.13/$KAFKA_VERSION/kafka_2.13-$KAFKA_VERSION.jar
  [[ :$(cat "$KAFKA_CLASSPATH"): == *":$main_jar:"* ]] ||
    die "kafka_2.13-$KAFKA_VERSION.jar is not on $KAFKA_CLASSPATH; delete it and re-run"
  has_classes "$main_jar" kafka.Kafka kafka.tools.StorageTool ||
    die "$main_jar lacks the broker entry points; is KAFKA_VERSION=$KAFKA_VERSION a 4.x release?"
  [[ ${1:-} == quiet ]] || info "Kafka $KAFKA_VERSION installed ($(tr ':' '\n' <"$KAFKA_CLASSPATH" | wc -l) jars, classpath in $KAFKA_CLASSPATH)"
}

# ---- configuration -------------------------------------------------------------------------

# write_server_properties FILE LOG_DIR: the whole broker config, regenerated on every start so
# that a changed port variable takes effect; the data folder does not depend on it.
write_server_properties() {
  # Clients get the addresses of the listener they connected to: pods bootstrap from the
  # cluster bridge's address and are told that one, the host's clients keep loopback.
  local pod_listener='' pod_addr
  pod_addr=$(pod_host_addr)
  [[ -z $pod_addr ]] || pod_listener=",POD://$pod_addr:$ORDEXA_KAFKA_POD_PORT"
  cat >"$1" <<EOF
# Generated by infra/kafka.sh on every start: edit the script, not this file.
process.roles=broker,controller
node.id=1
# A static voter set rather than controller.quorum.bootstrap.servers: nothing about the quorum
# is written at format time, so the controller port can change between starts.
controller.quorum.voters=1@$ORDEXA_BIND:$ORDEXA_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$ORDEXA_BIND:$ORDEXA_KAFKA_PORT,CONTROLLER://$ORDEXA_BIND:$ORDEXA_KAFKA_CONTROLLER_PORT$pod_listener
advertised.listeners=PLAINTEXT://$KAFKA_ADDR$pod_listener
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,POD:PLAINTEXT
log.dirs=$2

# One node: every internal topic must live with a single replica.
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# The defaults (50 partitions each) make the first consumer group or transaction wait while
# dozens of partitions are created on two cores; one coordinator partition is plenty here.
offsets.topic.num.partitions=1
transaction.state.log.num.partitions=1
num.partitions=1

# Tests join groups constantly; the default 3 s delay only helps multi-member production groups.
group.initial.rebalance.delay.ms=0
# Off, as in production: the services and tests create their topics through the admin API, and
# a mistyped topic name should fail instead of silently creating a new, empty topic.
auto.create.topics.enable=false
EOF
}

write_log4j_config() {
  # Everything at INFO goes to rolling server.log files; only warnings and errors also reach
  # stdout (kafka.out, which nothing rotates), where start-up failures are looked for.
  cat >"$KAFKA_LOG4J" <<'EOF'
# Generated by infra/kafka.sh.
name = ordexa-kafka
status = warn
# Kafka logs its own shutdown from a JVM shutdown hook; log4j's hook would close the appenders
# first and lose those lines (appenders flush every line, so nothing else is lost).
shutdownHook = disable

appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
appender.stdout.filter.threshold.type = ThresholdFilter
appender.stdout.filter.threshold.level = warn

appender.server.type = RollingFile
appender.server.name = SERVER
appender.server.fileName = ${sys:kafka.logs.dir}/server.log
appender.server.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.server.layout.type = PatternLayout
appender.server.layout.pattern = [%d] %p %m (%c)%n
appender.server.policies.type = Policies
appender.server.policies.size.type = SizeBasedTriggeringPolicy
appender.server.policies.size.size = 20MB
appender.server.strategy.type = DefaultRolloverStrategy
appender.server.strategy.max = 5

rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
rootLogger.appenderRef.server.ref = SERVER

# Per-request lines, as the distribution keeps them quiet.
logger.request.name = kafka.request.logger
logger.request.level = warn
EOF
}

# java_opts: the distribution's kafka-run-class.sh performance flags with a smaller heap.
java_opts() {
  printf '%s\n' \
    "-Xms$KAFKA_HEAP" "-Xmx$KAFKA_HEAP" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    "-Xlog:gc*:file=$KAFKA_LOGS/kafkaServer-gc.log:time,tags:filecount=3,filesize=10M" \
    "-Dkafka.logs.dir=$KAFKA_LOGS" "-Dlog4j2.configurationFile=file:$KAFKA_LOG4J"
}

# A short-lived tool JVM: small heap, and no GC log, which would rotate away the broker's.
storage_tool() {
  CLASSPATH=$(cat "$KAFKA_CLASSPATH") java -Xmx256m -Djava.awt.headless=true \
    "-Dkafka.logs.dir=$KAFKA_LOGS" "-Dlog4j2.configurationFile=file:$KAFKA_LOG4J" kafka.tools.StorageTool "$@"
}

# Format the data folder once. Formatting happens in a side folder that is renamed into place,
# so an interrupted format never leaves a half-written data folder behind.
format_storage_once() {
  if [[ -f $KAFKA_DATA/meta.properties ]]; then
    grep -qx 'node.id=1' "$KAFKA_DATA/meta.properties" ||
      die "$KAFKA_DATA belongs to another Kafka node ($(grep '^node.id=' "$KAFKA_DATA/meta.properties" || echo 'no node.id')); run \`make infra-reset\` (or infra/kafka.sh reset) to start afresh"
    return 0
  fi
  if [[ -d $KAFKA_DATA && -n $(ls -A "$KAFKA_DATA") ]]; then
    die "$KAFKA_DATA is not empty but holds no meta.properties: it is corrupt or not a Kafka data folder; run \`make infra-reset\` (or infra/kafka.sh reset) to start afresh"
  fi
  local staging=$KAFKA_HOME/data.formatting cluster_id
  rm -rf "$staging" "$KAFKA_HOME/format.properties"
  write_server_properties "$KAFKA_HOME/format.properties" "$staging"
  cluster_id=$(storage_tool random-uuid 2>>"$KAFKA_OUT" | tail -n 1) || true
  [[ $cluster_id =~ ^[A-Za-z0-9_-]{22}$ ]] || die "StorageTool random-uuid gave no cluster id (got '$cluster_id'; log: $KAFKA_OUT)"
  info "formatting $KAFKA_DATA (cluster id $cluster_id)"
  if ! storage_tool format \
    -t "$cluster_id" -c "$KAFKA_HOME/format.properties" >>"$KAFKA_OUT" 2>&1; then
    show_log_tail "$KAFKA_OUT"
    die "formatting the Kafka storage failed (log: $KAFKA_OUT)"
  fi
  rm -rf "$KAFKA_DATA"
  mv "$staging" "$KAFKA_DATA"
  rm -f "$KAFKA_HOME/format.properties"
}

# ---- commands ------------------------------------------------------------------------------

cmd_start() {
  cmd_install quiet # cheap once resolved, and notices jars removed from the cache
  require_java17
  ensure_state_dir
  mkdir -p "$KAFKA_HOME" "$KAFKA_LOGS"
  # Two starts at once (say `make -j` and a test) would both see free ports and race; the
  # second waits here and then finds the broker running.
  exec 9>"$KAFKA_HOME/start.lock"
  flock -w "$KAFKA_START_TIMEOUT" 9 || die "another kafka.sh start still holds $KAFKA_HOME/start.lock"

  if kafka_pid_alive; then
    if probe >/dev/null 2>&1; then
      info "already running (pid $(cat "$KAFKA_PIDFILE")) on $KAFKA_ADDR"
      return 0
    fi
    # Started but not answering yet (another start is under way, or it is still recovering).
    wait_until "Kafka on $KAFKA_ADDR" "$KAFKA_START_TIMEOUT" "$KAFKA_OUT" "$KAFKA_PIDFILE" probe
    return 0
  fi
  forget_stale_pid
  require_port_free "$ORDEXA_KAFKA_PORT" ORDEXA_KAFKA_PORT
  require_port_free "$ORDEXA_KAFKA_CONTROLLER_PORT" ORDEXA_KAFKA_CONTROLLER_PORT

  write_log4j_config
  write_server_properties "$KAFKA_PROPS" "$KAFKA_DATA"
  format_storage_once

  local -a opts
  mapfile -t opts < <(java_opts)
  info "starting Kafka $KAFKA_VERSION on $KAFKA_ADDR (controller $ORDEXA_BIND:$ORDEXA_KAFKA_CONTROLLER_PORT, heap $KAFKA_HEAP)"
  printf -- '----- %s: starting Kafka %s -----\n' "$(date '+%F %T')" "$KAFKA_VERSION" >>"$KAFKA_OUT"
  # setsid: the broker must outlive the shell (and a Ctrl-C in the terminal) that started it.
  # In a non-interactive script the child is no process-group leader, so setsid execs java in
  # place and $! is the java pid. CLASSPATH rather than -cp keeps the long jar list out of `ps`.
  # 9>&-: the broker must not inherit (and so hold) the start lock.
  CLASSPATH=$(cat "$KAFKA_CLASSPATH") nohup setsid java "${opts[@]}" kafka.Kafka "$KAFKA_PROPS" \
    >>"$KAFKA_OUT" 2>&1 </dev/null 9>&- &
  echo $! >"$KAFKA_PIDFILE"
  echo "$KAFKA_VERSION" >"$KAFKA_HOME/kafka.version"

  # The probe's Metadata request only succeeds once the broker has registered with the
  # controller, which is later than the port opening. INFO lines are in server.log.
  if ! (wait_until "Kafka on $KAFKA_ADDR" "$KAFKA_START_TIMEOUT" "$KAFKA_OUT" "$KAFKA_PIDFILE" probe); then
    # server.log holds the INFO context, unless the JVM died before writing to it.
    if [[ $KAFKA_LOGS/server.log -nt $KAFKA_PIDFILE ]]; then show_log_tail "$KAFKA_LOGS/server.log"; fi
    if kafka_pid_alive; then
      info "Kafka is still running (pid $(cat "$KAFKA_PIDFILE")) and may yet come up; \`$0 stop\` ends it"
    fi
    exit 1
  fi
  info "$(probe)"
}

cmd_stop() {
  forget_stale_pid
  if [[ ! -f $KAFKA_PIDFILE ]]; then
    info "not running"
    return 0
  fi
  # A clean shutdown closes the logs properly, sparing the next start a recovery pass.
  stop_pid Kafka "$KAFKA_PIDFILE" 60
  info "stopped (data kept in $KAFKA_DATA)"
}

cmd_status() {
  local version
  version=$(cat "$KAFKA_HOME/kafka.version" 2>/dev/null || echo "$KAFKA_VERSION")
  if kafka_pid_alive; then
    if probe >/dev/null 2>&1; then
      echo "kafka: running, pid $(cat "$KAFKA_PIDFILE"), $KAFKA_ADDR, Kafka $version"
    else
      echo "kafka: running but not answering, pid $(cat "$KAFKA_PIDFILE"), $KAFKA_ADDR, Kafka $version (log: $KAFKA_LOGS)"
    fi
  else
    echo "kafka: stopped, $KAFKA_ADDR, Kafka $KAFKA_VERSION"
  fi
}

cmd_env() {
  echo "export ORDEXA_KAFKA_BOOTSTRAP=$KAFKA_ADDR"
}

cmd_reset() {
  forget_stale_pid
  stop_pid Kafka "$KAFKA_PIDFILE" 60
  [[ -d $KAFKA_HOME ]] || return 0
  # Same guard as ensure_state_dir: never delete inside a folder Ordexa did not create.
  [[ -f $ORDEXA_STATE_DIR/$STATE_MARKER ]] ||
    die "$ORDEXA_STATE_DIR has no $STATE_MARKER, so it is not Ordexa's; not deleting $KAFKA_HOME"
  rm -rf "$KAFKA_HOME"
  info "removed $KAFKA_HOME"
}

case ${1:-} in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  kill) kill_pid Kafka "$KAFKA_PIDFILE" ;;
  status) cmd_status ;;
  env) cmd_env ;;
  reset) cmd_reset ;;
  *)
    echo "usage: $0 install|start|stop|kill|status|env|reset" >&2
    exit 2
    ;;
esac
