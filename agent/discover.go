package agent

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-edge/vigil/hal/onvif"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// DiscoveredCamera is one camera `vigil-agent discover` found, with its streams.
type DiscoveredCamera struct {
	Name     string             `json:"name,omitempty"`
	Hardware string             `json:"hardware,omitempty"`
	Device   string             `json:"device_service"`
	Error    string             `json:"error,omitempty"`
	Streams  []DiscoveredStream `json:"streams"`
}

// DiscoveredStream is one stream, as a camera entry of the agent's configuration.
type DiscoveredStream struct {
	ID       string `json:"id"`
	URL      string `json:"url"` // with the credentials given, unless --redact
	Profile  string `json:"profile"`
	Encoding string `json:"encoding"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
	FPS      int    `json:"fps"`
}

const discoverUsage = `vigil-agent discover: find ONVIF cameras and print camera entries for the configuration

  vigil-agent discover --multicast [--user U] [flags]       probe the local network (WS-Discovery multicast)
  vigil-agent discover --probe-addr HOST:PORT [flags]      probe one device (unicast)

The password comes from --password or, better (shell history), VIGIL_ONVIF_PASSWORD.
`

func cmdDiscover(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("discover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, discoverUsage); fs.PrintDefaults() }
	probeAddr := fs.String("probe-addr", "", "send the WS-Discovery probe to this host:port only (a device's address, unicast)")
	multicast := fs.Bool("multicast", false, "send the probe to the WS-Discovery multicast group "+onvif.MulticastAddr+" (every camera on the local network)")
	user := fs.String("user", "", "ONVIF user name of the cameras")
	password := fs.String("password", "", "ONVIF password (default: $VIGIL_ONVIF_PASSWORD)")
	wait := fs.Duration("wait", 3*time.Second, "how long to collect answers to the probe")
	timeout := fs.Duration("timeout", 10*time.Second, "time allowed to each camera's services")
	redact := fs.Bool("redact", false, "print URLs without the password")
	asJSON := fs.Bool("json", false, "print JSON instead of configuration YAML")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	addr := *probeAddr
	switch {
	case addr != "" && *multicast:
		fmt.Fprintln(stderr, "vigil-agent discover: give --probe-addr or --multicast, not both")
		return 2
	case *multicast:
		addr = onvif.MulticastAddr
	case addr == "":
		fmt.Fprint(stderr, "vigil-agent discover: say where to probe: --multicast (the local network) or --probe-addr HOST:PORT (one device)\n\n"+discoverUsage)
		return 2
	}
	pass := *password
	if pass == "" {
		pass = os.Getenv("VIGIL_ONVIF_PASSWORD")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cams, err := Discover(ctx, DiscoverOptions{ProbeAddr: addr, Wait: *wait, Timeout: *timeout, User: *user, Password: pass, Redact: *redact})
	if err != nil {
		fmt.Fprintln(stderr, "vigil-agent discover:", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(cams)
	} else {
		printCameraEntries(stdout, addr, cams)
	}
	status := 0
	if len(cams) == 0 {
		fmt.Fprintf(stderr, "vigil-agent discover: no ONVIF camera answered at %s within %s\n", addr, *wait)
		status = 1
	}
	for _, c := range cams {
		if c.Error != "" {
			fmt.Fprintf(stderr, "vigil-agent discover: %s: %s\n", c.Device, c.Error)
			status = 1
		}
	}
	return status
}

// DiscoverOptions tunes Discover.
type DiscoverOptions struct {
	ProbeAddr      string        // required: a device's host:port or onvif.MulticastAddr
	Wait           time.Duration // answers are collected this long
	Timeout        time.Duration // per camera, for its services
	User, Password string
	Redact         bool // leave the password out of the URLs
}

// Discover probes opts.ProbeAddr and asks every camera that answers for its streams.
func Discover(ctx context.Context, opts DiscoverOptions) ([]DiscoveredCamera, error) {
	matches, err := onvif.Probe(ctx, onvif.ProbeOptions{Addr: opts.ProbeAddr, Wait: opts.Wait})
	if err != nil {
		return nil, err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	cl := &onvif.Client{HTTP: &http.Client{Timeout: opts.Timeout}, User: opts.User, Password: opts.Password}
	used := map[string]int{}
	var out []DiscoveredCamera
	for i, m := range matches {
		dc := DiscoveredCamera{Name: m.Name(), Hardware: m.Hardware(), Device: m.XAddrs[0], Streams: []DiscoveredStream{}}
		cam, err := cl.Streams(ctx, m)
		if err != nil && len(cam.Streams) == 0 {
			dc.Error = err.Error()
			if errors.Is(err, onvif.ErrNotAuthorized) {
				dc.Error = "the camera refused the user name or password: give them with --user and --password (or VIGIL_ONVIF_PASSWORD)"
			}
		}
		base := slug(cmpOr(m.Name(), fmt.Sprintf("camera-%d", i+1)))
		for _, s := range cam.Streams {
			id := uniqueID(used, base+"-"+slug(cmpOr(s.Profile.Name, s.Profile.Token)))
			pw := opts.Password
			if opts.Redact && pw != "" {
				pw = "PASSWORD"
			}
			u, err := onvif.WithCredentials(s.URI, opts.User, pw)
			if err != nil {
				dc.Error = err.Error()
				continue
			}
			dc.Streams = append(dc.Streams, DiscoveredStream{ID: id, URL: u, Profile: s.Profile.Name, Encoding: s.Profile.Encoding,
				Width: s.Profile.Width, Height: s.Profile.Height, FPS: s.Profile.FPS})
		}
		out = append(out, dc)
	}
	return out, nil
}

// slug turns a name into a camera id: lower case letters, digits and dashes.
func slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.TrimRight(b.String(), "-")
	if len(out) > 40 {
		out = strings.TrimRight(out[:40], "-")
	}
	if out == "" {
		out = "camera"
	}
	return out
}

func uniqueID(used map[string]int, id string) string {
	used[id]++
	if n := used[id]; n > 1 {
		id = fmt.Sprintf("%s-%d", id, n)
	}
	if !wire.ValidID(id) {
		id = "camera"
	}
	return id
}

// printCameraEntries writes the cameras as a cameras: list to paste into the configuration;
// everything else is a YAML comment.
func printCameraEntries(w io.Writer, addr string, cams []DiscoveredCamera) {
	fmt.Fprintf(w, "# ONVIF cameras that answered a probe to %s (vigil-agent discover)\n", addr)
	fmt.Fprintln(w, "# Keep the streams you want (main streams detect best; sub streams cost less CPU).")
	fmt.Fprintln(w, "cameras:")
	for _, c := range cams {
		fmt.Fprintf(w, "  # %s", cmpOr(c.Name, "(no name)"))
		if c.Hardware != "" {
			fmt.Fprintf(w, " (%s)", c.Hardware)
		}
		fmt.Fprintf(w, " at %s\n", c.Device)
		if c.Error != "" {
			fmt.Fprintf(w, "  # error: %s\n", strings.ReplaceAll(c.Error, "\n", " "))
		}
		for _, s := range c.Streams {
			fmt.Fprintf(w, "  - id: %s # profile %q: %s %dx%d at %d fps\n", s.ID, s.Profile, s.Encoding, s.Width, s.Height, s.FPS)
			fmt.Fprintf(w, "    url: %s\n", yamlString(s.URL))
			if s.Encoding != "H264" && s.Encoding != "H265" {
				fmt.Fprintf(w, "    enabled: false # %s: the agent decodes H.264 and H.265 streams\n", s.Encoding)
			}
		}
	}
}

// yamlString quotes s for YAML (JSON strings are YAML strings).
func yamlString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
