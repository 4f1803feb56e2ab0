// Command vigil-testvideos serves video files over RTSP, each in a loop at real-time pace,
// like live cameras:
//
//	vigil-testvideos serve [--addr 127.0.0.1:8554] [--user U --pass P] [--cache DIR] FILE...
//
// It prints "name<TAB>url" for each stream and runs until SIGINT or SIGTERM.
//
// It also scores trackers against MOTChallenge ground truth (see testvideos/score):
//
//	vigil-testvideos score --clip FILE --gt DIR [--tracker bytetrack|greedy|both] [--motion] [--detect-every N] [--max-frames N]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/vigil-edge/vigil/internal/logflag"
	"github.com/vigil-edge/vigil/internal/version"
	"github.com/vigil-edge/vigil/testvideos/score"
	"github.com/vigil-edge/vigil/testvideos/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return // the flag package printed the usage
		}
		fmt.Fprintln(os.Stderr, "vigil-testvideos:", err)
		stop()
		os.Exit(1)
	}
}

const usage = `usage:
  vigil-testvideos serve [--addr ADDR] [--user U --pass P] [--cache DIR] [--udp-port N] FILE...
  vigil-testvideos score --clip FILE --gt DIR [--tracker bytetrack|greedy|both] [--motion] [--detect-every N] [--max-frames N]
  vigil-testvideos version | --version
Every command takes -h for its flags.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "score":
			return runScore(ctx, args[1:], stdout, stderr)
		case "version", "--version":
			fmt.Fprintln(stdout, version.String("vigil-testvideos"))
			return nil
		case "help", "-h", "--help":
			fmt.Fprint(stdout, usage)
			return nil
		}
	}
	if len(args) == 0 || args[0] != "serve" {
		return fmt.Errorf("%s", usage)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg server.Config
	fs.StringVar(&cfg.Addr, "addr", server.DefaultAddr, "RTSP listen address")
	fs.StringVar(&cfg.User, "user", "", "user name required of readers")
	fs.StringVar(&cfg.Pass, "pass", "", "password required of readers")
	fs.StringVar(&cfg.CacheDir, "cache", "", "folder of transcoded files (default: user cache dir/vigil/testvideos)")
	fs.IntVar(&cfg.UDPPort, "udp-port", 0, "even UDP port for RTP (RTCP: +1); 0 picks a free pair")
	var logf logflag.Flags
	logf.Register(fs, "info")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	log, err := logf.New(stderr)
	if err != nil {
		return err
	}
	cfg.Logger = log
	cfg.Files = fs.Args()
	return server.Serve(ctx, cfg, stdout)
}

func runScore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("score", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg score.Config
	fs.StringVar(&cfg.Clip, "clip", "", "video file")
	fs.StringVar(&cfg.GTDir, "gt", "", "MOTChallenge sequence folder (gt/gt.txt, seqinfo.ini)")
	trackers := fs.String("tracker", "both", "bytetrack, greedy or both")
	fs.IntVar(&cfg.DetectEvery, "detect-every", 1, "detect (and score) every Nth frame")
	fs.IntVar(&cfg.MaxFrames, "max-frames", 0, "stop after this many video frames (0: all)")
	fs.IntVar(&cfg.Threads, "threads", 1, "inference threads")
	fs.StringVar(&cfg.CacheDir, "cache", "", "detection cache folder (default: user cache dir/vigil/score; off: none)")
	fs.Func("confirm-median", "Frigate's confirmation rule: confirm a track once the median of its last 10 scores reaches this (0: off)", func(v string) error {
		f, err := strconv.ParseFloat(v, 32)
		cfg.Track.ConfirmMedian = float32(f)
		return err
	})
	motionOn := fs.Bool("motion", false, "also run bytetrack with motion-driven detection (the agent's region mode) and score it")
	fs.DurationVar(&cfg.FullFrameEvery, "full-frame-every", 10*time.Second, "with --motion: the longest time between full-frame passes")
	fs.Float64Var(&cfg.Coverage, "coverage", 0, "with --motion: share of the frame at which a crop gives way to a full pass (0: 0.6)")
	out := fs.String("out", "", "write each tracker's output in MOTChallenge format to DIR/<tracker>/<sequence>.txt")
	var logf logflag.Flags
	logf.Register(fs, "info")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := logf.New(stderr)
	if err != nil {
		return err
	}
	names := []string{*trackers}
	if *trackers == "both" {
		names = []string{score.ByteTrack, score.GreedyIoU}
	}
	cfg.Log = log
	var results []score.Result
	runs := make([]score.Config, 0, len(names)+1)
	for _, name := range names {
		c := cfg
		c.Tracker = name
		runs = append(runs, c)
	}
	if *motionOn {
		c := cfg
		c.Tracker, c.Motion = score.ByteTrack, true
		runs = append(runs, c)
	}
	for _, c := range runs {
		r, err := score.Run(ctx, c)
		if err != nil {
			return err
		}
		if *out != "" {
			if err := writeMOT(*out, r); err != nil {
				return err
			}
		}
		results = append(results, r)
	}
	return score.WriteTable(stdout, results)
}

// writeMOT writes r's tracker output to dir/<tracker>/<sequence>.txt (TrackEval's layout of
// one tracker's results: a file per sequence).
func writeMOT(dir string, r score.Result) error {
	d := filepath.Join(dir, r.Tracker)
	if err := os.MkdirAll(d, 0o755); err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	path := filepath.Join(d, r.GT+".txt")
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if err := score.WriteMOT(f, r.Output); err != nil {
		f.Close()
		return fmt.Errorf("--out: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--out: write %s: %w", path, err)
	}
	return nil
}
