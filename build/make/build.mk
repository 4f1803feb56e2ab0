BINARIES := vigil-agent vigil-fleet vigil-testvideos
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/vigil-edge/vigil/pipeline/metrics.Version=$(VERSION)

.PHONY: build demo
build: ## build the three binaries into bin/
	@mkdir -p bin
	go build -ldflags '$(LDFLAGS)' -o bin/vigil-agent ./agent/cmd/vigil-agent
	go build -ldflags '$(LDFLAGS)' -o bin/vigil-fleet ./fleet/cmd/vigil-fleet
	go build -ldflags '$(LDFLAGS)' -o bin/vigil-testvideos ./testvideos/cmd/vigil-testvideos

demo: deps build ## run the fleet, a test RTSP camera and the agent; live detections (DEMO_SECONDS=N to stop)
	@./build/demo.sh

.PHONY: build-arm64
build-arm64: ## cross-build the pure-Go binaries (vigil-fleet, vigil-dronesim) for linux/arm64 into bin/arm64/
	@mkdir -p bin/arm64
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -ldflags '$(LDFLAGS)' -o bin/arm64/vigil-fleet ./fleet/cmd/vigil-fleet
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -ldflags '$(LDFLAGS)' -o bin/arm64/vigil-dronesim ./hal/cmd/vigil-dronesim
	@echo "vigil-agent and vigil-testvideos link OpenCV, FFmpeg and ONNX Runtime through cgo: build it on the arm64 box itself (make deps && make build; make deps fetches the arm64 ONNX Runtime)"
