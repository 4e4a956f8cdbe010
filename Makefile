# pilottrace: the two commands a newcomer runs are `make demo` and `make test`.
SWIFT ?= swift
BIN := .build/debug/pilottrace

.PHONY: all bootstrap build release demo test fuzz bench microbench proxy-bench report-screenshots clean

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

# Unit, capture and end-to-end tests (the end-to-end tests run the built binary).
test: build
	$(SWIFT) test

# Throughput and memory against the libpcap floor, tcpdump and tshark on generated captures, database size and query
# times on 10,000 sessions (Reports/benchmarks.md). BENCH_LARGE=1 adds a 1.4 GB capture.
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

# libFuzzer over the pure decoders (MQTT, HTTP, WebSocket, detection, packet decoding and reassembly) for a minute.
fuzz: bootstrap
	scripts/fuzz 60

clean:
	rm -rf .build .build-fuzz Benchmarks/.build
