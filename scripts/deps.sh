#!/usr/bin/env bash
# Installs the Debian packages SensorSpace builds, tests and benchmarks with.
# Called by `make` when a pkg-config module or test tool is missing; safe to
# run again (apt-get skips what is already installed). --bench and --fuzz
# add what `make bench` and fuzz/run.sh need.
set -euo pipefail

BUILD_PKGS="build-essential pkg-config libuv1-dev libssl-dev libhttp-parser-dev
  libjansson-dev libsqlite3-dev libsodium-dev libcmocka-dev zlib1g-dev"
TEST_PKGS="python3 python3-pytest python3-pytest-xdist python3-requests python3-prometheus-client
  python3-paho-mqtt mosquitto-clients curl openssl iproute2"
BENCH_PKGS="wrk nginx-light influxdb influxdb-client mosquitto"
# fuzz/run.sh: clang and its sanitizer/libFuzzer runtimes (a Recommends of
# clang, so named here: apt runs with --no-install-recommends).
FUZZ_PKGS="clang libclang-rt-dev"

want="$BUILD_PKGS $TEST_PKGS"
[ "${1:-}" = "--bench" ] && want="$want $BENCH_PKGS"
[ "${1:-}" = "--fuzz" ] && want="$want $FUZZ_PKGS"

missing=""
for p in $want; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
    missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "deps: installing$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
