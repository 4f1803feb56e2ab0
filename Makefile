# Vigil — edge video analytics agent and fleet controller.
# `make help` lists the targets. Everything installs itself: `make demo` and `make test` run
# `make deps` first, which is idempotent.

SHELL := /bin/bash
.DEFAULT_GOAL := help

ROOT := $(CURDIR)
EDGE_DATA_DIR ?= $(abspath $(ROOT)/../shared/data)
ORT_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x64)
ONNXRUNTIME_LIB ?= $(ROOT)/.deps/onnxruntime/$(ORT_ARCH)/libonnxruntime.so
export EDGE_DATA_DIR ONNXRUNTIME_LIB
export PATH := $(ROOT)/.deps/prometheus/usr/bin:$(PATH)

include build/make/*.mk

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'
