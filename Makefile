# EventOps: the two commands are `make run` and `make test`; the rest are steps they share.
SHELL := /bin/bash
.DEFAULT_GOAL := build

BUILD_DIR      ?= build
TEST_BUILD_DIR ?= build-test
JOBS           ?= $(shell nproc 2>/dev/null || echo 2)
STACK          := scripts/stack.sh
WITH_STACK_ENV  = eval "$$($(STACK) env)" &&

.PHONY: deps build build-test run test stack-up stack-down stack-env stack-status migrate format format-check bench bench-analytics bench-soak bench-single clean

deps:
	@scripts/deps.sh

# Optimised build (gcc) used by `make run` and the benchmarks.
build: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

# Test build: clang, AddressSanitizer + UndefinedBehaviorSanitizer, libFuzzer harnesses, fault
# injection (src/core/fault.h).
build-test: deps
	@CC=clang cmake -S . -B $(TEST_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DEO_SANITIZE=ON -DEO_FUZZ=ON -DEO_FAULT_INJECTION=ON >/dev/null
	@cmake --build $(TEST_BUILD_DIR) -j $(JOBS)

stack-up: deps
	@$(STACK) up

stack-down:
	@$(STACK) down

stack-env:
	@$(STACK) env

stack-status:
	@$(STACK) status

migrate: build stack-up
	@$(WITH_STACK_ENV) $(BUILD_DIR)/eventops migrate

run: build stack-up
	@$(WITH_STACK_ENV) scripts/run.sh $(BUILD_DIR)/eventops

test: build-test stack-up
	@$(WITH_STACK_ENV) EVENTOPS_BIN=$(CURDIR)/$(TEST_BUILD_DIR)/eventops \
	  ctest --test-dir $(TEST_BUILD_DIR) --output-on-failure --timeout 1800

bench: build stack-up
	@$(WITH_STACK_ENV) bench/run.sh $(BUILD_DIR)/eventops

# The analytics engine (issue 12): bench_engine, then the role on the stack (bench/analytics.sh).
bench-analytics: build stack-up
	@$(WITH_STACK_ENV) bench/analytics.sh $(BUILD_DIR)/eventops

# The soak of issue 13 (bench/soak.py): every role's RSS and descriptors, and the freshness, over
# BENCH_SOAK_S (1800) seconds at BENCH_SOAK_RATE (20000) events/s.
bench-soak: build stack-up
	@$(WITH_STACK_ENV) EVENTOPS_BIN=$(CURDIR)/$(BUILD_DIR)/eventops bench/soak.py

bench-single: build stack-up
	@$(WITH_STACK_ENV) EVENTOPS_BIN=$(CURDIR)/$(BUILD_DIR)/eventops bench/single.py

format:
	@clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD_DIR) $(TEST_BUILD_DIR)
