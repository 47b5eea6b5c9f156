#!/usr/bin/env bash
# Builds the line-format fuzz target (fuzz/fuzz_line.c) with libFuzzer,
# AddressSanitizer and UndefinedBehaviorSanitizer, and runs it for a bounded
# time over the seed corpus in fuzz/corpus/line/.
#
#   bash fuzz/run.sh [SECONDS]      default 30
#
# New inputs that reach new code go to build/fuzz/corpus-line/ (the seed
# corpus stays as committed); a crash is written to build/fuzz/ as
# crash-<sha1> and the script exits non-zero. Reproduce one with
#   build/fuzz/fuzz_line build/fuzz/crash-<sha1>
set -euo pipefail

cd "$(dirname "$0")/.."
secs="${1:-30}"
case "$secs" in
  ''|*[!0-9]*) echo "usage: fuzz/run.sh [SECONDS]" >&2; exit 2 ;;
esac

# clang with libFuzzer's runtime: installed by scripts/deps.sh only if missing.
if ! command -v clang >/dev/null 2>&1 ||
   ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n){(void)d;(void)n;return 0;}' |
     clang -x c -fsanitize=fuzzer - -o /dev/null 2>/dev/null; then
  bash scripts/deps.sh --fuzz
fi

out=build/fuzz
mkdir -p "$out/corpus-line"
# The parser and what it links, nothing else: no libuv, no store.
clang -std=c17 -g -O1 -D_GNU_SOURCE -Isrc -Wall -Wextra -Werror \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  fuzz/fuzz_line.c src/ingest/parse_line.c src/ingest/reading.c src/core/err.c \
  -lm -o "$out/fuzz_line"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# -max_len: a little over two 64 KiB lines, enough to cross every limit.
"$out/fuzz_line" -max_total_time="$secs" -max_len=140000 -timeout=10 \
  -artifact_prefix="$out/" "$out/corpus-line" fuzz/corpus/line
