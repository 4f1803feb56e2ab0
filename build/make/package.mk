.PHONY: package test-packages
package: ## Debian packages: dist/vigil-{agent,fleet}_<version>_{amd64,arm64}.deb (ARCHES="amd64" for one)
	@./build/package.sh

test-packages: deps ## build the packages, install/run/purge the amd64 ones here, verify the units, run the arm64 agent under qemu
	@./build/test-packages.sh
