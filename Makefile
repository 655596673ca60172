# Every target installs what it needs: a fresh clone needs only python3 and, for the
# Prometheus/promtool and browser tests, root access to apt-get (as on CI).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: demo test test-fast bench bench-quick soak system-deps clean

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

bench: $(STAMP)
	$(MAKE) -C bench all

bench-quick: $(STAMP)
	$(MAKE) -C bench quick

soak: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/soak --run-soak

clean:
	rm -rf $(VENV) .venv-bench build *.egg-info demo-output
