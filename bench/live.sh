# bench/live.sh — benchmark 12: the live stream's latency, commit to
# Server-Sent Event, with BENCH_LIVE_CLIENTS streams open and
# BENCH_LIVE_RATE readings/s arriving over HTTP (bench/live_load.py). Sourced
# by run.sh, which runs `live_run` when BENCH_ONLY names live; it uses
# run.sh's log, start_ss / stop_ss, next_device, REC and ROUND.
#
#   BENCH_ONLY=live BENCH_RESULTS=/tmp/r.md bash bench/run.sh $PWD/build/sensorspace

if [ "${BENCH_QUICK:-0}" = 1 ]; then
    : "${BENCH_LIVE_SECONDS:=3}" "${BENCH_LIVE_ROUNDS:=1}"
fi
LIVE_CLIENTS=${BENCH_LIVE_CLIENTS:-100}   # SSE streams open in the bench org
LIVE_RATE=${BENCH_LIVE_RATE:-1000}        # readings/s, each of its own ts (one event each)
LIVE_PER_REQUEST=${BENCH_LIVE_PER_REQUEST:-10}  # readings per POST /api/v1/data
LIVE_SECONDS=${BENCH_LIVE_SECONDS:-10}    # sending time of a run
LIVE_ROUNDS=${BENCH_LIVE_ROUNDS:-2}       # runs, each on a freshly started server

live_run() {
    local round res
    for ((round = 1; round <= LIVE_ROUNDS; round++)); do
        start_ss "live-r$round" full 1
        next_device
        if res=$(python3 "$HERE/live_load.py" "$SS_PORT" --token "$SS_ADMIN" --org "$SS_ORG" \
                --device-token "$DEV_TOKEN" --clients "$LIVE_CLIENTS" --rate "$LIVE_RATE" \
                --per-request "$LIVE_PER_REQUEST" --seconds "$LIVE_SECONDS"); then
            echo "bench=live peer=sensorspace-full round=$round $res" >>"$REC"
            log "live round $round: $res"
        else
            log "live round $round failed"
        fi
        stop_ss
    done
}
