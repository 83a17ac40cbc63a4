# proxytrace: every target sets up what it needs on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
DEMO_CAPTURE ?= captures/mixed.pcapng
# The lab answers every name with private addresses and uses its own CA: tell the analyzer so.
DEMO_FLAGS ?= --expect captures/lab-expect.toml --watch goproxy.example --watch vanity.example
# Debian packages the tests and the lab use.
APT_PACKAGES := tcpdump tshark strace dnsmasq bpftrace tinyproxy iproute2 ethtool procps chromium curl git nodejs
APT_BINARIES := tcpdump tshark strace dnsmasq bpftrace tinyproxy ip ethtool ps chromium curl git node

.PHONY: install sysdeps demo test test-fast lint typecheck bench bench-live lab filters clean

$(BIN)/proxytrace: pyproject.toml analyzer/source/_fastloop.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/proxytrace

# Installs missing system tools with apt when running as root; otherwise lists what is missing.
sysdeps:
	@missing=""; for b in $(APT_BINARIES); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	if [ -z "$$missing" ]; then echo "system tools present"; \
	elif [ "$$(id -u)" = 0 ]; then \
		echo "installing system packages (missing:$$missing)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	else echo "missing system tools:$$missing (run 'sudo make sysdeps'); tests that need them will skip"; fi

demo: install
	@echo "== go, node and curl at once (captures/mixed.pcapng): who contacted which Go host =="
	$(BIN)/proxytrace analyze $(DEMO_FLAGS) $(DEMO_CAPTURE)
	@echo "== a resolver that rewrites proxy.golang.org (captures/dns-rewrite.pcapng) =="
	$(BIN)/proxytrace analyze $(DEMO_FLAGS) captures/dns-rewrite.pcapng

lint: install
	$(BIN)/ruff check analyzer tests bench
	$(BIN)/mypy analyzer

test: sysdeps install lint
	$(BIN)/pytest -q -p no:cacheprovider

test-fast: install
	$(BIN)/pytest -q -m "not lab" -p no:cacheprovider

bench: sysdeps install
	$(PY) -m bench.run
	$(MAKE) --no-print-directory bench-live

# What live attribution costs (needs root: the lab's namespaces, capture, bpftrace).
bench-live: sysdeps install
	$(PY) bench/live_overhead.py

lab: sysdeps install
	$(PY) -m tests.lab.record

filters: install
	$(BIN)/proxytrace filters export --out filters

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info build
	rm -f analyzer/source/_fastloop*.so
