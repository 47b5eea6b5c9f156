# bench/export.sh — benchmark 10: export rate, SensorSpace against
# InfluxDB 1.6 holding the same readings, in the same run. Sourced by
# run.sh, which runs `export_run` when BENCH_ONLY names export; it uses
# run.sh's log, start_ss / stop_ss, start_influx / stop_influx, REC and
# WORK. See bench/README.md, benchmark 10.
#
#   BENCH_ONLY=export BENCH_RESULTS=/tmp/r.md bash bench/run.sh $PWD/build/sensorspace

if [ "${BENCH_QUICK:-0}" = 1 ]; then
    : "${BENCH_EXPORT_DEVICES:=20}" "${BENCH_EXPORT_LINES:=500}" "${BENCH_EXPORT_ROUNDS:=1}"
fi
EXPORT_DEVICES=${BENCH_EXPORT_DEVICES:-100}  # devices, 10 channels each
EXPORT_LINES=${BENCH_EXPORT_LINES:-1000}     # timestamps per device: readings = devices x 10 x lines
EXPORT_ROUNDS=${BENCH_EXPORT_ROUNDS:-3}      # every export of both peers, this many times; best counts

# export_time ARGS...: one timed export, its record (with the round) to REC.
export_time() {
    local res
    res=$(python3 "$HERE/export_tools.py" "$@" --work "$WORK") || { log "export run failed: $*"; return 1; }
    echo "round=$ROUND $res" >>"$REC"
    log "export: $res"
}

export_run() {
    local want base
    want=$((EXPORT_DEVICES * 10 * EXPORT_LINES))
    base=$(($(now_ms) - 30 * DAY_MS))
    start_ss ss-export normal "$EXPORT_DEVICES"
    start_influx influx-export
    log "export: loading $want readings into both"
    python3 "$HERE/export_tools.py" load --ss-port "$SS_PORT" --influx-port "$INFLUX_PORT" \
        --devices "$SS_DIR/devices" --n-devices "$EXPORT_DEVICES" --lines "$EXPORT_LINES" --base-ms "$base" ||
        { log "export: loading failed"; stop_influx; stop_ss; return 1; }
    # The peers take turns, so a drift in the machine's load favours neither.
    for ((ROUND = 1; ROUND <= EXPORT_ROUNDS; ROUND++)); do
        export_time time-influx --port "$INFLUX_PORT" --mode http --want "$want" || true
        export_time time-ss --port "$SS_PORT" --org "$SS_ORG" --token "$SS_ADMIN" --format csv --want "$want" || true
        if command -v influx >/dev/null; then
            export_time time-influx --port "$INFLUX_PORT" --mode cli --want "$want" || true
        fi
        export_time time-ss --port "$SS_PORT" --org "$SS_ORG" --token "$SS_ADMIN" --format ndjson --want "$want" || true
        export_time time-ss --port "$SS_PORT" --org "$SS_ORG" --token "$SS_ADMIN" --format csv --gzip --want "$want" || true
    done
    stop_influx
    stop_ss
}
