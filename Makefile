# pilottrace: the two commands a newcomer runs are `make demo` and `make test`.
SWIFT ?= swift
BIN := .build/debug/pilottrace

.PHONY: all bootstrap build release demo test lint format fuzz fuzz-ci bench microbench proxy-bench report-screenshots serve-screenshots clean

all: build

bootstrap:
	@scripts/bootstrap

build: bootstrap
	$(SWIFT) build

release: bootstrap
	$(SWIFT) build -c release

# The main job on a built-in example: the lab cloud (with mosquitto), a live capture on lo and the lab pilot on
# loopback, then the captured session's timeline and findings (scripts/demo; without root: the recorded example).
demo: build
	@scripts/demo

# Unit, capture and end-to-end tests (the end-to-end tests run the built binary), then every fuzz target for
# FUZZ_SECONDS (20) each: a crash, hang or out-of-memory fails the test and is saved in Fuzz/regressions/.
test: build
	$(SWIFT) test
	scripts/fuzz

# Only the fuzzing `make test` does (scripts/fuzz: build, seeds from Captures/, each target for FUZZ_SECONDS).
fuzz-ci: bootstrap
	scripts/fuzz

# Throughput and memory against the libpcap floor, tcpdump and tshark on generated captures, database size and query
# times on 10,000 sessions, and `serve`'s pages and API on them (Reports/benchmarks.md). BENCH_LARGE=1 adds a 1.4 GB
# capture.
bench: bootstrap
	scripts/bench

# Micro-benchmarks (ordo-one/benchmark) of the MQTT and HTTP decoders, TCP reassembly and the whole per-packet path:
# allocations and time per packet. Benchmarks/ is a package of its own (it depends on this one by path), so the
# benchmark dependency never enters the main build; not part of `make test`.
microbench: bootstrap
	cd Benchmarks && $(SWIFT) package benchmark --target PilotTraceMicro --no-progress

# Added latency and throughput of `pilottrace proxy` against talking to the lab cloud directly (release build).
proxy-bench: bootstrap
	$(SWIFT) build -c release --product pilottrace
	scripts/proxy-bench

# The HTML report of a clean and a failing recorded session, rendered by headless Chromium into Reports/*.png.
report-screenshots: build
	scripts/report-screenshots

# `pilottrace serve`'s pages (sessions, a failing session, findings) at 1400 and 900 px, by headless Chromium, into
# Reports/serve-*.png.
serve-screenshots: build
	scripts/serve-screenshots

# A longer libFuzzer run: every target (decoders, capture-reader, pipeline, address-rewriter) for FUZZ_SECONDS,
# 120 unless set; `FUZZ_TARGETS=pipeline` picks targets. The corpora in .build-fuzz/corpus/ carry over between runs.
fuzz: bootstrap
	FUZZ_SECONDS=$${FUZZ_SECONDS:-120} scripts/fuzz $(FUZZ_TARGETS)

# Style: .swift-format (4 spaces, 160 columns), applied to every Swift file. `make lint` checks, strictly (any
# finding fails); `make format` rewrites in place. Not part of `make test`.
SWIFT_FILES = Sources Tests Fuzz Benchmarks/Benchmarks Package.swift
lint:
	$(SWIFT) format lint --strict --recursive --parallel $(SWIFT_FILES)

format:
	$(SWIFT) format --in-place --recursive --parallel $(SWIFT_FILES)

clean:
	rm -rf .build .build-fuzz Benchmarks/.build
