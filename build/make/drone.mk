.PHONY: demo-drone dronesim
dronesim: ## build bin/vigil-dronesim, the MAVLink drone simulator
	@mkdir -p bin
	go build -ldflags '$(LDFLAGS)' -o bin/vigil-dronesim ./hal/cmd/vigil-dronesim

demo-drone: deps build dronesim ## drone mode: fleet, test camera, MAVLink simulator, agent geo-tagging detections (DEMO_SECONDS=N to stop)
	@./build/demo-drone.sh
