BINARIES := vigil-agent vigil-fleet vigil-testvideos
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/vigil-edge/vigil/internal/version.Version=$(VERSION)

.PHONY: build demo
build: ## build the three binaries into bin/
	@mkdir -p bin
	go build -ldflags '$(LDFLAGS)' -o bin/vigil-agent ./agent/cmd/vigil-agent
	go build -ldflags '$(LDFLAGS)' -o bin/vigil-fleet ./fleet/cmd/vigil-fleet
	go build -ldflags '$(LDFLAGS)' -o bin/vigil-testvideos ./testvideos/cmd/vigil-testvideos

demo: deps build ## run the fleet, a test RTSP camera and the agent; live detections (DEMO_SECONDS=N to stop)
	@./build/demo.sh

.PHONY: build-arm64 deps-arm64
build-arm64: deps-arm64 ## cross-build every binary (the agent with cgo: FFmpeg, OpenCV) for linux/arm64 into bin/arm64/; run them with build/run-arm64
	@LDFLAGS='$(LDFLAGS)' ./build/build-arm64.sh

deps-arm64: ## arm64 cross toolchain, FFmpeg (multiarch), OpenCV sysroot, qemu-user 10 (idempotent)
	@./build/deps-arm64.sh
