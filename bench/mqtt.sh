# bench/mqtt.sh — benchmark 9: SensorSpace's MQTT broker against mosquitto 2.0
# on this machine, the same load tool (mqtt_load.c) against both. Sourced by
# run.sh, which runs `mqtt_run` when BENCH_ONLY names mqtt; it uses run.sh's
# log, ports, start_ss / stop_ss, stop_pid, PIDS, REC and WORK. See
# bench/README.md, benchmark 9.
#
#   BENCH_ONLY=mqtt BENCH_RESULTS=/tmp/r.md bash bench/run.sh $PWD/build/sensorspace
#
# A sensorspace without an MQTT listener (it warns and prints no
# `listening mqtt` line) is left out: mosquitto's figures are still measured.

if [ "${BENCH_QUICK:-0}" = 1 ]; then
    : "${BENCH_MQTT_SECONDS:=3}" "${BENCH_MQTT_LAT_SECONDS:=2}" "${BENCH_MQTT_ROUNDS:=1}"
    : "${BENCH_MQTT_IDLE:=2000}" "${BENCH_MQTT_IDLE_DEVICES:=200}"
fi
MQTT_SECONDS=${BENCH_MQTT_SECONDS:-8}          # publishing time of a throughput run
MQTT_LAT_SECONDS=${BENCH_MQTT_LAT_SECONDS:-5}  # of a latency run
MQTT_ROUNDS=${BENCH_MQTT_ROUNDS:-2}            # throughput rounds, the peers' order swapped in each
MQTT_PUBS=${BENCH_MQTT_PUBS:-4}                # publishers (devices), one subscriber
MQTT_WINDOW=${BENCH_MQTT_WINDOW:-64}           # QoS 1 PUBLISHes in flight per publisher (at most)
MQTT_VERSION=${BENCH_MQTT_VERSION:-5}          # 4 = MQTT 3.1.1, 5 = MQTT 5.0
MQTT_IDLE=${BENCH_MQTT_IDLE:-10000}            # idle connections, half of them over TLS
MQTT_IDLE_DEVICES=${BENCH_MQTT_IDLE_DEVICES:-2000}  # devices the idle connections sign in as, in turn
MQTT_RUN=0                                     # runs so far: each gets a day of timestamps of its own

MOSQ_PID="" MOSQ_PORT="" MOSQ_TLS_PORT="" MOSQ_DIR=""
SS_MQTT=off SS_MQTTS=off SS_MQTT_PORT="" SS_MQTTS_PORT="" SS_MQTT_KEY=""

# mqtt_start_mosquitto NAME: a fresh mosquitto with a plain and a TLS
# listener on free loopback ports. allow_anonymous: it checks no
# credentials, and is sent the same ones SensorSpace gets. Unbounded queues
# (max_queued_messages 0) so that, like SensorSpace's, it loses no QoS 1
# message of a subscriber that falls behind (its default of 1000 drops them);
# TCP_NODELAY on its sockets (its default leaves Nagle on, which holds QoS 0
# deliveries until the subscriber's delayed ACK: tens of ms).
mqtt_start_mosquitto() {
    local i
    MOSQ_DIR=$WORK/$1
    mkdir -p "$MOSQ_DIR"
    read -r MOSQ_PORT MOSQ_TLS_PORT < <(ports 2)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -subj /CN=localhost -keyout "$MOSQ_DIR/key.pem" -out "$MOSQ_DIR/cert.pem" 2>/dev/null ||
        { log "cannot make mosquitto's certificate"; exit 1; }
    # `user`: run as root, mosquitto would switch to user mosquitto, who
    # cannot read the temp dir.
    cat >"$MOSQ_DIR/mosquitto.conf" <<EOF
user $(id -un)
per_listener_settings false
allow_anonymous true
persistence false
max_queued_messages 0
set_tcp_nodelay true
log_dest file $MOSQ_DIR/mosquitto.log
log_type error
log_type warning
listener $MOSQ_PORT 127.0.0.1
listener $MOSQ_TLS_PORT 127.0.0.1
certfile $MOSQ_DIR/cert.pem
keyfile $MOSQ_DIR/key.pem
EOF
    mosquitto -c "$MOSQ_DIR/mosquitto.conf" >"$MOSQ_DIR/stdout" 2>&1 &
    MOSQ_PID=$!
    PIDS+=("$MOSQ_PID")
    for ((i = 0; i < START_TIMEOUT_S * 10; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$MOSQ_TLS_PORT") 2>/dev/null &&
            (exec 3<>"/dev/tcp/127.0.0.1/$MOSQ_PORT") 2>/dev/null && break
        kill -0 "$MOSQ_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$MOSQ_PID" 2>/dev/null && ((i < START_TIMEOUT_S * 10)) || {
        log "mosquitto did not start:"; tail -5 "$MOSQ_DIR/stdout" "$MOSQ_DIR/mosquitto.log" >&2; exit 1; }
    log "mosquitto $1 pid $MOSQ_PID on 127.0.0.1:$MOSQ_PORT (TLS $MOSQ_TLS_PORT)"
}

mqtt_stop_mosquitto() {
    stop_pid "$MOSQ_PID"
    MOSQ_PID=""
}

# mqtt_start_ss NAME DEVICES: start_ss with the MQTT listeners on free
# ports and a data:read API key for the subscriber. Returns 1 (and stops
# it) when this sensorspace has no MQTT listener.
mqtt_start_ss() {
    local i
    SS_MQTT=127.0.0.1:0 SS_MQTTS=127.0.0.1:0
    start_ss "$1" full "$2"
    SS_MQTT=off SS_MQTTS=off
    for ((i = 0; i < START_TIMEOUT_S * 10; i++)); do
        SS_MQTT_PORT=$(ss_listen mqtt) SS_MQTTS_PORT=$(ss_listen mqtts)
        [ -n "$SS_MQTT_PORT" ] && [ -n "$SS_MQTTS_PORT" ] && break
        grep -q 'mqtt.* not available' "$SS_DIR/stderr" && break
        sleep 0.1
    done
    if [ -z "$SS_MQTT_PORT" ] || [ -z "$SS_MQTTS_PORT" ]; then
        stop_ss
        return 1
    fi
    SS_MQTT_KEY=$(python3 "$HERE/mqtt_tools.py" apikey "$SS_PORT" "$SS_ADMIN" "$SS_ORG")
    log "sensorspace $1: MQTT on 127.0.0.1:$SS_MQTT_PORT (TLS $SS_MQTTS_PORT)"
}

# mqtt_load_run PEER MODE QOS [ARGS...]: one mqtt_load run against PEER's
# running broker; appends its record (with, for sensorspace, the readings
# it stored during the run) to REC.
mqtt_load_run() {
    local peer=$1 mode=$2 qos=$3 port devices user=apikey key before=0 after res stored=-
    local err=$WORK/mqtt-$MQTT_RUN-$peer-$mode-q$qos.err
    shift 3
    if [ "$peer" = sensorspace ]; then
        port=$SS_MQTT_PORT devices=$SS_DIR/devices key=$SS_MQTT_KEY
        before=$(python3 "$HERE/mqtt_tools.py" count "$SS_PORT" "$SS_ADMIN" "$devices" "$MQTT_PUBS")
    else
        port=$MOSQ_PORT devices=$MOSQ_DIR/devices key=$(python3 "$HERE/mqtt_tools.py" fake-key)
    fi
    MQTT_RUN=$((MQTT_RUN + 1))
    res=$(timeout 120 "$WORK/mqtt_load" --mode "$mode" --mqtt "$MQTT_VERSION" --qos "$qos" --port "$port" \
        --devices "$devices" --pubs "$MQTT_PUBS" --window "$MQTT_WINDOW" --sub-user "$user" --sub-pass "$key" \
        --base-ms $(($(now_ms) - (60 + MQTT_RUN) * DAY_MS)) "$@" 2>"$err" | sed -n 's/^RESULT //p') || true
    [ -s "$err" ] && sed "s/^/  mqtt $peer: /" "$err" | head -5 >&2
    [ -n "$res" ] || { log "mqtt_load $mode failed against $peer"; return 1; }
    if [ "$peer" = sensorspace ]; then
        sleep 0.5   # QoS 0: readings still in the ingest queue when the run ended
        after=$(python3 "$HERE/mqtt_tools.py" count "$SS_PORT" "$SS_ADMIN" "$devices" "$MQTT_PUBS")
        stored=$((after - before))
    fi
    echo "bench=mqtt peer=$peer round=$ROUND stored=$stored $res" >>"$REC"
    log "mqtt $peer $mode qos $qos: $(grep -o 'recv_per_s=[0-9]*\|p50_ms=[0-9.]*\|p99_ms=[0-9.]*\|lost=[0-9-]*' <<<"$res" | tr '\n' ' ')stored $stored"
}

# mqtt_throughput PEER...: QoS 0 then QoS 1, each peer in the order given.
mqtt_throughput() {
    local qos peer
    for qos in 0 1; do
        for peer in "$@"; do
            mqtt_load_run "$peer" throughput "$qos" --seconds "$MQTT_SECONDS" || true
        done
    done
}

# mqtt_idle PEER: a fresh broker, MQTT_IDLE connections (half TLS) held
# while mqtt_load reads the broker's VmRSS.
mqtt_idle() {
    local peer=$1 port tls pid devices res err=$WORK/mqtt-idle-$1.err
    if [ "$peer" = sensorspace ]; then
        mqtt_start_ss ss-mqtt-idle "$MQTT_IDLE_DEVICES" || return 0
        port=$SS_MQTT_PORT tls=$SS_MQTTS_PORT pid=$SS_PID devices=$SS_DIR/devices
    else
        mqtt_start_mosquitto mosquitto-idle
        python3 "$HERE/mqtt_tools.py" fake-devices "$MQTT_IDLE_DEVICES" >"$MOSQ_DIR/devices"
        port=$MOSQ_PORT tls=$MOSQ_TLS_PORT pid=$MOSQ_PID devices=$MOSQ_DIR/devices
    fi
    res=$(timeout 180 "$WORK/mqtt_load" --mode idle --mqtt "$MQTT_VERSION" --port "$port" --tls-port "$tls" \
        --devices "$devices" --conns "$MQTT_IDLE" --tls-conns $((MQTT_IDLE / 2)) --pid "$pid" \
        2>"$err" | sed -n 's/^RESULT //p') || true
    [ -s "$err" ] && sed "s/^/  mqtt idle $peer: /" "$err" | head -5 >&2
    if [ "$peer" = sensorspace ]; then stop_ss; else mqtt_stop_mosquitto; fi
    [ -n "$res" ] || { log "mqtt idle failed against $peer"; return 0; }
    echo "bench=mqtt peer=$peer $res" >>"$REC"
    log "mqtt idle $peer: $(grep -o 'bytes_per_[a-z]*=[0-9]*' <<<"$res" | tr '\n' ' ')"
}

mqtt_run() {
    local peers=(mosquitto) qos rate peer
    command -v mosquitto >/dev/null || { log "no mosquitto (make bench installs it): MQTT benchmark skipped"; return 0; }
    cc -O2 -o "$WORK/mqtt_load" "$HERE/mqtt_load.c" -lssl -lcrypto || { log "cannot compile mqtt_load.c"; exit 1; }
    if [ "$FD_LIMIT" != unlimited ] && [ "$FD_LIMIT" -lt $((MQTT_IDLE + 200)) ]; then
        MQTT_IDLE=$((FD_LIMIT - 200))
        log "ulimit -n is $FD_LIMIT: idle MQTT connections lowered to $MQTT_IDLE"
    fi
    # Both brokers stay up through throughput and latency (an idle broker
    # costs the other nothing), so each round can swap their order.
    if mqtt_start_ss ss-mqtt "$MQTT_PUBS"; then
        peers+=(sensorspace)
        cp "$SS_DIR/devices" "$WORK/mqtt-devices"
    else
        log "this sensorspace has no MQTT listener: mosquitto measured alone"
        python3 "$HERE/mqtt_tools.py" fake-devices "$MQTT_PUBS" >"$WORK/mqtt-devices"
    fi
    mqtt_start_mosquitto mosquitto
    cp "$WORK/mqtt-devices" "$MOSQ_DIR/devices"   # the same ids and tokens on the wire
    for ((ROUND = 1; ROUND <= MQTT_ROUNDS; ROUND++)); do
        if ((ROUND % 2)); then mqtt_throughput "${peers[@]}"; else mqtt_throughput $(printf '%s\n' "${peers[@]}" | tac); fi
    done
    # Latency at half the lower peak (received/s) of the two at that QoS:
    # both brokers under the same load.
    ROUND=1
    for qos in 0 1; do
        rate=$(python3 "$HERE/mqtt_tools.py" latency-rate "$REC" "$qos") || continue
        for peer in "${peers[@]}"; do
            mqtt_load_run "$peer" latency "$qos" --seconds "$MQTT_LAT_SECONDS" --rate "$rate" || true
        done
    done
    mqtt_stop_mosquitto
    [ -n "$SS_PID" ] && stop_ss
    for peer in "${peers[@]}"; do mqtt_idle "$peer"; done
}

# mqtt_profile MISSED: profiles (run.sh's profile_workload) sensorspace under
# the MQTT throughput load of each QoS whose target was missed (each with
# BENCH_PROFILE=1).
mqtt_profile() {
    local qos
    [ -x "$WORK/mqtt_load" ] && [ -n "$(grep '^bench=mqtt peer=sensorspace' "$REC")" ] || return 0
    for qos in 0 1; do
        if [ "$PROFILE" = 1 ] || grep -q "^mqtt QoS $qos:" <<<"$1"; then
            SS_MQTT=127.0.0.1:0
            profile_workload "mqtt-q$qos" || log "profiling (mqtt QoS $qos) failed"
            SS_MQTT=off
        fi
    done
}

# mqtt_profile_load QOS SECONDS: the throughput load on the server
# profile_workload started (MQTT listener on, MQTT_PUBS devices or more).
mqtt_profile_load() {
    SS_MQTT_PORT=$(ss_listen mqtt)
    SS_MQTT_KEY=$(python3 "$HERE/mqtt_tools.py" apikey "$SS_PORT" "$SS_ADMIN" "$SS_ORG")
    timeout 180 "$WORK/mqtt_load" --mode throughput --mqtt "$MQTT_VERSION" --qos "$1" --port "$SS_MQTT_PORT" \
        --devices "$SS_DIR/devices" --pubs "$MQTT_PUBS" --window "$MQTT_WINDOW" --sub-user apikey \
        --sub-pass "$SS_MQTT_KEY" --seconds "$2" >/dev/null 2>>"$WORK/mqtt-profile.err" ||
        log "mqtt_load under the profiler: $(tail -1 "$WORK/mqtt-profile.err")"
}
