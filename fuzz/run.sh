#!/usr/bin/env bash
# Builds the fuzz targets with libFuzzer, AddressSanitizer and
# UndefinedBehaviorSanitizer, and runs each for a bounded time over its
# seed corpus:
#   line   fuzz/fuzz_line.c, the line format     (fuzz/corpus/line/)
#   mqtt   fuzz/fuzz_mqtt.c, the MQTT codec       (fuzz/corpus/mqtt/)
#
#   bash fuzz/run.sh [SECONDS] [line|mqtt|all]      default 30, all
#
# SECONDS is per target. New inputs that reach new code go to
# build/fuzz/corpus-<target>/ (the seed corpora stay as committed); a crash
# is written to build/fuzz/ as crash-<sha1> and the script exits non-zero.
# Reproduce one with
#   build/fuzz/fuzz_<target> build/fuzz/crash-<sha1>
set -euo pipefail

cd "$(dirname "$0")/.."
secs="${1:-30}"
which="${2:-all}"
case "$secs" in
  ''|*[!0-9]*) echo "usage: fuzz/run.sh [SECONDS] [line|mqtt|all]" >&2; exit 2 ;;
esac
case "$which" in
  line|mqtt|all) ;;
  *) echo "usage: fuzz/run.sh [SECONDS] [line|mqtt|all]" >&2; exit 2 ;;
esac

# clang with libFuzzer's runtime: installed by scripts/deps.sh only if missing.
if ! command -v clang >/dev/null 2>&1 ||
   ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n){(void)d;(void)n;return 0;}' |
     clang -x c -fsanitize=fuzzer - -o /dev/null 2>/dev/null; then
  bash scripts/deps.sh --fuzz
fi

out=build/fuzz
mkdir -p "$out"
CLANG=(clang -std=c17 -g -O1 -D_GNU_SOURCE -Isrc -Wall -Wextra -Werror
       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all)

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

# Each target links its parser and what that needs, nothing else: no
# libuv, no store.
run_line() {
  mkdir -p "$out/corpus-line"
  "${CLANG[@]}" fuzz/fuzz_line.c src/ingest/parse_line.c src/core/reading.c src/core/err.c \
    -lm -o "$out/fuzz_line"
  # -max_len: a little over two 64 KiB lines, enough to cross every limit.
  "$out/fuzz_line" -max_total_time="$secs" -max_len=140000 -timeout=10 \
    -artifact_prefix="$out/" "$out/corpus-line" fuzz/corpus/line
}

run_mqtt() {
  mkdir -p "$out/corpus-mqtt"
  "${CLANG[@]}" fuzz/fuzz_mqtt.c src/mqtt/codec.c src/mqtt/codec_props.c src/core/buf.c \
    src/core/err.c -o "$out/fuzz_mqtt"
  # -max_len: packets of a few KiB reach every field and property; the
  # size limits are the frame's, checked from the header alone.
  "$out/fuzz_mqtt" -max_total_time="$secs" -max_len=4096 -timeout=10 \
    -artifact_prefix="$out/" "$out/corpus-mqtt" fuzz/corpus/mqtt
}

case "$which" in
  line) run_line ;;
  mqtt) run_mqtt ;;
  all) run_line; run_mqtt ;;
esac
