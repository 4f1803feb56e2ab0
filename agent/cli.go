package agent

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/internal/logflag"
	"github.com/vigil-edge/vigil/internal/version"
	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/models/tile"
	"github.com/vigil-edge/vigil/pipeline/clip"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

const usage = `vigil-agent — edge video analytics agent

Usage:
  vigil-agent run --config FILE            run the agent
  vigil-agent check-config --config FILE   validate a configuration (exit 1 and one line per problem)
  vigil-agent detect [flags] FILE...       detect objects in images or video files, one JSON line each
                                           (--tile SIZE --overlap F [--full-frame]: tiled, as drones use)
  vigil-agent doctor --config FILE [--json] check the device: model, cameras, broker, outbox, clock, drone link
  vigil-agent discover (--multicast | --probe-addr HOST:PORT) [--user U]  print camera entries for ONVIF cameras
  vigil-agent version | --version         print the version

Every command takes -h for its flags.

Settings can be overridden with VIGIL_ environment variables: VIGIL_DEVICE_ID,
VIGIL_MQTT_URL, VIGIL_MQTT_PASSWORD, VIGIL_CAMERAS_0_URL, ...
`

// Main is the vigil-agent command line. It returns the process exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "check-config":
		return cmdCheckConfig(args[1:], stdout, stderr)
	case "detect":
		return cmdDetect(args[1:], stdout, stderr)
	case "doctor":
		return cmdDoctor(args[1:], stdout, stderr)
	case "discover":
		return cmdDiscover(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, version.String("vigil-agent"))
		return 0
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "vigil-agent: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

// parseExit is the exit status of a command whose flags did not parse: 0 for -h/--help (the
// flag package printed the usage), 2 for a bad flag.
func parseExit(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	return 2
}

// loadConfig parses the flags and loads the configuration; exit >= 0 means stop with it.
func loadConfig(fs *flag.FlagSet, args []string, stderr io.Writer) (cfg config.Config, exit int) {
	path := fs.String("config", "", "configuration file (YAML)")
	if err := fs.Parse(args); err != nil {
		return config.Config{}, parseExit(err)
	}
	cfg, err := config.Load(*path, os.Environ())
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(stderr, line)
		}
		return cfg, 1
	}
	return cfg, -1
}

func cmdCheckConfig(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg, exit := loadConfig(fs, args, stderr)
	if exit >= 0 {
		return exit
	}
	if errs := append(Preflight(cfg), cfg.MotionErrors()...); len(errs) > 0 { // preflight.go: the files the settings name; a bad motion section would fail its camera
		for _, err := range errs {
			fmt.Fprintln(stderr, err)
		}
		return 1
	}
	fmt.Fprintf(stdout, "config ok: device %s, %d camera(s), broker %s\n", cfg.DeviceID, len(cfg.Cameras), config.RedactURL(cfg.MQTT.URL))
	return 0
}

func cmdRun(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var logf logflag.Flags
	logf.Register(fs, "")
	cfg, exit := loadConfig(fs, args, stderr)
	if exit >= 0 {
		return exit
	}
	if logf.Level == "" {
		logf.Level = cfg.LogLevel // the flag, when given, wins over the config's log_level
	}
	log, err := logf.New(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "vigil-agent run:", err)
		return 2
	}
	a, err := New(cfg, log)
	if err != nil {
		log.Error("start", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := a.Run(ctx); err != nil {
		log.Error("agent stopped", "err", err)
		return 1
	}
	return 0
}

// DetectLine is one line of `vigil-agent detect`: the objects found on one image or frame.
type DetectLine struct {
	Source      string        `json:"source"`
	FrameSeq    uint64        `json:"frame_seq,omitempty"` // video frames, from 1
	PTSMS       float64       `json:"pts_ms,omitempty"`
	FrameWidth  int           `json:"frame_width"`
	FrameHeight int           `json:"frame_height"`
	Model       wire.Model    `json:"model"`
	InferenceMS float64       `json:"inference_ms"`
	Inferences  int           `json:"inferences,omitempty"` // with --tile: model runs on this picture (tiles, plus the whole)
	Objects     []wire.Object `json:"objects"`
}

func cmdDetect(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("detect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := config.Default()
	manifest := fs.String("model", def.Model.Manifest, "model manifest (JSON)")
	dir := fs.String("model-dir", "", "folder of the model file (default: the manifest's, else $EDGE_DATA_DIR/models)")
	threads := fs.Int("threads", 1, "inference threads")
	labels := fs.String("labels", strings.Join(config.DefaultLabels, ","), "labels to keep, comma-separated; empty keeps all")
	score := fs.Float64("score", 0, "score threshold (0: the model's default)")
	maxFrames := fs.Int("max-frames", 0, "stop each video after this many frames (0: all)")
	every := fs.Int("every", 1, "detect every Nth frame of a video")
	tileSize := fs.Int("tile", 0, "detect on SIZE x SIZE tiles of each picture (models/tile), for small objects seen from a drone; 0: the whole picture only")
	overlap := fs.Float64("overlap", tile.DefaultOverlap, "with --tile: fraction of a tile shared with its neighbour, in [0, 0.9)")
	fullFrame := fs.Bool("full-frame", false, "with --tile: add one whole-picture pass, for objects larger than a tile")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	if *tileSize < 0 || (*tileSize > 0 && (*overlap < 0 || *overlap >= 0.9)) {
		fmt.Fprintln(stderr, "vigil-agent detect: --tile must be >= 0 and --overlap in [0, 0.9)")
		return 2
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "vigil-agent detect: name at least one image or video file")
		return 2
	}
	var keep []string
	if *labels != "" {
		keep = strings.Split(*labels, ",")
	}
	det, err := OpenDetector(config.Model{Manifest: *manifest, Dir: *dir, Threads: *threads}, config.Camera{Labels: keep, Score: float32(*score)})
	if err != nil {
		fmt.Fprintln(stderr, "vigil-agent detect:", err)
		return 1
	}
	if *tileSize > 0 {
		td, err := tile.New(det, tile.Config{TileWidth: *tileSize, TileHeight: *tileSize, Overlap: *overlap, FullFrame: *fullFrame})
		if err != nil {
			det.Close()
			fmt.Fprintln(stderr, "vigil-agent detect: --tile:", err)
			return 2
		}
		det = td // closes the model with it
	}
	defer det.Close()
	enc := json.NewEncoder(stdout)
	status := 0
	for _, path := range fs.Args() {
		if err := detectFile(det, path, *maxFrames, max(*every, 1), enc); err != nil {
			fmt.Fprintf(stderr, "vigil-agent detect: %s: %v\n", path, err)
			status = 1
		}
	}
	return status
}

var imageExt = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".bmp": true, ".webp": true}

func detectFile(det models.Detector, path string, maxFrames, every int, enc *json.Encoder) error {
	m := det.Manifest()
	info := frame.ModelInfo{Name: m.Name, Version: m.Version, SHA256: m.SHA256}
	emit := func(d frame.Detections) error {
		msg := wire.EncodeDetections(wire.Header{}, d)
		line := DetectLine{Source: path, FrameSeq: d.FrameSeq, PTSMS: float64(d.PTS.Microseconds()) / 1000,
			FrameWidth: d.Width, FrameHeight: d.Height, Model: msg.Model, InferenceMS: msg.InferenceMS, Objects: msg.Objects}
		if td, ok := det.(*tile.Detector); ok {
			line.Inferences = td.LastInferences()
		}
		return enc.Encode(line)
	}
	ctx := context.Background()
	if imageExt[strings.ToLower(filepath.Ext(path))] {
		img, err := readImage(path)
		if err != nil {
			return err
		}
		d, err := RunDetector(ctx, det, img)
		if err != nil {
			return err
		}
		d.Model = info
		return emit(d)
	}
	_, err := clip.Decode(ctx, path, maxFrames, func(n int, f *frame.Frame) error {
		if (n-1)%every != 0 {
			return nil
		}
		d, err := RunDetector(ctx, det, f.Image)
		if err != nil {
			return err
		}
		d.Model, d.FrameSeq, d.PTS = info, uint64(n), f.PTS
		return emit(d)
	})
	return err
}

// RunDetector runs det on img and times it.
func RunDetector(ctx context.Context, det models.Detector, img models.Image) (frame.Detections, error) {
	start := time.Now()
	objs, err := det.Detect(ctx, img)
	if err != nil {
		return frame.Detections{}, err
	}
	return frame.Detections{Width: img.Width, Height: img.Height, Objects: objs, Inference: time.Since(start)}, nil
}
