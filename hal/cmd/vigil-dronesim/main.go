// Command vigil-dronesim is a simulated autopilot: it flies an orbit or a lawn-mower pattern and
// sends MAVLink v2 telemetry over UDP to a companion (a vigil-agent in drone mode), until Ctrl-C
// or --duration.
//
//	vigil-dronesim --target 127.0.0.1:14550 --pattern orbit --alt 100 --duration 60s
//	vigil-dronesim --pattern lawnmower --rows 6 --spacing 40 --length 300 --gap-at 20s --gap-for 5s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-edge/vigil/hal/sim"
	"github.com/vigil-edge/vigil/internal/logflag"
	"github.com/vigil-edge/vigil/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "vigil-dronesim:", err)
		os.Exit(2)
	}
}

// run parses args, flies until ctx is done or the duration has passed, and returns.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	if len(args) > 0 && (args[0] == "version" || args[0] == "--version") {
		fmt.Fprintln(os.Stdout, version.String("vigil-dronesim"))
		return nil
	}
	cfg := sim.DefaultDroneConfig()
	fs := flag.NewFlagSet("vigil-dronesim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		pattern                      = fs.String("pattern", string(cfg.Pattern), "flight pattern: orbit or lawnmower")
		home                         = fs.String("home", fmt.Sprintf("%g,%g,%g", cfg.HomeLat, cfg.HomeLon, cfg.HomeAlt), "home point: lat,lon,alt_msl")
		duration                     = fs.Duration("duration", 0, "stop after this long (0: until Ctrl-C)")
		gapAt, gapFor, gpsAt, gpsFor time.Duration
		verbose                      = fs.Bool("v", false, "log debug messages (--log-level debug)")
		logf                         logflag.Flags
	)
	logf.Register(fs, "info")
	fs.StringVar(&cfg.Target, "target", "127.0.0.1:14550", "UDP host:port of the companion's MAVLink listener")
	fs.Float64Var(&cfg.Alt, "alt", cfg.Alt, "altitude above home, metres")
	fs.Float64Var(&cfg.Speed, "speed", cfg.Speed, "ground speed, m/s")
	fs.Float64Var(&cfg.Radius, "radius", cfg.Radius, "orbit radius, metres")
	fs.IntVar(&cfg.Rows, "rows", cfg.Rows, "lawn-mower legs (even)")
	fs.Float64Var(&cfg.Spacing, "spacing", cfg.Spacing, "lawn-mower leg spacing, metres")
	fs.Float64Var(&cfg.Length, "length", cfg.Length, "lawn-mower leg length, metres")
	fs.Float64Var(&cfg.CruisePitch, "pitch", cfg.CruisePitch, "vehicle pitch in flight, degrees")
	fs.Float64Var(&cfg.GimbalPitch, "gimbal-pitch", cfg.GimbalPitch, "gimbal pitch, degrees (-90: nadir)")
	fs.Float64Var(&cfg.GimbalYaw, "gimbal-yaw", cfg.GimbalYaw, "gimbal yaw, degrees")
	fs.BoolVar(&cfg.GimbalYawEarth, "gimbal-yaw-earth", false, "gimbal yaw is relative to north (yaw lock), not to the heading")
	fs.DurationVar(&gapAt, "gap-at", 0, "start a telemetry gap (nothing sent) this long after start")
	fs.DurationVar(&gapFor, "gap-for", 0, "length of the telemetry gap")
	fs.DurationVar(&gpsAt, "gps-loss-at", 0, "lose the GPS fix this long after start")
	fs.DurationVar(&gpsFor, "gps-loss-for", 0, "length of the GPS loss")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	cfg.Pattern = sim.Pattern(*pattern)
	parts := strings.Split(*home, ",")
	if len(parts) != 3 {
		return fmt.Errorf("--home %q: want lat,lon,alt", *home)
	}
	for i, dst := range []*float64{&cfg.HomeLat, &cfg.HomeLon, &cfg.HomeAlt} {
		v, err := strconv.ParseFloat(strings.TrimSpace(parts[i]), 64)
		if err != nil {
			return fmt.Errorf("--home %q: %w", *home, err)
		}
		*dst = v
	}
	if (gapFor > 0) != (gapAt > 0) || (gpsFor > 0) != (gpsAt > 0) {
		return errors.New("--gap-at/--gap-for and --gps-loss-at/--gps-loss-for go in pairs")
	}
	if *verbose {
		logf.Level = "debug"
	}
	log, err := logf.New(stderr)
	if err != nil {
		return err
	}
	log = log.With("component", "dronesim")
	cfg.Logger = log

	d, err := sim.NewDrone(cfg)
	if err != nil {
		return err
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	if err := d.Start(ctx); err != nil {
		return err
	}
	defer d.Close()
	log.Info("flying", "target", cfg.Target, "pattern", cfg.Pattern, "alt", cfg.Alt, "speed", cfg.Speed)

	type fault struct {
		at, dur time.Duration
		set     func(bool)
		name    string
	}
	start := time.Now()
	faults := []fault{{gapAt, gapFor, d.SetGap, "telemetry gap"}, {gpsAt, gpsFor, d.SetGPSLoss, "gps loss"}}
	active := make([]bool, len(faults))
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	status := time.NewTicker(10 * time.Second)
	defer status.Stop()
	for {
		select {
		case <-ctx.Done():
			s := d.TrueState(time.Now())
			log.Info("stopped", "sent", d.Sent(), "lat", s.Lat, "lon", s.Lon)
			return nil
		case <-status.C:
			s := d.TrueState(time.Now())
			log.Info("status", "sent", d.Sent(), "lat", s.Lat, "lon", s.Lon, "yaw", s.Yaw)
		case now := <-tick.C:
			el := now.Sub(start)
			for i, f := range faults {
				on := f.dur > 0 && el >= f.at && el < f.at+f.dur
				if on != active[i] {
					active[i] = on
					f.set(on)
					log.Info(f.name, "on", on)
				}
			}
		}
	}
}
