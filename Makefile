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
# clang, libbpf-dev and bpftool build the ebpf tier's kernel program ahead of time (see below).
APT_PACKAGES := tcpdump tshark strace dnsmasq bpftrace tinyproxy iproute2 ethtool procps chromium curl git nodejs dante-server openssh-server openssh-client valgrind time openssl clang libbpf-dev bpftool
APT_BINARIES := tcpdump tshark strace dnsmasq bpftrace tinyproxy ip ethtool ps chromium curl git node danted sshd ssh valgrind /usr/bin/time openssl clang /usr/sbin/bpftool
# packages that install no program: checked by a file they install
APT_FILES := /usr/include/bpf/libbpf.h

# The ebpf tier's kernel program compiled ahead of time as a CO-RE object, with its libbpf
# loader: bpftrace would compile the same program with LLVM at every start (most of a second).
# vmlinux.h comes from the running kernel's BTF; the object relocates itself on other kernels.
BPF_SRC := analyzer/attribution/bpf
BPF_BUILD := $(BPF_SRC)/build
EBPF_LOADER := $(BPF_BUILD)/proxytrace-ebpf
KERNEL_BTF := /sys/kernel/btf/vmlinux
BPFTOOL ?= $(shell command -v bpftool 2>/dev/null || echo /usr/sbin/bpftool)
BPF_CLANG ?= clang

# Real Go tools for the lab (gopls, govulncheck), built at pinned versions with the installed Go.
HOST_GO ?= /usr/local/go/bin/go
LAB_TOOLS := .lab-tools
LAB_TOOLS_BIN := $(LAB_TOOLS)/bin
LAB_GOPLS := golang.org/x/tools/gopls@v0.23.0
LAB_GOVULNCHECK := golang.org/x/vuln/cmd/govulncheck@v1.9.0
# Only the registry settings come from the machine (its environment and go/env file, read by its
# go); every other Go setting is explicit, caches and HOME inside $(LAB_TOOLS).
LAB_TOOLS_REGISTRY := GOPROXY GOSUMDB GONOSUMDB GOPRIVATE GONOPROXY GOINSECURE

.PHONY: ebpf-loader ebpf-loader-if-possible install sysdeps demo test test-fast lint typecheck bench bench-live lab lab-tools lab-tools-if-possible filters clean

$(BIN)/proxytrace: pyproject.toml analyzer/events/builtin/_fastloop.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# Bytecode compiled ahead (as an installed wheel has it): with PYTHONDONTWRITEBYTECODE set, an
# editable install would otherwise compile every module at every start (about 50 ms).
install: $(BIN)/proxytrace ebpf-loader-if-possible
	@$(PY) -m compileall -q analyzer >/dev/null

$(BPF_BUILD)/vmlinux.h:
	mkdir -p $(BPF_BUILD)
	$(BPFTOOL) btf dump file $(KERNEL_BTF) format c > $@.tmp && mv $@.tmp $@

# -g gives the object the BTF its CO-RE relocations need; `bpftool gen object` drops the DWARF.
$(BPF_BUILD)/tracer.o: $(BPF_SRC)/tracer.bpf.c $(BPF_SRC)/tracer.h $(BPF_BUILD)/vmlinux.h
	$(BPF_CLANG) -g -O2 -Wall -target bpf -I$(BPF_BUILD) -I$(BPF_SRC) -c $< -o $(BPF_BUILD)/tracer.debug.o
	$(BPFTOOL) gen object $@ $(BPF_BUILD)/tracer.debug.o

$(BPF_BUILD)/tracer.skel.h: $(BPF_BUILD)/tracer.o
	$(BPFTOOL) gen skeleton $< name tracer_bpf > $@.tmp && mv $@.tmp $@

$(EBPF_LOADER): $(BPF_SRC)/loader.c $(BPF_SRC)/tracer.h $(BPF_BUILD)/tracer.skel.h
	$(BPF_CLANG) -O2 -Wall -Wextra -I$(BPF_BUILD) -I$(BPF_SRC) $< -o $@ -lbpf

# Only the kernel types the object uses (2 KB, not 5 MB: libbpf reads it at every start), for
# the kernel it was cut from; the loader reads the full BTF on any other (loader.c).
$(BPF_BUILD)/vmlinux.min.btf: $(BPF_BUILD)/tracer.o
	$(BPFTOOL) gen min_core_btf $(KERNEL_BTF) $@.tmp $< && mv $@.tmp $@
	printf '%s %s\n' "$$(uname -r)" "$$(uname -v)" > $(BPF_BUILD)/kernel.id

ebpf-loader: $(EBPF_LOADER) $(BPF_BUILD)/vmlinux.min.btf

# Without the compiler, libbpf or the kernel's BTF the ebpf tier runs bpftrace instead.
ebpf-loader-if-possible:
	@if command -v $(BPF_CLANG) >/dev/null && [ -x $(BPFTOOL) ] && [ -e /usr/include/bpf/libbpf.h ] && [ -e $(KERNEL_BTF) ]; then \
		$(MAKE) --no-print-directory ebpf-loader || echo "ebpf loader not built: the ebpf tier will use bpftrace"; \
	else echo "ebpf loader not built (needs clang, bpftool, libbpf-dev and $(KERNEL_BTF)): the ebpf tier will use bpftrace"; fi

# Installs missing system tools with apt when running as root; otherwise lists what is missing.
sysdeps:
	@missing=""; for b in $(APT_BINARIES); do command -v $$b >/dev/null 2>&1 || missing="$$missing $$b"; done; \
	for f in $(APT_FILES); do [ -e $$f ] || missing="$$missing $$f"; done; \
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
	@echo "== the real gopls, shell GOPROXY=direct: its GOPROXY=off go mod tidy still asks sum.golang.org (captures/editor-gosum-missing.pcapng) =="
	$(BIN)/proxytrace analyze $(DEMO_FLAGS) --keylog captures/editor-gosum-missing.keylog captures/editor-gosum-missing.pcapng

lint: install
	$(BIN)/ruff check analyzer tests bench
	$(BIN)/mypy analyzer

# A pin file per tool version: a new pin, or a missing binary, rebuilds; otherwise a no-op.
define LAB_TOOL_BUILD
	@test -x $(HOST_GO) || { echo "cannot build $(1): $(HOST_GO) is missing"; exit 1; }
	mkdir -p $(LAB_TOOLS)/home
	registry=(); for v in $(LAB_TOOLS_REGISTRY); do val=$$($(HOST_GO) env $$v); [ -n "$$val" ] && registry+=("$$v=$$val"); done; \
	env -i PATH=$(dir $(HOST_GO)):/usr/bin:/bin HOME=$(CURDIR)/$(LAB_TOOLS)/home GOENV=off \
		GOTOOLCHAIN=local GOFLAGS=-modcacherw CGO_ENABLED=0 GOBIN=$(CURDIR)/$(LAB_TOOLS_BIN) \
		GOMODCACHE=$(CURDIR)/$(LAB_TOOLS)/gomodcache GOCACHE=$(CURDIR)/$(LAB_TOOLS)/gocache \
		"$${registry[@]}" $(HOST_GO) install $(1)
	touch $@
endef

$(LAB_TOOLS)/pins/%:
	mkdir -p $(LAB_TOOLS)/pins
	touch $@

$(LAB_TOOLS_BIN)/gopls: $(LAB_TOOLS)/pins/$(subst /,+,$(LAB_GOPLS))
	$(call LAB_TOOL_BUILD,$(LAB_GOPLS))

$(LAB_TOOLS_BIN)/govulncheck: $(LAB_TOOLS)/pins/$(subst /,+,$(LAB_GOVULNCHECK))
	$(call LAB_TOOL_BUILD,$(LAB_GOVULNCHECK))

lab-tools: $(LAB_TOOLS_BIN)/gopls $(LAB_TOOLS_BIN)/govulncheck

# `make test` builds the lab tools when it can; tests that need them skip, saying why, when not.
lab-tools-if-possible:
	@if [ -x $(HOST_GO) ]; then $(MAKE) --no-print-directory lab-tools || echo "lab tools not built: tests that need gopls/govulncheck will skip"; \
	else echo "no $(HOST_GO): lab tools not built; tests that need gopls/govulncheck will skip"; fi

test: sysdeps install lint lab-tools-if-possible
	$(BIN)/pytest -q -p no:cacheprovider

test-fast: install
	$(BIN)/pytest -q -m "not lab" -p no:cacheprovider

bench: sysdeps install
	$(PY) -m bench.run
	$(MAKE) --no-print-directory bench-live

# What live attribution costs (needs root: the lab's namespaces, capture, bpftrace).
bench-live: sysdeps install
	$(PY) bench/live_overhead.py

lab: sysdeps install lab-tools
	$(PY) -m tests.lab.record

filters: install
	$(BIN)/proxytrace filters export --out filters

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info build
	rm -f analyzer/events/builtin/_fastloop*.so
	rm -rf $(LAB_TOOLS)
	rm -rf $(BPF_BUILD)
