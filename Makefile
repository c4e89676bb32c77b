# Bifrost: the two commands that matter are `make run` (a local 3-node replicated map) and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := build

APT_PACKAGES := librocksdb-dev liblz4-dev libjemalloc-dev pkg-config
SWIFT_SOURCES := $(wildcard Package.swift Modules Apps Tests Benchmarks/Package.swift Benchmarks/Benchmarks)
SWIFT_TEST_FLAGS ?=
SEEDS ?= 10000

.PHONY: deps build release test lint format run bench bench-matrix bench-compare sim clean

# Installs the system libraries only when one is missing; quiet and idempotent otherwise.
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		SUDO=""; [ "$$(id -u)" -ne 0 ] && SUDO=sudo; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	swift build

# The release executables, bifrost-map and bifrost-loadgen, built as every measurement uses them: with Swift's
# run-time exclusivity checks off (scripts/build-release.sh says why; debug builds and the tests keep them).
release: deps
	scripts/build-release.sh

lint: deps
	swift format lint --strict --recursive --parallel $(SWIFT_SOURCES)

format: deps
	swift format format --in-place --recursive --parallel $(SWIFT_SOURCES)

test: deps lint
	swift build --build-tests
	swift test --skip-build $(SWIFT_TEST_FLAGS)

# Long deterministic-simulation campaigns: make sim SEEDS=100000
sim: deps
	BIFROST_SIM_SEEDS=$(SEEDS) swift test -c release --filter Simulation

# A local 3-node replicated map on 127.0.0.1:7001-7003, data in ./data/n1..n3 (reused on re-runs); Ctrl-C stops it.
run: deps
	scripts/build-release.sh bifrost-map
	scripts/run-cluster.sh .build/release/bifrost-map

# The standard matrix against a spawned 3-node cluster, written into docs/benchmarks.md (scripts/bench-matrix.sh),
# then the package-benchmark suites and the RPC and Raft micro-benchmarks in Benchmarks/ (their own package).
bench: deps
	scripts/bench-matrix.sh
	cd Benchmarks && swift package --allow-writing-to-package-directory benchmark
	cd Benchmarks && swift run -c release rpc-bench
	cd Benchmarks && swift run -c release raft-bench

# Only the standard matrix (BENCH_DURATION=N seconds per row, default 5).
bench-matrix: deps
	scripts/bench-matrix.sh

# Bifrost against etcd 3.4 (installed from Debian) in the same run: put at 1, 64 and 256 clients, linearizable get.
# BENCH_DURATION=3 make bench-compare for a quick run; see docs/benchmarks.md.
bench-compare: deps
	scripts/bench-compare.sh

clean:
	rm -rf .build Benchmarks/.build
