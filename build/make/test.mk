GO_TEST_FLAGS ?= -race -count=1 -timeout 25m

.PHONY: test test-go fmt-check vet nocgo
test: deps vet fmt-check nocgo test-go ## install what is missing, then run every test (race detector on)

test-go:
	go test $(GO_TEST_FLAGS) ./...

vet: ## go vet
	go vet ./...

# Without cgo (no FFmpeg, OpenCV, ONNX Runtime) every package still builds, the cgo ones as stubs
# that return an error; the pure-Go ones are vetted with their tests, and the core ones tested.
NOCGO_TEST_PKGS := ./pipeline/wire/... ./pipeline/rules/... ./pipeline/track/... ./pipeline/outbox/... ./hal/...
nocgo: ## check the build with CGO_ENABLED=0 (pure-Go packages vetted, core ones tested)
	CGO_ENABLED=0 go build ./...
	CGO_ENABLED=0 go vet $$(./build/nocgo-packages.sh)
	CGO_ENABLED=0 go test -count=1 $(NOCGO_TEST_PKGS)

fmt-check: ## fail if gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: bench
bench: deps ## benchmarks: pipeline vs raw inference, decode vs ffmpeg (record in docs/BENCHMARKS.md)
	@./build/bench.sh
