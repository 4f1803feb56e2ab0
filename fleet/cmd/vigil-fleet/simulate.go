package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/vigil-edge/vigil/fleet/simulate"
)

// simulateCmd runs simulated devices against a broker and prints progress every second and a
// summary at the end (JSON with --json, including every device's epoch and last seq).
func simulateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg simulate.Config
	fs.StringVar(&cfg.Broker, "broker", "tcp://127.0.0.1:1883", "MQTT broker URL; several, comma-separated, are nodes of one cluster (device i connects to the (i mod n)-th first)")
	fs.StringVar(&cfg.Username, "username", "", "MQTT user name for every simulated device")
	passwordFile := fs.String("password-file", "", "file holding the MQTT password (or $VIGIL_SIMULATE_PASSWORD)")
	fs.IntVar(&cfg.Devices, "devices", 10, "number of simulated devices")
	fs.IntVar(&cfg.Cameras, "cameras", 2, "cameras per device")
	fs.Float64Var(&cfg.Rate, "rate", 100, "messages per second over all devices")
	fs.DurationVar(&cfg.Duration, "duration", 0, "how long to publish (0: until interrupted)")
	fs.StringVar(&cfg.Prefix, "prefix", "sim-", "device id prefix")
	fs.IntVar(&cfg.Inflight, "inflight", 16, "unacknowledged messages per device")
	fs.Float64Var(&cfg.EventShare, "events", 0.1, "share of event messages")
	fs.Float64Var(&cfg.AlertShare, "alerts", 0.02, "share of alert messages")
	fs.DurationVar(&cfg.TelemetryEvery, "telemetry", 10*time.Second, "telemetry period per device")
	asJSON := fs.Bool("json", false, "print the summary as JSON (with every device's epoch and last seq)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.Password = os.Getenv("VIGIL_SIMULATE_PASSWORD")
	if *passwordFile != "" {
		b, err := os.ReadFile(*passwordFile)
		if err != nil {
			return fmt.Errorf("simulate: --password-file: %w", err)
		}
		cfg.Password = strings.TrimRight(string(b), "\r\n")
	}
	if err := cfg.Validate(); err != nil {
		return usageError{err}
	}
	var last simulate.Stats
	cfg.Progress = func(s simulate.Stats) {
		fmt.Fprintf(stderr, "simulate: %d devices connected, %d sent, %d acked (%d/s), %d failed, %d commands\n",
			s.Connected, s.Sent, s.Acked, s.Acked-last.Acked, s.Failed, s.Commands)
		last = s
	}
	fmt.Fprintf(stderr, "simulate: connecting %d devices to %s\n", cfg.Devices, cfg.Broker)
	res, err := simulate.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		return enc.Encode(res)
	}
	fmt.Fprintf(stdout, "%d devices × %d cameras: %d messages sent, %d acknowledged, %d failed in %.1f s (%.0f msg/s acknowledged)\n",
		len(res.Devices), cfg.Cameras, res.Sent, res.Acked, res.Failed, res.Elapsed.Seconds(), float64(res.Acked)/res.Elapsed.Seconds())
	if res.Failed > 0 {
		return fmt.Errorf("simulate: %d messages were not acknowledged", res.Failed)
	}
	return nil
}
