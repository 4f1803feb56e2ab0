package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/vigil-edge/vigil/fleet/api"
)

// watch polls the API and prints the fleet table every interval until ctx ends or duration
// (when > 0) elapses. A failed poll prints one line and the next poll tries again.
func watch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("api", "http://127.0.0.1:8080", "fleet API base URL")
	interval := fs.Duration("interval", 2*time.Second, "time between polls")
	duration := fs.Duration("duration", 0, "stop after this long (0: until interrupted)")
	token := fs.String("token", os.Getenv("VIGIL_FLEET_TOKEN"), "API bearer token, read-only is enough (default $VIGIL_FLEET_TOKEN)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *interval <= 0 {
		return usageError{fmt.Errorf("watch: --interval must be > 0")}
	}
	if *duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	tty := isTerminal(stdout)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	url := strings.TrimRight(*base, "/") + "/api/v1/devices"
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		devices, err := fetch(ctx, client, url, *token)
		if ctx.Err() != nil {
			return nil
		}
		if tty {
			fmt.Fprint(stdout, "\033[H\033[2J")
		}
		if err != nil {
			fmt.Fprintf(stdout, "%s  %s\n", time.Now().Format(time.TimeOnly), printable(err.Error()))
		} else {
			render(stdout, time.Now(), devices)
		}
		if !tty {
			fmt.Fprintln(stdout)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

func fetch(ctx context.Context, c *http.Client, url, token string) ([]api.Device, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("poll: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("poll %s: %s", url, resp.Status)
	}
	var ds []api.Device
	if err := json.NewDecoder(resp.Body).Decode(&ds); err != nil {
		return nil, fmt.Errorf("poll %s: decode: %w", url, err)
	}
	return ds, nil
}

// render prints one table: a line per camera (device/camera), or per device without cameras.
func render(w io.Writer, now time.Time, devices []api.Device) {
	cams := 0
	for _, d := range devices {
		cams += len(d.Cameras)
	}
	fmt.Fprintf(w, "%s  %d devices, %d cameras\n", now.Format(time.TimeOnly), len(devices), cams)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE/CAMERA\tSTATE\tRATE\tOBJECTS")
	for _, d := range devices {
		state := printable(d.State)
		if state == "" {
			state = "unknown"
		}
		id := printable(d.ID)
		if len(d.Cameras) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\n", id, state)
			continue
		}
		for _, c := range d.Cameras {
			fmt.Fprintf(tw, "%s/%s\t%s\t%.1f msg/s\t%s\n", id, printable(c.ID), state, c.Rate, objects(c.Objects))
		}
		if ev, al := d.Messages["events"], d.Messages["alerts"]; ev+al > 0 {
			fmt.Fprintf(tw, "%s\t\t\tevents=%d alerts=%d\n", id, ev, al)
		}
	}
	tw.Flush()
}

// objects formats counts by label, largest first: person=1234 car=5.
func objects(m map[string]uint64) string {
	if len(m) == 0 {
		return "-"
	}
	labels := make([]string, 0, len(m))
	for l := range m {
		labels = append(labels, l)
	}
	slices.SortFunc(labels, func(a, b string) int {
		if c := cmp.Compare(m[b], m[a]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	parts := make([]string, len(labels))
	for i, l := range labels {
		parts[i] = fmt.Sprintf("%s=%d", printable(l), m[l])
	}
	return strings.Join(parts, " ")
}

// printable makes a string that came from a device safe to print on a terminal: control
// characters (C0 including ESC and tab, DEL, C1), Unicode bidirectional and other format
// characters, and invalid UTF-8 are written as Go escapes (\x1b, \u202e), so that a label cannot
// move the cursor, clear the screen, set the clipboard (OSC 52) or shift the table's columns.
func printable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x100 && unicode.IsControl(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += n
	}
	return b.String()
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
