#!/usr/bin/env bash
# bench/run.sh — SensorSpace benchmarks against nginx and InfluxDB 1.6, run
# side by side on this machine, loopback only. See bench/README.md.
#
#   bash bench/run.sh /abs/path/to/build/sensorspace      (what `make bench` does)
#
# Knobs (environment):
#   BENCH_DURATION=10          seconds per wrk run
#   BENCH_SETTINGS="1:64 2:256"  wrk threads:connections tried per peer
#   BENCH_ROUNDS=2             rounds of benchmarks 1 and 2, every peer freshly
#                              started in each; the best run counts (the
#                              machine may be shared: best-of filters bursts
#                              of someone else's load)
#   BENCH_BATCHES=4000         requests of 1000 readings per batch run (upper bound)
#   BENCH_BATCH_CONNS="4 16"   concurrent connections tried in the batch runs
#   BENCH_IDLE_CONNS=10000     idle keep-alive connections in the memory run (per
#                              server and protocol: HTTP, then HTTPS)
#   BENCH_TCP_CONNS=4          connections of the TCP ingest run (5)
#   BENCH_TCP_LINES=1000000    lines per TCP connection (upper bound; 30 s cap)
#   BENCH_DEVICES=1000         devices holding a TCP connection each (6)
#   BENCH_DEVICES_SECONDS=20   seconds they send one reading a second
#   BENCH_WIRE_READINGS=40     readings per scenario of the bytes-on-the-wire run (7)
#   BENCH_ACCT_REQUESTS=20000  single-reading requests profiled under callgrind (8)
#   BENCH_QUICK=1              a smoke run: short and small everything (1-2 min)
#   BENCH_PROFILE=auto|1|0     profile when a target is missed (auto), always, never
#   BENCH_IMPORT_READINGS=10000000  readings in the bulk import run (10)
#   BENCH_ONLY="single batch tcp idle devices wire acct mqtt import export live web"   which benchmarks to run
#   BENCH_MQTT_*               the MQTT benchmark's knobs (9; bench/mqtt.sh)
#   BENCH_EXPORT_*             the export benchmark's knobs (11; bench/export.sh)
#   BENCH_LIVE_*               the live stream benchmark's knobs (12; bench/live.sh)
#   BENCH_WEB_*                the web app benchmark's knobs (13; bench/web.sh)
#   BENCH_BASELINE=REV         also run one reading per request (1) and TCP ingest (5)
#                              on the server of git revision REV (built from `git
#                              archive`), side by side in every round: an A/B.
#                              Default: the revision in bench/BASELINE; empty: none
#   BENCH_BASELINE_QUOTA=N     the baseline org's readings-per-day quota (default the
#                              same as the current server's; 0 for a revision
#                              from before quotas)
#   BENCH_KEEP=1               keep the temp dir (data, logs) afterwards
#   BENCH_RESULTS=FILE         where the report goes (default bench/RESULTS.md)
#
# Every process it starts is recorded and stopped on exit (trap); every port is
# a free one the kernel picked; everything lives in one temp dir under /tmp;
# every wait has a bound.
set -euo pipefail

BIN=${1:?usage: bash bench/run.sh /abs/path/to/sensorspace}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    : "${BENCH_DURATION:=3}" "${BENCH_SETTINGS:=1:64}" "${BENCH_ROUNDS:=1}" "${BENCH_BATCHES:=500}"
    : "${BENCH_BATCH_CONNS:=4}" "${BENCH_IDLE_CONNS:=2000}" "${BENCH_TCP_LINES:=250000}"
    : "${BENCH_DEVICES_SECONDS:=5}" "${BENCH_WIRE_READINGS:=12}" "${BENCH_ACCT_REQUESTS:=5000}"
    : "${BENCH_IMPORT_READINGS:=1000000}"
fi
DURATION=${BENCH_DURATION:-10}
SETTINGS=${BENCH_SETTINGS:-"1:64 2:256"}
ROUNDS=${BENCH_ROUNDS:-2}
ROUND=1
BATCHES=${BENCH_BATCHES:-4000}
BATCH_CONNS=${BENCH_BATCH_CONNS:-"4 16"}
BATCH_SIZE=1000
IDLE_CONNS=${BENCH_IDLE_CONNS:-10000}
PROFILE=${BENCH_PROFILE:-auto}
TCP_CONNS=${BENCH_TCP_CONNS:-4}
TCP_LINES=${BENCH_TCP_LINES:-1000000}
DEVICES=${BENCH_DEVICES:-1000}
DEVICES_SECONDS=${BENCH_DEVICES_SECONDS:-20}
WIRE_READINGS=${BENCH_WIRE_READINGS:-40}
ACCT_REQUESTS=${BENCH_ACCT_REQUESTS:-20000}
# A readings-per-day quota far above what a run stores: accounting and quotas
# are always on, and with a limit set every message takes the quota check.
QUOTA=1000000000
IMPORT_READINGS=${BENCH_IMPORT_READINGS:-10000000}
ONLY=${BENCH_ONLY:-"single batch tcp idle devices wire acct mqtt import export live web"}
RESULTS_MD=${BENCH_RESULTS:-$HERE/RESULTS.md}
# The revision the A/B compares with: the first word of bench/BASELINE's
# first line that is not a comment, unless BENCH_BASELINE is set.
BASELINE=${BENCH_BASELINE-$(awk '!/^[[:space:]]*(#|$)/ {print $1; exit}' "$HERE/BASELINE" 2>/dev/null)}
BASELINE_QUOTA=${BENCH_BASELINE_QUOTA-$QUOTA}
BASE_BIN=
WARMUP_S=2
START_TIMEOUT_S=30     # a server that has not said "listening" by then is broken
STOP_TIMEOUT_S=15      # SIGTERM, then SIGKILL
ADMIN_PASSWORD=bench-password-123
ADMIN_EMAIL=admin@localhost
DAY_MS=86400000

[ -x "$BIN" ] || { echo "run.sh: $BIN is not an executable" >&2; exit 2; }
for tool in wrk nginx influxd python3 curl cc openssl; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (make bench installs it)" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/ss-bench.XXXXXX)
REC=$WORK/records.txt      # one line per measurement, key=value tokens
: >"$REC"
PIDS=()

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# stop_pid PID: SIGTERM, SIGKILL after STOP_TIMEOUT_S, and forget the pid so
# cleanup never signals a number the kernel may have handed to someone else.
stop_pid() {
    local pid=$1 i p keep=()
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < STOP_TIMEOUT_S * 10; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "pid $pid ignored SIGTERM for ${STOP_TIMEOUT_S}s; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true
    for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

cleanup() {
    local rc=$? pid
    for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
    if [ "${BENCH_KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then
        log "temp dir kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Raise the fd limit for the 10 000 idle connections (client and servers
# inherit it); the hard limit is the ceiling we may take.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT=$(ulimit -n)
if [ "$FD_LIMIT" != unlimited ] && [ "$FD_LIMIT" -lt $((IDLE_CONNS + 200)) ]; then
    IDLE_CONNS=$((FD_LIMIT - 200))
    log "ulimit -n is $FD_LIMIT: idle connections lowered to $IDLE_CONNS"
fi

ports() { python3 "$HERE/tools.py" ports "$1"; }
now_ms() { date +%s%3N; }

# ---- machine description ---------------------------------------------------

describe_machine() {
    local out=$WORK/machine.txt
    {
        echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo "nproc: $(nproc)"
        echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
        echo "memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
        echo "kernel: $(uname -sr)"
        echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "temp dir filesystem: $(df -T "$WORK" | awk 'NR==2 {print $2" on "$1}')"
        echo "fsync of 4 KiB there (median of 50): $(python3 - "$WORK" <<'EOF'
import os, sys, time
p = os.path.join(sys.argv[1], "fsync-probe")
fd = os.open(p, os.O_WRONLY | os.O_CREAT, 0o600)
ts = []
for _ in range(50):
    os.write(fd, b"x" * 4096)
    t = time.perf_counter(); os.fsync(fd); ts.append(time.perf_counter() - t)
os.close(fd); os.unlink(p)
print(f"{sorted(ts)[25] * 1e3:.2f} ms")
EOF
)"
        echo "ulimit -n: $FD_LIMIT"
        echo "sensorspace: $("$BIN" version 2>&1 | head -1) ($BIN)"
        echo "wrk: $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
        echo "nginx: $(nginx -v 2>&1 | cut -d' ' -f3)"
        echo "influxdb: $(influxd version 2>&1 | head -1)"
        echo "mosquitto: $(mosquitto -h 2>&1 | sed -n 's/^mosquitto version //p' | head -1)"
        echo "python: $(python3 --version 2>&1)"
        echo "libuv: $(pkg-config --modversion libuv 2>/dev/null || echo '?'), sqlite: $(pkg-config --modversion sqlite3 2>/dev/null || echo '?')"
    } >"$out"
    cat "$out" >&2
}

# ---- sensorspace -------------------------------------------------------------

SS_PID="" SS_PORT="" SS_ADMIN="" SS_DIR="" SS_ORG=""
SS_TCP_PORT="" SS_UDP_PORT="" SS_HTTPS_PORT=""
SS_HTTPS=off    # the wire benchmark turns it on (127.0.0.1:0): a certificate is made at start
SS_DEVICES=()   # "id token", handed out by next_device
REC_TAG=""      # added to every record of the running server (rev=... for the baseline)

# ss_listen PROTO: the port the server printed as `listening PROTO 127.0.0.1:PORT`.
ss_listen() { sed -n "s/^listening $1 127\.0\.0\.1:\([0-9]*\).*/\1/p" "$SS_DIR/stdout" | head -1; }

# start_ss NAME DURABILITY DEVICES [WRAPPER...]: the wrapper (valgrind ...)
# execs the server, so $! is the server's pid either way. TCP and UDP ingest
# listen on free loopback ports; the bench org gets the QUOTA.
start_ss() {
    local name=$1 durability=$2 devices=$3
    shift 3
    SS_DIR=$WORK/$name
    mkdir -p "$SS_DIR"
    # The background shell opens stdout only once it runs: made here, so
    # ss_listen never reads a file that is not there yet (set -e would end
    # the run).
    : >"$SS_DIR/stdout"
    SENSORSPACE_ADMIN_PASSWORD=$ADMIN_PASSWORD SENSORSPACE_ADMIN_EMAIL=$ADMIN_EMAIL \
        "$@" "$BIN" serve --data-dir "$SS_DIR/data" --listen-http 127.0.0.1:0 \
        --listen-https "$SS_HTTPS" --listen-mqtt "$SS_MQTT" --listen-mqtts "$SS_MQTTS" --listen-tcp 127.0.0.1:0 \
        --listen-udp 127.0.0.1:0 --durability "$durability" \
        >"$SS_DIR/stdout" 2>"$SS_DIR/stderr" &
    SS_PID=$!
    PIDS+=("$SS_PID")
    local i
    SS_PORT=""
    for ((i = 0; i < START_TIMEOUT_S * 10; i++)); do
        SS_PORT=$(ss_listen http)
        [ -n "$SS_PORT" ] && [ -n "$(ss_listen udp)" ] && break
        kill -0 "$SS_PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$SS_PORT" ]; then
        log "sensorspace ($name) did not start; stderr:"; tail -20 "$SS_DIR/stderr" >&2
        exit 1
    fi
    python3 "$HERE/tools.py" wait-http "http://127.0.0.1:$SS_PORT/healthz" --timeout "$START_TIMEOUT_S"
    SS_TCP_PORT=$(ss_listen tcp) SS_UDP_PORT=$(ss_listen udp) SS_HTTPS_PORT=$(ss_listen https)
    python3 "$HERE/tools.py" ss-setup "$SS_PORT" --devices "$devices" --quota "$QUOTA" \
        --email "$ADMIN_EMAIL" --password "$ADMIN_PASSWORD" >"$SS_DIR/devices"
    SS_ADMIN=$(awk '$1 == "admin" {print $2}' "$SS_DIR/devices")
    SS_ORG=$(awk '$1 == "org" {print $2}' "$SS_DIR/devices")
    mapfile -t SS_DEVICES < <(awk '$1 != "admin" && $1 != "org"' "$SS_DIR/devices")
    log "sensorspace $name (durability $durability) pid $SS_PID on 127.0.0.1:$SS_PORT"
}

stop_ss() {
    stop_pid "$SS_PID"
    SS_PID=""
}

# next_device: sets DEV_ID and DEV_TOKEN to a device not used yet in this server.
next_device() {
    [ ${#SS_DEVICES[@]} -gt 0 ] || { log "out of devices"; exit 1; }
    read -r DEV_ID DEV_TOKEN <<<"${SS_DEVICES[0]}"
    SS_DEVICES=("${SS_DEVICES[@]:1}")
}

ss_count() {
    sleep 0.5   # requests wrk left in flight at its deadline may still commit
    python3 "$HERE/tools.py" ss-count "$SS_PORT" "$SS_ADMIN" "$DEV_ID"
}

# ---- benchmark 10: bulk import of history -------------------------------------

# One import of IMPORT_READINGS readings over 10 devices per round, on a
# server fresh for it (durability full), with another org's device posting
# single readings meanwhile (import_client.py).
import_run() {
    local res devs
    start_ss "ss-import-r$ROUND" full 10
    devs=$(printf '%s\n' "${SS_DEVICES[@]}" | awk '{print $1}' | paste -sd,)
    res=$(timeout 900 python3 "$HERE/import_client.py" --port "$SS_PORT" --admin "$SS_ADMIN" \
        --org "$SS_ORG" --devices "$devs" --readings "$IMPORT_READINGS" --dir "$WORK" \
        2>"$WORK/import-$ROUND.err" | sed -n 's/^RESULT //p') || true
    [ -s "$WORK/import-$ROUND.err" ] && sed 's/^/  import: /' "$WORK/import-$ROUND.err" >&2
    stop_ss
    [ -n "$res" ] || { log "import client failed"; return 0; }
    echo "bench=import round=$ROUND peer=sensorspace-full $res" >>"$REC"
    log "import: $(sed -n 's/.*readings_per_s=\([0-9]*\).*/\1/p' <<<"$res") readings/s"
}

# ---- benchmark 9: MQTT, sensorspace's broker against mosquitto ---------------

. "$HERE/mqtt.sh"

# ---- benchmark 10: export, against influxdb ---------------------------------

. "$HERE/export.sh"

# ---- benchmark 12: the live stream's latency ---------------------------------

. "$HERE/live.sh"

# ---- benchmark 13: the web app's dashboards in the browser -------------------

. "$HERE/web.sh"

# ---- nginx -------------------------------------------------------------------

NGX_PID="" NGX_PORT=""

start_nginx() {
    local name=$1 workers=$2 dir=$WORK/$1 i
    mkdir -p "$dir"
    read -r NGX_PORT NGX_TLS_PORT < <(ports 2)
    # The same kind of certificate sensorspace makes for itself (ECDSA P-256).
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -subj /CN=localhost -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null ||
        { log "cannot make nginx's certificate"; exit 1; }
    sed -e "s|@WORKERS@|$workers|" -e "s|@PORT@|$NGX_PORT|" -e "s|@TLSPORT@|$NGX_TLS_PORT|" \
        -e "s|@DIR@|$dir|g" "$HERE/conf/nginx.conf.in" >"$dir/nginx.conf"
    nginx -p "$dir" -e "$dir/error.log" -c "$dir/nginx.conf" >"$dir/stdout" 2>&1 &
    NGX_PID=$!
    PIDS+=("$NGX_PID")
    python3 "$HERE/tools.py" wait-http "http://127.0.0.1:$NGX_PORT/healthz" --timeout "$START_TIMEOUT_S" || {
        tail -20 "$dir/error.log" "$dir/stdout" >&2; exit 1; }
    log "nginx $name (worker_processes $workers) pid $NGX_PID on 127.0.0.1:$NGX_PORT"
}

stop_nginx() {
    stop_pid "$NGX_PID"
    NGX_PID=""
}

# ---- influxdb ----------------------------------------------------------------

INFLUX_PID="" INFLUX_PORT=""

start_influx() {
    local dir=$WORK/$1 rpc
    mkdir -p "$dir"
    read -r INFLUX_PORT rpc < <(ports 2)
    sed -e "s|@PORT@|$INFLUX_PORT|" -e "s|@RPCPORT@|$rpc|" -e "s|@DIR@|$dir|g" \
        "$HERE/conf/influxdb.conf.in" >"$dir/influxdb.conf"
    influxd run -config "$dir/influxdb.conf" >"$dir/log" 2>&1 &
    INFLUX_PID=$!
    PIDS+=("$INFLUX_PID")
    python3 "$HERE/tools.py" wait-http "http://127.0.0.1:$INFLUX_PORT/ping" --timeout "$START_TIMEOUT_S" || {
        tail -20 "$dir/log" >&2; exit 1; }
    python3 "$HERE/tools.py" influx-create "$INFLUX_PORT"
    log "influxd pid $INFLUX_PID on 127.0.0.1:$INFLUX_PORT"
}

stop_influx() {
    stop_pid "$INFLUX_PID"
    INFLUX_PID=""
}

# ---- benchmark 1: one reading per request ------------------------------------

# wrk_run THREADS CONNS SECONDS URL LOGFILE MODE ARG...: prints the RESULT fields.
wrk_run() {
    local t=$1 c=$2 d=$3 url=$4 out=$5
    shift 5
    timeout $((d + 30)) wrk -t"$t" -c"$c" -d"${d}s" --timeout 10s \
        -s "$HERE/wrk/single.lua" "$url" -- "$@" >"$out" 2>&1 || {
        log "wrk failed:"; tail -5 "$out" >&2; return 1; }
    # wrk's own summary lines, kept as evidence of non-2xx answers.
    grep -E 'Non-2xx|Socket errors' "$out" | sed 's/^/  wrk: /' >&2 || true
    sed -n 's/^RESULT //p' "$out"
}

# single_peer PEER MODE URL [COUNTER]: warm-up, then every wrk setting.
# MODE ss: each run on its own device, stored readings counted after.
# MODE influx: each run on its own series, counted after.
single_peer() {
    local peer=$1 mode=$2 url=$3 base setting t c res arg stored dev
    base=$(($(now_ms) - 7 * DAY_MS))
    for setting in warmup $SETTINGS; do
        if [ "$setting" = warmup ]; then t=1 c=64; else t=${setting%%:*} c=${setting##*:}; fi
        case $mode in
            ss) next_device; arg=$DEV_TOKEN; dev=$DEV_ID ;;
            influx) dev="single-${setting/:/x}"; arg=$dev ;;
            nginx) arg="" dev="" ;;
        esac
        local secs=$DURATION
        [ "$setting" = warmup ] && secs=$WARMUP_S
        local commits0="" commits1=""
        [ "$mode" = ss ] && commits0=$(python3 "$HERE/tools.py" ss-commits "$SS_PORT")
        res=$(wrk_run "$t" "$c" "$secs" "$url" "$WORK/wrk-$ROUND-$peer-$setting.log" "$mode" "$base" $arg) || exit 1
        [ "$setting" = warmup ] && continue
        stored=-
        case $mode in
            ss) stored=$(ss_count)
                commits1=$(python3 "$HERE/tools.py" ss-commits "$SS_PORT")
                res="$res $(python3 "$HERE/tools.py" commits-delta "$commits0" "$commits1")" ;;
            influx) sleep 0.5; stored=$(python3 "$HERE/tools.py" influx-count "$INFLUX_PORT" "$dev") ;;
        esac
        echo "bench=single round=$ROUND peer=$peer threads=$t conns=$c duration_s=$DURATION stored=$stored $res $REC_TAG" >>"$REC"
        log "single $peer t$t c$c: $(sed -n 's/.*rps=\([0-9.]*\).*/\1/p' <<<"$res") req/s, stored $stored"
    done
}

# ---- benchmark 2: batches of 1000 readings -----------------------------------

# batch_peer PEER TARGET: one run per BATCH_CONNS on a fresh device / series.
batch_peer() {
    local peer=$1 target=$2 conns base res stored arg dev
    for conns in $BATCH_CONNS; do
        base=$(($(now_ms) - 14 * DAY_MS))
        if [ "$target" = ss ]; then
            next_device; dev=$DEV_ID; arg=(--token "$DEV_TOKEN" --port "$SS_PORT")
        else
            dev="batch-$peer-c$conns"; arg=(--series "$dev" --port "$INFLUX_PORT")
        fi
        res=$(timeout 180 python3 "$HERE/batch_client.py" --target "$target" "${arg[@]}" \
            --base-ms "$base" --batches "$BATCHES" --size "$BATCH_SIZE" --conns "$conns" \
            --time-limit 30 2>"$WORK/batch-$ROUND-$peer-$conns.err" | sed -n 's/^RESULT //p') || true
        [ -s "$WORK/batch-$ROUND-$peer-$conns.err" ] && sed 's/^/  batch: /' "$WORK/batch-$ROUND-$peer-$conns.err" >&2
        [ -n "$res" ] || { log "batch client failed for $peer"; exit 1; }
        if [ "$target" = ss ]; then
            stored=$(ss_count)
        else
            sleep 0.5; stored=$(python3 "$HERE/tools.py" influx-count "$INFLUX_PORT" "$dev")
        fi
        echo "bench=batch round=$ROUND peer=$peer stored=$stored $res" >>"$REC"
        log "batch $peer c$conns: $(sed -n 's/.*readings_per_s=\([0-9]*\).*/\1/p' <<<"$res") readings/s, stored $stored"
    done
}

# ---- benchmark 3: memory per idle keep-alive connection ----------------------

# idle_peer PEER http|https PORT PATH PID...   (on a server fresh for it: memory
# freed by an earlier run would be reused and hide this one's cost)
idle_peer() {
    local peer=$1 proto=$2 port=$3 path=$4 res pidargs=() p tls=()
    shift 4
    for p in "$@"; do pidargs+=(--pid "$p"); done
    [ "$proto" = https ] && tls=(--tls)
    res=$(timeout 120 python3 "$HERE/idle_conns.py" --port "$port" --path "$path" "${tls[@]}" \
        --conns "$IDLE_CONNS" "${pidargs[@]}" --budget 60 | sed -n 's/^RESULT //p') || true
    [ -n "$res" ] || { log "idle_conns failed for $peer ($proto)"; exit 1; }
    echo "bench=idle peer=$peer $res" >>"$REC"
    log "idle $peer $proto: $(sed -n 's/.*bytes_per_conn=\([0-9]*\).*/\1/p' <<<"$res") bytes/connection"
}

idle_run() {
    start_ss ss-idle full 1
    idle_peer sensorspace http "$SS_PORT" /healthz "$SS_PID"
    stop_ss
    SS_HTTPS=127.0.0.1:0
    start_ss ss-idle-tls full 1
    SS_HTTPS=off
    idle_peer sensorspace https "$SS_HTTPS_PORT" /healthz "$SS_PID"
    stop_ss
    start_nginx nginx-idle 1
    idle_peer nginx-1 http "$NGX_PORT" /healthz $(pgrep -P "$NGX_PID")
    stop_nginx
    start_nginx nginx-idle-tls 1
    idle_peer nginx-1 https "$NGX_TLS_PORT" /healthz $(pgrep -P "$NGX_PID")
    stop_nginx
}

# ---- benchmark 5: TCP ingest, 4 connections streaming lines -----------------

# tcp_peer PEER: one run on a fresh device; tcp_client.c (compiled into the
# temp dir at start) waits for the ACK covering every line it sent.
tcp_peer() {
    local peer=$1 base res stored err=$WORK/tcp-$ROUND-$1.err
    base=$(($(now_ms) - 28 * DAY_MS))
    next_device
    res=$(timeout 120 "$WORK/tcp_client" "$SS_TCP_PORT" "$DEV_TOKEN" "$base" "$TCP_CONNS" "$TCP_LINES" 30 \
        2>"$err" | sed -n 's/^RESULT //p') || true
    [ -s "$err" ] && sed 's/^/  tcp: /' "$err" >&2
    [ -n "$res" ] || { log "tcp client failed for $peer"; exit 1; }
    stored=$(ss_count)
    echo "bench=tcp round=$ROUND peer=$peer stored=$stored $res $REC_TAG" >>"$REC"
    log "tcp $peer c$TCP_CONNS: $(sed -n 's/.*readings_per_s=\([0-9]*\).*/\1/p' <<<"$res") readings/s, stored $stored"
}

# build_baseline: BASE_BIN = the server of revision BASELINE, built apart.
build_baseline() {
    local dir=$WORK/baseline
    mkdir -p "$dir"
    git -C "$HERE/.." archive "$BASELINE" | tar -x -C "$dir" &&
        make -C "$dir" -j2 build/sensorspace >"$dir/build.log" 2>&1 || {
        log "cannot build baseline $BASELINE:"; tail -5 "$dir/build.log" >&2; exit 1; }
    BASE_BIN=$dir/build/sensorspace
    log "baseline $BASELINE built"
}

# baseline_run: benchmarks 1 and 5 on the baseline server, durability full,
# as sensorspace-full runs them: the A/B (report.py: new / baseline).
baseline_run() {
    local bin=$BIN quota=$QUOTA
    [ -n "$BASE_BIN" ] || return 0
    BIN=$BASE_BIN QUOTA=$BASELINE_QUOTA REC_TAG="rev=$BASELINE"
    start_ss "baseline-r$ROUND" full 16
    if want single; then single_peer baseline-full ss "http://127.0.0.1:$SS_PORT"; fi
    if want tcp; then tcp_peer baseline-full; fi
    stop_ss
    BIN=$bin QUOTA=$quota REC_TAG=""
}

# ---- benchmark 6: many devices on TCP, one reading a second each -------------

devices_run() {
    local res
    start_ss ss-devices full "$DEVICES"
    res=$(timeout $((DEVICES_SECONDS + 150)) python3 "$HERE/tcp_devices.py" --tcp-port "$SS_TCP_PORT" \
        --http-port "$SS_PORT" --admin "$SS_ADMIN" --devices "$SS_DIR/devices" --pid "$SS_PID" \
        --seconds "$DEVICES_SECONDS" 2>"$WORK/devices.err" | sed -n 's/^RESULT //p') || true
    [ -s "$WORK/devices.err" ] && sed 's/^/  devices: /' "$WORK/devices.err" | head -20 >&2
    stop_ss
    [ -n "$res" ] || { log "tcp_devices failed"; exit 1; }
    echo "bench=devices peer=sensorspace $res" >>"$REC"
    log "devices: $res"
}

# ---- benchmark 7: bytes on the wire per reading ------------------------------

# Twice, each on a fresh server (UDP usage is per org, so the servers'
# counts stay apart): readings with the device's ts, and without one (the
# server stamps them on arrival, as a device sending live readings may).
wire_run() {
    local flag
    for flag in "" --server-time; do
        SS_HTTPS=127.0.0.1:0
        start_ss "ss-wire${flag:+-server}" full 8
        SS_HTTPS=off
        timeout 300 python3 "$HERE/wire_bytes.py" --http-port "$SS_PORT" --https-port "$SS_HTTPS_PORT" \
            --tcp-port "$SS_TCP_PORT" --udp-port "$SS_UDP_PORT" --admin "$SS_ADMIN" \
            --devices "$SS_DIR/devices" --readings "$WIRE_READINGS" $flag 2>>"$WORK/wire.err" \
            | sed -n 's/^RESULT /bench=wire /p' >>"$REC" || true
        stop_ss
    done
    [ -s "$WORK/wire.err" ] && sed 's/^/  wire: /' "$WORK/wire.err" | sort | uniq -c >&2
    grep -q '^bench=wire' "$REC" || { log "wire_bytes failed"; exit 1; }
    log "wire: $(grep -c '^bench=wire' "$REC") scenarios measured"
}

# ---- benchmark 8: share of accounting and quota code, callgrind --------------

# One reading per request over keep-alive (batch_client.py with --size 1),
# server under callgrind with --durability normal, collection on only while
# the load runs; tools.py acct-share sums the accounting functions. Two runs:
# 1 connection (every commit holds one request) and 8 (a few per commit), so
# that instructions per request can be split into a per-request part and a
# per-commit part and told at the commit size benchmark 1 really had (under
# valgrind the store commits far more often than at full speed).
acct_one() {
    local conns=$1 out=$WORK/callgrind-acct-c$1.out res commits
    start_ss "ss-acct-c$conns" normal 1 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out"
    next_device
    callgrind_control -i on "$SS_PID" >/dev/null 2>&1
    res=$(timeout 300 python3 "$HERE/batch_client.py" --target ss --port "$SS_PORT" --token "$DEV_TOKEN" \
        --base-ms $(($(now_ms) - 35 * DAY_MS)) --batches "$ACCT_REQUESTS" --size 1 --conns "$conns" \
        --time-limit 240 | sed -n 's/^RESULT //p') || true
    callgrind_control -i off "$SS_PID" >/dev/null 2>&1
    commits=$(python3 "$HERE/tools.py" ss-commits "$SS_PORT")
    stop_ss
    [ -n "$res" ] || { log "accounting profile ($conns connections): client failed"; return 1; }
    echo "$out:$(sed -n 's/.* ok=\([0-9]*\).*/\1/p' <<<"$res"):${commits%% *}"
}

acct_run() {
    local a b g
    command -v valgrind >/dev/null || { log "no valgrind: accounting profile skipped"; return; }
    a=$(acct_one 1) && b=$(acct_one 8) || return
    g=$(python3 "$HERE/tools.py" single-group "$REC")
    python3 "$HERE/tools.py" acct-share "$b" "$a" --group "$g" --text "$WORK/profile-acct.txt" >>"$REC"
    log "accounting share: $(tail -1 "$REC")"
}

# ---- profiling (4) -----------------------------------------------------------

# When `perf stat -e instructions` works, perf record -g; else callgrind, with
# collection switched on only for the measured load (not for start-up's Argon2).
profile_workload() {
    local what=$1 out=$WORK/profile-$1.txt base
    base=$(($(now_ms) - 21 * DAY_MS))
    # grep without -q reads all its input: no SIGPIPE for perf under pipefail.
    if perf stat -e instructions true 2>&1 | grep '[0-9] *instructions' >/dev/null; then
        start_ss "prof-$what" full 4
        next_device
        perf record -g -o "$WORK/perf-$what.data" -p "$SS_PID" -- sleep 12 >/dev/null 2>&1 &
        local perf_pid=$!
        PIDS+=("$perf_pid")
        profile_load "$what" "$base" "$((DURATION))"
        wait "$perf_pid" || true
        stop_pid "$perf_pid"
        stop_ss
        { echo "perf record -g, $what workload, top symbols (self):"
          perf report -i "$WORK/perf-$what.data" --no-children --stdio 2>/dev/null \
            | grep -E '^ +[0-9]' | awk 'NR <= 30'; } >"$out"
    else
        command -v valgrind >/dev/null || { echo "no perf counters and no valgrind" >"$out"; return; }
        start_ss "prof-$what" full 4 valgrind --tool=callgrind --instr-atstart=no \
            --callgrind-out-file="$WORK/callgrind-$what.out"
        next_device
        callgrind_control -i on "$SS_PID" >/dev/null 2>&1
        profile_load "$what" "$base" 10
        callgrind_control -i off "$SS_PID" >/dev/null 2>&1
        stop_ss
        { echo "valgrind --tool=callgrind ($what workload under valgrind; perf has no"
          echo "hardware counters on this machine). Self cost, top functions:"
          callgrind_annotate "$WORK/callgrind-$what.out" 2>/dev/null | top_functions 30
          echo
          echo "Inclusive cost, top entries:"
          callgrind_annotate --inclusive=yes "$WORK/callgrind-$what.out" 2>/dev/null \
            | top_functions 40; } >"$out"
    fi
    log "profile written: $out"
}

# top_functions N: the first N function lines of callgrind_annotate, without
# the PROGRAM TOTALS line and without a function's second entry under another
# spelling of its file name (/abs/path/src/x.c and src/x.c).
# Reads all its input (no head): an early exit would SIGPIPE the writer and,
# with pipefail, end the run.
top_functions() {
    grep -E '^ *[0-9,]+ \(' | grep -v 'PROGRAM TOTALS' \
        | awk -v n="$1" '{ f = $0; sub(/^[^)]*\) +/, "", f); sub(/ .*/, "", f); sub(/^.*:/, "", f)
                       if (!seen[f]++ && shown < n) { print; shown++ } }'
}

profile_load() {
    local what=$1 base=$2 secs=$3
    case $what in
        single) wrk_run 1 64 "$secs" "http://127.0.0.1:$SS_PORT" "$WORK/wrk-prof.log" ss "$base" "$DEV_TOKEN" >/dev/null ;;
        batch) timeout 120 python3 "$HERE/batch_client.py" --target ss --port "$SS_PORT" \
            --token "$DEV_TOKEN" --base-ms "$base" --batches 200 --conns 4 --time-limit "$secs" >/dev/null ;;
        mqtt-q*) mqtt_profile_load "${what#mqtt-q}" "$secs" ;;
    esac
}

# ---- main --------------------------------------------------------------------

T0=$(date +%s)
read -r -a STAT0 < <(head -1 /proc/stat)
describe_machine
want() { [[ " $ONLY " == *" $1 "* ]]; }

# One round: every peer of benchmarks 1 and 2, each freshly started. The
# baseline runs right after sensorspace-full in odd rounds and right before
# it in even ones, so a drift in the machine's load favours neither side.
bench_round() {
    local durability workers
    if ((ROUND % 2 == 0)); then baseline_run; fi
    for durability in full normal; do
        start_ss "ss-$durability-r$ROUND" "$durability" 16
        want single && single_peer "sensorspace-$durability" ss "http://127.0.0.1:$SS_PORT"
        want batch && batch_peer "sensorspace-$durability" ss
        want tcp && tcp_peer "sensorspace-$durability"
        stop_ss
        if [ "$durability" = full ] && ((ROUND % 2 == 1)); then baseline_run; fi
    done
    if want single; then
        for workers in 1 auto; do
            start_nginx "nginx-$workers-r$ROUND" "$workers"
            single_peer "nginx-$workers" nginx "http://127.0.0.1:$NGX_PORT"
            stop_nginx
        done
    fi
    start_influx "influx-r$ROUND"
    want single && single_peer influxdb influx "http://127.0.0.1:$INFLUX_PORT"
    { want batch || want tcp; } && batch_peer influxdb influx
    stop_influx
}

if want tcp; then
    cc -O2 -o "$WORK/tcp_client" "$HERE/tcp_client.c" || { log "cannot compile tcp_client.c"; exit 1; }
fi
if want single || want tcp; then
    if [ -n "$BASELINE" ] && git -C "$HERE/.." cat-file -e "$BASELINE^{commit}" 2>/dev/null; then
        build_baseline
    elif [ -n "$BASELINE" ]; then
        log "baseline $BASELINE is not in this checkout: A/B skipped"
    fi
fi
if want single || want batch || want tcp; then
    for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
        log "round $ROUND of $ROUNDS"
        bench_round
    done
fi

want idle && idle_run
want devices && devices_run
want wire && wire_run
want acct && acct_run
want mqtt && mqtt_run
if want import; then
    for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do import_run; done
fi
want export && export_run
want live && live_run
want web && web_run

# CPU time stolen by the hypervisor and spent idle over the run: a noisy
# neighbour shows up here rather than as a mystery in the numbers.
read -r -a STAT1 < <(head -1 /proc/stat)
python3 - "${STAT0[*]}" "${STAT1[*]}" >>"$WORK/machine.txt" <<'EOF'
import sys
a, b = ([int(x) for x in s.split()[1:9]] for s in sys.argv[1:3])
d = [y - x for x, y in zip(a, b)]
total = sum(d) or 1
print(f"cpu during the run: busy {100 * (total - d[3] - d[4] - d[7]) / total:.0f}%, "
      f"idle {100 * (d[3] + d[4]) / total:.0f}%, stolen by the hypervisor {100 * d[7] / total:.1f}%")
EOF

report() {
    python3 "$HERE/report.py" --records "$REC" --machine "$WORK/machine.txt" \
        --profiles "$WORK" --settings "$SETTINGS" --batch-conns "$BATCH_CONNS" --rounds "$ROUNDS" \
        --runtime-s $(($(date +%s) - T0)) --out "$RESULTS_MD" "$@"
}

# The measurements are written before profiling, so a profiler's failure
# cannot cost them.
report >/dev/null
MISSED=$(python3 "$HERE/report.py" --records "$REC" --missed)
if [ "$PROFILE" = 1 ] || { [ "$PROFILE" = auto ] && [ -n "$MISSED" ]; }; then
    log "targets missed: ${MISSED:-none}; profiling"
    if want single; then profile_workload single || log "profiling (single) failed"; fi
    if want batch; then profile_workload batch || log "profiling (batch) failed"; fi
    if want mqtt; then mqtt_profile "$MISSED"; fi
fi
report
log "done in $(($(date +%s) - T0)) s; report: $RESULTS_MD"
