#!/usr/bin/env bash
# Installs the Debian packages SensorSpace builds, tests and benchmarks with.
# Called by `make` when a pkg-config module or test tool is missing; safe to
# run again (apt-get skips what is already installed). --bench and --fuzz
# add what `make bench` and fuzz/run.sh need. The npm packages (the web
# app's charts, the browser tests' driver) are the Makefile's: `npm ci`
# from package-lock.json once Node.js is here.
set -euo pipefail

BUILD_PKGS="build-essential pkg-config libuv1-dev libssl-dev libhttp-parser-dev
  libjansson-dev libsqlite3-dev libsodium-dev libcmocka-dev zlib1g-dev"
TEST_PKGS="python3 python3-pytest python3-pytest-xdist python3-requests python3-prometheus-client
  python3-paho-mqtt mosquitto-clients curl openssl iproute2 chromium"
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
# Node.js and npm build the web app into the binary. A machine that has
# them from elsewhere (a newer Node.js with its own npm) keeps them: Debian's
# npm would conflict with it.
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
[ -z "$missing" ] && exit 0

echo "deps: installing$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
