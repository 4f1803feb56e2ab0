package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigil-edge/vigil/fleet/api"
	"github.com/vigil-edge/vigil/fleet/rollout"
)

const rolloutUsage = `usage: vigil-fleet rollout <command> [flags]   (talks to a running vigil-fleet's API)

  create --model NAME@VERSION --devices all|ID,ID... --canary N --waves 25%,50%,100% --health-window 2m [--min-detection-ratio 0.5]
  list
  get ID
  pause ID | resume ID | abort ID

Every command takes --api URL (default http://127.0.0.1:8080) and --token (default $VIGIL_FLEET_TOKEN).
`

// rolloutCmd runs `vigil-fleet rollout ...` against the REST API.
func rolloutCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, rolloutUsage)
		return usageError{errors.New("rollout: which command?")}
	}
	sub := args[0]
	if sub == "help" || sub == "-h" || sub == "--help" {
		fmt.Fprint(stdout, rolloutUsage)
		return nil
	}
	fs := flag.NewFlagSet("rollout "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("api", "http://127.0.0.1:8080", "fleet API base URL")
	token := fs.String("token", os.Getenv("VIGIL_FLEET_TOKEN"), "API bearer token, admin for changes (default $VIGIL_FLEET_TOKEN)")
	var spec rollout.Spec
	var waves string
	var window, activeTimeout time.Duration
	if sub == "create" {
		fs.StringVar(&spec.Model, "model", "", "NAME@VERSION from the model registry; required")
		fs.StringVar(&spec.Devices, "devices", "", `"all" or a comma list of device ids; required`)
		fs.IntVar(&spec.Canary, "canary", 1, "devices in the canary step")
		fs.StringVar(&waves, "waves", "100%", "cumulative percentages of the devices after the canary")
		fs.DurationVar(&window, "health-window", rollout.DefaultHealthWindow, "how long each step's health gate must hold")
		fs.Float64Var(&spec.MinDetectionRatio, "min-detection-ratio", rollout.DefaultMinDetectionRatio, "lowest detections_per_s after/before ratio")
		fs.DurationVar(&activeTimeout, "active-timeout", rollout.DefaultActiveTimeout, "how long a device may take to report active")
	}
	pos, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	c := apiClient{base: strings.TrimRight(*base, "/"), token: *token}
	switch sub {
	case "create":
		if len(pos) != 0 {
			return usageError{fmt.Errorf("rollout create: unexpected argument %q", pos[0])}
		}
		if spec.Model == "" || spec.Devices == "" {
			return usageError{errors.New("rollout create: --model and --devices are required")}
		}
		if spec.Waves, err = rollout.ParseWaves(waves); err != nil {
			return usageError{fmt.Errorf("rollout create: %w", err)}
		}
		spec.HealthWindow, spec.ActiveTimeout = rollout.Duration(window), rollout.Duration(activeTimeout)
		if err := spec.Normalize(); err != nil {
			return usageError{fmt.Errorf("rollout create: %w", err)}
		}
		var r rollout.Rollout
		if err := c.do(ctx, http.MethodPost, "/api/v1/rollouts", spec, &r); err != nil {
			return fmt.Errorf("rollout create: %w", err)
		}
		fmt.Fprintf(stdout, "created rollout %s: %s to %d devices, steps %v\n", r.ID, r.Spec.Model, len(r.Devices), r.Bounds)
		return nil
	case "list":
		var rs []rollout.Rollout
		if err := c.do(ctx, http.MethodGet, "/api/v1/rollouts", nil, &rs); err != nil {
			return fmt.Errorf("rollout list: %w", err)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tMODEL\tSTATE\tSTEP\tDEVICES\tREASON")
		for _, r := range rs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", r.ID, r.Spec.Model, r.State, r.Step, len(r.Devices), r.Reason)
		}
		return tw.Flush()
	case "get", "pause", "resume", "abort":
		if len(pos) != 1 {
			return usageError{fmt.Errorf("rollout %s: want one rollout ID", sub)}
		}
		method, path := http.MethodPost, "/api/v1/rollouts/"+pos[0]+"/"+sub
		if sub == "get" {
			method, path = http.MethodGet, "/api/v1/rollouts/"+pos[0]
		}
		var r rollout.Rollout
		if err := c.do(ctx, method, path, nil, &r); err != nil {
			return fmt.Errorf("rollout %s: %w", sub, err)
		}
		printRollout(stdout, r)
		return nil
	default:
		fmt.Fprint(stderr, rolloutUsage)
		return usageError{fmt.Errorf("rollout: unknown command %q", sub)}
	}
}

func printRollout(w io.Writer, r rollout.Rollout) {
	fmt.Fprintf(w, "rollout %s: %s, state %s, step %d %s\n", r.ID, r.Spec.Model, r.State, r.Step, r.Phase)
	if r.Reason != "" {
		fmt.Fprintf(w, "reason: %s\n", r.Reason)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tSTEP\tSTATE\tBASELINE/S\tAFTER/S\tREASON")
	for _, d := range r.Devices {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%.2f\t%.2f\t%s\n", d.ID, d.Step, d.State, d.Baseline, d.PostRate(), d.Reason)
	}
	_ = tw.Flush()
}

// apiClient calls the fleet's REST API.
type apiClient struct {
	base, token string
}

func (c apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e api.Error
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s: %s", resp.Status, e.Error)
		}
		return fmt.Errorf("%s", resp.Status)
	}
	return json.Unmarshal(b, out)
}
