GO_TEST_FLAGS ?= -race -count=1 -timeout 25m

.PHONY: test test-go fmt-check vet
test: deps vet fmt-check test-go ## install what is missing, then run every test (race detector on)

test-go:
	go test $(GO_TEST_FLAGS) ./...

vet: ## go vet
	go vet ./...

fmt-check: ## fail if gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

.PHONY: bench
bench: deps ## benchmarks: pipeline vs raw inference, decode vs ffmpeg (record in docs/BENCHMARKS.md)
	@./build/bench.sh
