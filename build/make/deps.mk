.PHONY: deps
deps: ## install everything needed (apt packages, ONNX Runtime, Go modules); idempotent
	@./build/deps.sh
