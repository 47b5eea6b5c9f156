# SensorSpace — build, run, test, bench.
#   make            build build/sensorspace (installs missing packages first)
#   make run        build and start on the embedded store in ./data
#   make test       unit, end-to-end and browser tests, then the same under ASan+UBSan
#   make bench      benchmarks against nginx and influxdb (bench/README.md)

CC      ?= cc
PKGS    := libuv openssl jansson sqlite3 libsodium zlib
BUILD   ?= build
SAN     ?= 0

DEPS_OK   := $(BUILD)/.deps-ok
PKG_FLAGS := $(BUILD)/pkg-flags

# The packages' flags are read when a recipe runs, never when this file is
# parsed: on a new machine the packages are installed only by then. The
# DEPS_OK step writes them to $(PKG_FLAGS) (line 1: cflags, line 2: libs).
PKG_CFLAGS = $(shell sed -n 1p $(PKG_FLAGS) 2>/dev/null)
PKG_LIBS   = $(shell sed -n 2p $(PKG_FLAGS) 2>/dev/null)

CFLAGS_COMMON = -std=c17 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
                -Wno-missing-field-initializers -D_GNU_SOURCE -Isrc -g $(PKG_CFLAGS)
LDLIBS_COMMON = $(PKG_LIBS) -lhttp_parser -lpthread -lm

ifeq ($(SAN),1)
  OPT := -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
else
  OPT := -O2
endif

CFLAGS  += $(CFLAGS_COMMON) $(OPT)
LDFLAGS += $(OPT)

LIB_SRCS  := $(filter-out src/main.c,$(wildcard src/*/*.c))
# The web app's files, built into the binary as one generated source.
WEB_FILES := $(shell find web -type f -not -name README.md 2>/dev/null)
WEB_GEN   := $(BUILD)/gen/web_assets.c
NODE_OK   := node_modules/.package-lock.json
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(WEB_GEN:.c=.o)
MAIN_OBJ  := $(BUILD)/src/main.o
LIB       := $(BUILD)/libsensorspace.a
BIN       := $(BUILD)/sensorspace
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all run test test-once layers unit e2e web bench clean deps fuzz

all: $(BIN)

# Every object waits for the packages; scripts/deps.sh installs what is missing.
$(DEPS_OK): scripts/deps.sh Makefile
	@mkdir -p $(@D)
	@pkg-config --exists $(PKGS) && test -f /usr/include/http_parser.h && \
	  test -f /usr/include/cmocka.h && command -v mosquitto_pub >/dev/null && command -v npm >/dev/null && \
	  test -x /usr/bin/chromium && /usr/bin/python3 -c 'import pytest, requests, xdist, paho.mqtt' \
	  2>/dev/null || bash scripts/deps.sh
	@{ pkg-config --cflags $(PKGS) && pkg-config --libs $(PKGS); } > $(PKG_FLAGS).tmp
	@mv $(PKG_FLAGS).tmp $(PKG_FLAGS)
	@touch $@

deps:
	bash scripts/deps.sh

$(BUILD)/%.o: %.c | $(DEPS_OK)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The pinned npm packages (package-lock.json): uPlot for the binary,
# playwright-core and axe-core for the browser tests.
$(NODE_OK): package.json package-lock.json | $(DEPS_OK)
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(WEB_GEN): scripts/web-embed.mjs $(WEB_FILES) $(NODE_OK)
	@mkdir -p $(@D)
	node scripts/web-embed.mjs $@

$(WEB_GEN:.c=.o): $(WEB_GEN)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(MAIN_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_COMMON)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS_COMMON) -lcmocka

run: $(BIN)
	$(BIN) serve --data-dir ./data

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# The end-to-end tests run E2E_JOBS at a time (each test's servers are its
# own: port 0, a data dir of their own; most of a test's time is waiting on
# sockets and timers, so more workers than cores pay), a test file per
# worker so module fixtures start once; then the tests marked serial, which
# measure time or memory and need the machine to themselves, one at a time.
# A failure in either pass fails the run.
E2E_JOBS ?= 4
E2E = SENSORSPACE_BIN=$(abspath $(BIN)) /usr/bin/python3 -m pytest -q -x
e2e: $(BIN)
	$(E2E) -n $(E2E_JOBS) --dist loadfile -m 'not serial' tests/e2e
	$(E2E) -m serial tests/e2e

# The browser tests: playwright-core driving Debian's chromium against the
# real server (each test file starts its own, port 0); screenshots of each
# page land in $(BUILD)/web-artifacts.
WEB_TESTS := $(wildcard tests/web/*.test.mjs)
web: $(BIN) $(NODE_OK)
	SENSORSPACE_BIN=$(abspath $(BIN)) WEB_ARTIFACTS=$(abspath $(BUILD))/web-artifacts \
	  node --test $(WEB_TESTS)

# The folders of src/ are layers (docs/architecture.md): an include that
# goes upward or closes a cycle fails the run before anything is built.
layers:
	/usr/bin/python3 scripts/check-layers.py src

test-once: layers unit e2e web

# The suite runs twice: an optimised build, then one under AddressSanitizer
# and UndefinedBehaviorSanitizer (ASAN_OPTIONS make any leak fail the run).
test:
	$(MAKE) test-once
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(MAKE) test-once BUILD=build/asan SAN=1

bench: $(BIN)
	bash scripts/deps.sh --bench
	bash bench/run.sh $(abspath $(BIN))

clean:
	rm -rf build

-include $(LIB_OBJS:.o=.d) $(MAIN_OBJ:.o=.d) $(UNIT_BINS:$(BUILD)/tests/%=$(BUILD)/tests/unit/%.d)
