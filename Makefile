# Everything a fresh Debian machine needs is installed by these targets.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: test demo lint install system-deps bench bench-latency clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,fast,charts,cluster]'
	touch $(STAMP)

install: $(STAMP)

# NSD serves the test zones, Unbound validates DNSSEC in front of it (zones signed with ldnsutils);
# dnsperf is the benchmark's reference; headless Chromium renders the published page, with
# fonts-noto-cjk for its Japanese text (without it every kana is a box). Installed when missing
# and root.
system-deps:
	@if ! command -v nsd >/dev/null 2>&1 || ! command -v dnsperf >/dev/null 2>&1 \
	  || ! [ -x /usr/sbin/unbound ] || ! command -v ldns-signzone >/dev/null 2>&1 \
	  || ! command -v chromium >/dev/null 2>&1 || ! [ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nsd dnsperf unbound ldnsutils chromium fonts-noto-cjk >/dev/null; \
	  else \
	    echo "test tools missing: run 'sudo apt-get install nsd dnsperf unbound ldnsutils chromium fonts-noto-cjk'" >&2; exit 1; \
	  fi; \
	fi

test: install system-deps
	$(BIN)/ruff check mailauth_survey tests benchmarks
	$(BIN)/pytest -q

lint: install
	$(BIN)/ruff check mailauth_survey tests benchmarks

demo: install
	$(BIN)/mailauth-survey demo --out results/demo

bench: install system-deps
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/run.py --workers 2

# The scan through dnsdist (latency, loss, SERVFAIL, lame domains) against NSD directly.
bench-latency: install system-deps
	@command -v dnsdist >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq dnsdist >/dev/null; } \
	  || { echo "dnsdist missing: run 'sudo apt-get install dnsdist'" >&2; exit 1; }
	$(BIN)/pip install -q -e '.[bench]'
	$(BIN)/python benchmarks/run.py --latency

clean:
	rm -rf $(VENV) .pytest_cache
