# Every target installs what it needs: a fresh clone needs only python3 and, for the
# Prometheus/promtool and browser tests, root access to apt-get (as on CI).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: demo test test-fast bench bench-quick bench-soak soak system-deps clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

# Debian packages used by the tests that run a real Prometheus, promtool, amtool and Chromium.
system-deps:
	@missing=""; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v amtool >/dev/null || missing="$$missing prometheus-alertmanager"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: $(STAMP)
	$(BIN)/janus demo

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -x -p no:cacheprovider -m "not kafka and not prometheus and not browser"

# Benchmark peers (River, Alibi Detect) live in their own environment, never in Janus's
# dependencies. They pin against each other: alibi-detect 0.13.0 needs numpy < 2 and river >= 0.24
# needs numpy >= 2, so river stays at 0.23.0 (an unpinned install backtracks into old releases).
BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

$(BENCH_STAMP): pyproject.toml
	test -x $(BENCH_VENV)/bin/python || $(PY) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q -e . 'alibi-detect==0.13.0' 'numpy<2' 'river==0.23.0' matplotlib
	touch $(BENCH_STAMP)

# Full run (~30 min on 2 cores; the realistic-log part is the longest), one process: bench/results.json, bench/*.png, BENCHMARKS.md
# (which also reports bench/soak.json when `make bench-soak` has written it).
bench: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/run.py

# Few runs (under 2 min), for development: bench/quick/ (results.json, BENCHMARKS.md, plots).
bench-quick: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/run.py --quick

# Backtest RSS and throughput at 1M and 5M records (~7 min here; not in `make bench`): bench/soak.json.
bench-soak: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python bench/throughput.py --backtest-records 1000000 5000000 --serve-records 30000 --out bench/soak.json

# The long reliability runs (RELIABILITY.md): the issue's sizes for tests/test_reliability.py, and
# 5,000,000 records through `janus serve` (tests/soak). Figures go to soak-output/.
soak: $(STAMP)
	mkdir -p soak-output
	JANUS_CARDINALITY_N=1000000 JANUS_CRASH_RECORDS=30000 JANUS_CRASH_KILLS=20 JANUS_OUTAGE_S=30 \
	JANUS_OUTAGE_RECORDS=20000 JANUS_SOAK_SMALL=200000 JANUS_RELIABILITY_REPORT=soak-output/reliability.jsonl \
	$(BIN)/python -m pytest -q -s -p no:cacheprovider tests/test_reliability.py tests/soak --run-soak

clean:
	rm -rf $(VENV) .venv-bench build *.egg-info demo-output soak-output
