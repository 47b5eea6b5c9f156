# bench/web.sh — benchmark 13: the web app's dashboards in the browser
# (bench/web_bench.mjs: first paint of 10 line charts over 1,000,000
# readings a channel, commit-to-chart latency at 100 readings/s, the app's
# gzipped size). Sourced by run.sh, which runs `web_run` when BENCH_ONLY
# names web; it uses run.sh's BIN, log, REC and ROUND. The bench starts its
# own server (port 0, a data dir of its own) as the browser tests do.
#
#   BENCH_ONLY=web BENCH_RESULTS=/tmp/r.md bash bench/run.sh $PWD/build/sensorspace

if [ "${BENCH_QUICK:-0}" = 1 ]; then
    : "${BENCH_WEB_READINGS:=50000}" "${BENCH_WEB_SECONDS:=5}" "${BENCH_WEB_LOADS:=2}"
fi
export BENCH_WEB_READINGS BENCH_WEB_SECONDS BENCH_WEB_LOADS BENCH_WEB_RATE

web_run() {
    local res
    if ! command -v node >/dev/null || [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
        log "web: node or chromium missing; skipped"
        return 0
    fi
    if res=$(SENSORSPACE_BIN="$BIN" node "$HERE/web_bench.mjs"); then
        echo "bench=web round=1 $res" >>"$REC"
        log "web: $res"
    else
        log "web bench failed"
    fi
}
