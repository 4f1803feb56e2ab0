package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/hal/mavlink"
	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/models/onnx"
	"github.com/vigil-edge/vigil/pipeline/decode"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/ingest/rtsp"
	"github.com/vigil-edge/vigil/pipeline/publish"
)

// Statuses of a doctor check.
const (
	CheckPass = "pass"
	CheckWarn = "warn" // works, but deserves a look; fails the run only with --strict
	CheckFail = "fail"
	CheckSkip = "skip" // not configured, or impossible after an earlier failure
)

// Check is one finding of `vigil-agent doctor`.
type Check struct {
	Name   string `json:"name"`          // config, onnxruntime, model, camera/<id>, broker, outbox, clock, drone
	Status string `json:"status"`        // pass, warn, fail or skip
	Detail string `json:"detail"`        // what was found (never a password)
	Fix    string `json:"fix,omitempty"` // what to do, when not pass
	// Data holds the check's measurements for scripts (e.g. codec, width, fps, inference_ms).
	Data map[string]any `json:"data,omitempty"`
}

// DoctorReport is the whole result; OK is false when a check failed (or warned, when strict).
type DoctorReport struct {
	Device string  `json:"device,omitempty"`
	OK     bool    `json:"ok"`
	Checks []Check `json:"checks"`
}

// DoctorOptions tunes Doctor.
type DoctorOptions struct {
	Timeout   time.Duration // per network check (camera, broker, drone link); 10 s when 0
	ModelRuns int           // timed inferences after one warm-up; 5 when 0
	Strict    bool          // warnings fail the run
	Now       func() time.Time
	// Adjtimex reads the kernel's clock discipline; syscall.Adjtimex when nil.
	Adjtimex func(*syscall.Timex) (int, error)
}

// Doctor runs every check against cfg (already loaded and valid) and returns the report.
// It changes nothing: the camera, broker and drone link are opened and closed again, the
// outbox folder gets one temporary file.
func Doctor(ctx context.Context, cfg config.Config, opts DoctorOptions) DoctorReport {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.ModelRuns <= 0 {
		opts.ModelRuns = 5
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Adjtimex == nil {
		opts.Adjtimex = syscall.Adjtimex
	}
	r := DoctorReport{Device: cfg.DeviceID}
	r.add(Check{Name: "config", Status: CheckPass,
		Detail: fmt.Sprintf("device %s, %d camera(s), broker %s", cfg.DeviceID, len(cfg.Cameras), config.RedactURL(cfg.MQTT.URL))})
	ortOK := r.add(checkRuntime())
	if ortOK {
		r.add(checkModel(cfg.Model, opts.ModelRuns))
	} else {
		r.add(Check{Name: "model", Status: CheckSkip, Detail: "ONNX Runtime did not load", Fix: "fix the onnxruntime check first"})
	}
	for i, c := range cfg.Cameras {
		if !c.IsEnabled() {
			r.add(Check{Name: "camera/" + c.ID, Status: CheckSkip, Detail: "enabled: false"})
			continue
		}
		if errs := cfg.CameraMotionErrors(i); len(errs) > 0 { // the agent would not run this camera
			r.add(Check{Name: "camera/" + c.ID, Status: CheckFail, Detail: errors.Join(errs...).Error(),
				Fix: "edit the keys named above (masks are polygons of 0-1 points, 3 at least)"})
			continue
		}
		r.add(checkCamera(ctx, c, opts.Timeout))
	}
	r.add(checkBroker(ctx, cfg, opts.Timeout))
	r.add(checkOutbox(cfg.Outbox))
	r.add(checkClock(opts.Now(), opts.Adjtimex))
	r.add(checkDrone(ctx, cfg.Drone, opts.Timeout))
	r.OK = true
	for _, c := range r.Checks {
		if c.Status == CheckFail || c.Status == CheckWarn && opts.Strict {
			r.OK = false
		}
	}
	return r
}

func (r *DoctorReport) add(c Check) bool {
	r.Checks = append(r.Checks, c)
	return c.Status == CheckPass || c.Status == CheckWarn
}

func checkRuntime() Check {
	lib, err := onnx.Load()
	if err != nil {
		return Check{Name: "onnxruntime", Status: CheckFail, Detail: err.Error(),
			Fix: "install the vigil-agent package again (it ships libonnxruntime.so in /usr/lib/vigil), or set ONNXRUNTIME_LIB to the library's path"}
	}
	return Check{Name: "onnxruntime", Status: CheckPass, Detail: fmt.Sprintf("ONNX Runtime %s from %s", lib.Version, lib.Path),
		Data: map[string]any{"version": lib.Version, "path": lib.Path}}
}

// checkModel opens the model (which verifies its sha256 against the manifest) and times it on
// a synthetic frame.
func checkModel(mc config.Model, runs int) Check {
	c := Check{Name: "model"}
	det, err := OpenDetector(mc, config.Camera{})
	if err != nil {
		c.Status, c.Detail = CheckFail, err.Error()
		c.Fix = "model.manifest must name the manifest (JSON) and the model file must sit beside it or in model.dir; " +
			"a sha256 mismatch means the file is damaged or not the one the manifest names: reinstall the package or the model"
		return c
	}
	defer det.Close()
	img := syntheticImage(640, 480)
	var times []float64
	for i := 0; i <= runs; i++ {
		start := time.Now()
		if _, err := RunDetector(context.Background(), det, img); err != nil {
			c.Status, c.Detail = CheckFail, "inference: "+err.Error()
			c.Fix = "the model loads but does not run: check the manifest's input size and family against the file"
			return c
		}
		if i > 0 { // the first run warms up
			times = append(times, float64(time.Since(start).Microseconds())/1000)
		}
	}
	slices.Sort(times)
	ms := times[len(times)/2]
	info := det.Manifest()
	c.Status = CheckPass
	c.Detail = fmt.Sprintf("%s %s (sha256 %s, verified) runs a 640x480 frame in %.1f ms (median of %d)", info.Name, info.Version, short(info.SHA256), ms, runs)
	if info.SHA256 == "" {
		c.Detail = strings.Replace(c.Detail, ", verified", "", 1)
		c.Status, c.Fix = CheckWarn, "the manifest has no sha256: set it so a damaged model file is refused"
	}
	c.Data = map[string]any{"name": info.Name, "version": info.Version, "inference_ms": ms}
	return c
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	if s == "" {
		return "not set"
	}
	return s
}

// syntheticImage is a BGR gradient: enough structure for the network, no file needed.
func syntheticImage(w, h int) models.Image {
	pix := make([]byte, w*h*3)
	for y := range h {
		for x := range w {
			i := (y*w + x) * 3
			pix[i], pix[i+1], pix[i+2] = byte(x), byte(y), byte(x+y)
		}
	}
	return models.Image{Width: w, Height: h, Stride: 3 * w, Pix: pix}
}

// probeFrames is how many decoded frames a camera check waits for (the fps estimate).
const probeFrames = 25

// checkCamera connects to the camera, decodes frames and reports codec, size and frame rate.
func checkCamera(ctx context.Context, c config.Camera, timeout time.Duration) Check {
	ck := Check{Name: "camera/" + c.ID}
	fail := func(detail, fix string) Check {
		ck.Status, ck.Detail, ck.Fix = CheckFail, detail, fix
		return ck
	}
	probe := c
	f := false
	probe.Realtime, probe.Loop = &f, false // a file is read as fast as it decodes
	src, err := newSource(probe, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return fail(err.Error(), "fix cameras[].url of camera "+c.ID+": rtsp://[user:pass@]host[:port]/path or a file path")
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var (
		dec        *decode.Decoder
		decErr     error
		decErrs    int
		codec      string
		w, h       int
		first, pts time.Duration
		n          int
	)
	defer func() {
		if dec != nil {
			dec.Close()
		}
	}()
	runErr := src.Run(pctx, func(p frame.Packet) {
		if n >= probeFrames || decErr != nil {
			return
		}
		if dec == nil {
			codec = p.Codec.Name
			if dec, decErr = decode.New(p.Codec); decErr != nil {
				cancel()
				return
			}
		}
		frames, err := dec.Decode(p)
		if err != nil {
			decErrs++
		}
		for _, fr := range frames {
			if n == 0 {
				first = fr.PTS
				w, h = fr.Image.Width, fr.Image.Height
			}
			pts = fr.PTS
			n++
			fr.Release()
		}
		if n >= probeFrames {
			cancel()
		}
	})
	where := config.RedactURL(c.URL)
	switch {
	case decErr != nil:
		return fail(fmt.Sprintf("%s: the %s stream cannot be decoded: %v", where, codec, decErr),
			"set the camera's stream to H.264 or H.265 (main or high profile) in its web page")
	case n == 0 && decErrs > 0:
		return fail(fmt.Sprintf("%s: %d %s packets, none decodable", where, decErrs, codec),
			"the stream is damaged or in a profile FFmpeg cannot decode: set the camera to H.264 main profile; with UDP losses set transport: tcp")
	case n == 0:
		return fail(where+": "+cameraError(runErr, timeout), cameraFix(runErr, c.ID))
	}
	fps := 0.0
	if n > 1 && pts > first {
		fps = float64(n-1) / (pts - first).Seconds()
	}
	ck.Status = CheckPass
	ck.Detail = fmt.Sprintf("%s: %s %dx%d at %.1f fps (%d frames decoded)", where, codec, w, h, fps, n)
	ck.Data = map[string]any{"codec": codec, "width": w, "height": h, "fps": fps}
	if n < probeFrames {
		ck.Status = CheckWarn
		ck.Detail += fmt.Sprintf("; only %d of %d frames within %s", n, probeFrames, timeout)
		ck.Fix = "the camera delivers slowly: check its frame rate setting and the network's bandwidth"
	}
	return ck
}

func cameraError(err error, timeout time.Duration) string {
	if err == nil || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Sprintf("no frame within %s", timeout)
	}
	return err.Error()
}

func cameraFix(err error, id string) string {
	switch {
	case errors.Is(err, rtsp.ErrUnauthorized):
		return "the camera refuses the user or password in cameras[].url of " + id + ": check them in the camera's user settings (characters like @ : / must be percent-encoded in the URL)"
	case errors.Is(err, rtsp.ErrUnreachable):
		return "nothing answers at the URL's host and port: check the camera's power, cable and IP address (vigil-agent discover lists ONVIF cameras), the RTSP port (554 by default) and firewalls"
	case errors.Is(err, rtsp.ErrNotFound):
		return "the camera has no stream at that path: vigil-agent discover --user U --password P prints the camera's stream URIs"
	case errors.Is(err, rtsp.ErrNoVideo):
		return "the stream has no H.264 or H.265 video: set the camera's video encoding to H.264 or H.265"
	case err == nil || errors.Is(err, context.DeadlineExceeded):
		return "the camera accepted the session but sent no decodable frame: try transport: tcp (UDP may be blocked), and check the camera's stream settings"
	}
	return "check cameras[].url of " + id + " and the camera's RTSP settings"
}

// checkBroker reports the broker link. While the agent runs (its HTTP status answers), its own
// connection is what counts, and a second client with its client id would take its session;
// otherwise the doctor connects with the agent's client id, credentials and TLS settings,
// keeping the session (clean session off, as the agent) and disconnects again.
func checkBroker(ctx context.Context, cfg config.Config, timeout time.Duration) Check {
	ck := Check{Name: "broker"}
	where := config.RedactURL(cfg.MQTT.URL)
	if st, ok := runningAgentStatus(ctx, cfg); ok {
		ck.Data = map[string]any{"from": "running agent"}
		if st.MQTT.Connected {
			ck.Status, ck.Detail = CheckPass, "the running agent is connected to "+where
			return ck
		}
		ck.Status, ck.Detail = CheckFail, "the running agent is not connected to "+where+": "+cmpOr(st.MQTT.LastError, "no error reported yet")
		ck.Fix = brokerFix(errors.New(st.MQTT.LastError))
		return ck
	}
	id := cmpOr(cfg.MQTT.ClientID, cfg.DeviceID)
	opts := mqtt.NewClientOptions().AddBroker(cfg.MQTT.URL).SetClientID(id).
		SetUsername(cfg.MQTT.Username).SetPassword(cfg.MQTT.Password).
		SetCleanSession(false).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(timeout).SetKeepAlive(30 * time.Second)
	if cfg.MQTT.TLS.Enabled() {
		tc, err := publish.TLSConfig(cfg.MQTT.TLS)
		if err != nil {
			ck.Status, ck.Detail = CheckFail, err.Error()
			ck.Fix = "mqtt.tls: ca_file, cert_file and key_file must be readable PEM files"
			return ck
		}
		opts.SetTLSConfig(tc)
	}
	cl := mqtt.NewClient(opts)
	tok := cl.Connect()
	if !tok.WaitTimeout(timeout + time.Second) {
		ck.Status, ck.Detail = CheckFail, fmt.Sprintf("%s: no answer within %s", where, timeout)
		ck.Fix = brokerFix(nil)
		return ck
	}
	if err := tok.Error(); err != nil {
		ck.Status, ck.Detail, ck.Fix = CheckFail, where+": "+err.Error(), brokerFix(err)
		return ck
	}
	cl.Disconnect(250)
	tlsNote := "without TLS"
	if cfg.MQTT.TLS.Enabled() || strings.HasPrefix(cfg.MQTT.URL, "ssl:") || strings.HasPrefix(cfg.MQTT.URL, "tls:") || strings.HasPrefix(cfg.MQTT.URL, "mqtts:") {
		tlsNote = "over TLS"
	}
	user := "anonymously"
	if cfg.MQTT.Username != "" {
		user = "as " + cfg.MQTT.Username
	}
	ck.Status, ck.Detail = CheckPass, fmt.Sprintf("connected to %s %s %s with client id %s", where, tlsNote, user, id)
	return ck
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func brokerFix(err error) string {
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var certErr *tls.CertificateVerificationError
	var opErr *net.OpError
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	switch {
	case errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) || errors.Is(err, packets.ErrorRefusedNotAuthorised) ||
		strings.Contains(msg, "bad user name or password") || strings.Contains(msg, "not Authorized"):
		// Mosquitto answers a wrong password with "not authorised" too (MQTT 3.1.1 code 5).
		return "the broker refuses this identity: check mqtt.username and mqtt.password (or VIGIL_MQTT_PASSWORD) against the broker's credentials; " +
			"a Vigil fleet broker also requires the client id (mqtt.client_id, default device_id) to equal device_id"
	case errors.As(err, &unknownCA) || errors.As(err, &certErr) || strings.Contains(msg, "certificate signed by unknown authority"):
		return "the broker's certificate is not signed by mqtt.tls.ca_file: set ca_file to the CA that signed the broker's certificate"
	case errors.As(err, &hostErr) || strings.Contains(msg, "certificate is valid for"):
		return "the broker's certificate does not name the host in mqtt.url: use the name the certificate is issued for"
	case strings.Contains(msg, "tls:") || strings.Contains(msg, "first record does not look like a TLS handshake"):
		return "TLS handshake failed: use ssl:// with a TLS port (8883) and tcp:// with a plain one (1883)"
	case errors.As(err, &opErr) || strings.Contains(msg, "connection refused") || strings.Contains(msg, "no route"):
		return "nothing accepts connections at mqtt.url: check the host and port, that the broker runs, and firewalls"
	}
	return "check mqtt.url (tcp://host:1883 or ssl://host:8883), the network path to the broker and that it runs"
}

// runningAgentStatus asks the agent's own HTTP server for its status; ok is false when no
// agent of this device answers there.
func runningAgentStatus(ctx context.Context, cfg config.Config) (Status, bool) {
	if cfg.HTTP.Listen == "" {
		return Status{}, false
	}
	host, port, err := net.SplitHostPort(cfg.HTTP.Listen)
	if err != nil {
		return Status{}, false
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/api/v1/status", nil)
	if err != nil {
		return Status{}, false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Status{}, false
	}
	defer resp.Body.Close()
	var st Status
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st) != nil || st.DeviceID != cfg.DeviceID {
		return Status{}, false
	}
	return st, true
}

// outboxMinFree is the free space below which the outbox check fails outright.
const outboxMinFree = 16 << 20

// checkOutbox checks that the outbox's folder exists or can be made, takes a file, and has
// room for the outbox's size cap.
func checkOutbox(oc config.Outbox) Check {
	ck := Check{Name: "outbox"}
	dir := filepath.Dir(oc.Path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		ck.Status, ck.Detail = CheckFail, fmt.Sprintf("outbox folder %s: %v", dir, err)
		ck.Fix = "outbox.path must be in a folder the agent's user can write (the package uses /var/lib/vigil)"
		return ck
	}
	f, err := os.CreateTemp(dir, ".doctor-*")
	if err != nil {
		ck.Status, ck.Detail = CheckFail, fmt.Sprintf("outbox folder %s is not writable: %v", dir, err)
		ck.Fix = "give the agent's user write access to " + dir + " (chown vigil: " + dir + "), or set outbox.path elsewhere"
		return ck
	}
	_, werr := f.Write(make([]byte, 4096))
	serr := f.Sync()
	f.Close()
	os.Remove(f.Name())
	if err := errors.Join(werr, serr); err != nil {
		ck.Status, ck.Detail = CheckFail, fmt.Sprintf("writing in %s: %v", dir, err)
		ck.Fix = "the filesystem refuses writes (full, read-only or failing): check dmesg and df"
		return ck
	}
	if st, err := os.Stat(oc.Path); err == nil {
		if st.IsDir() {
			ck.Status, ck.Detail, ck.Fix = CheckFail, oc.Path+" is a folder", "outbox.path must name a file, e.g. /var/lib/vigil/outbox.db"
			return ck
		}
		if fh, err := os.OpenFile(oc.Path, os.O_RDWR, 0); err != nil {
			ck.Status, ck.Detail = CheckFail, fmt.Sprintf("outbox file: %v", err)
			ck.Fix = "give the agent's user read and write access to " + oc.Path
			return ck
		} else {
			fh.Close()
		}
	}
	var fs syscall.Statfs_t
	if err := syscall.Statfs(dir, &fs); err != nil {
		ck.Status, ck.Detail, ck.Fix = CheckWarn, fmt.Sprintf("free space of %s: %v", dir, err), "check the filesystem with df"
		return ck
	}
	free := int64(fs.Bavail) * int64(fs.Bsize)
	ck.Data = map[string]any{"path": oc.Path, "free_bytes": free, "max_bytes": oc.HardMaxBytes}
	detail := fmt.Sprintf("%s is writable; %s free, the outbox may take up to %s", dir, mib(free), mib(oc.HardMaxBytes))
	switch {
	case free < outboxMinFree:
		ck.Status, ck.Detail, ck.Fix = CheckFail, detail, "free space on "+dir+"'s filesystem, or move outbox.path to a larger one"
	case free < oc.HardMaxBytes:
		ck.Status, ck.Detail, ck.Fix = CheckWarn, detail, "the disk fills before the outbox's cap: lower outbox.max_bytes and hard_max_bytes or free space"
	default:
		ck.Status, ck.Detail = CheckPass, detail
	}
	return ck
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

// Kernel clock discipline (adjtimex(2)): STA_UNSYNC is set while no time daemon (ntpd,
// chrony, systemd-timesyncd) keeps the clock synchronised; it is what timedatectl shows as
// "System clock synchronized".
const (
	staUnsync = 0x0040
	timeError = 5 // TIME_ERROR: the clock is not synchronised
)

// clockFloor is a time every correct clock is past: before it, the clock was never set (a
// board without a real-time clock starts in 1970 or at its image's build date).
var clockFloor = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// checkClock says whether the kernel clock is synchronised (adjtimex) and plausible.
func checkClock(now time.Time, adjtimex func(*syscall.Timex) (int, error)) Check {
	ck := Check{Name: "clock"}
	if now.Before(clockFloor) || now.Year() > 2100 {
		ck.Status = CheckFail
		ck.Detail = fmt.Sprintf("the clock says %s, which cannot be right", now.UTC().Format(time.RFC3339))
		ck.Fix = "set the time (timedatectl set-ntp true, or date -s) and enable NTP: events are stamped with this clock and TLS certificates look invalid"
		return ck
	}
	var tx syscall.Timex
	state, err := adjtimex(&tx)
	if err != nil {
		ck.Status, ck.Detail = CheckWarn, "cannot read the kernel clock state (adjtimex): "+err.Error()
		ck.Fix = "check with timedatectl status that the clock is synchronised"
		return ck
	}
	maxErr := time.Duration(tx.Maxerror) * time.Microsecond
	ck.Data = map[string]any{"time": now.UTC().Format(time.RFC3339), "synchronised": false, "max_error_ms": maxErr.Milliseconds()}
	if state == timeError || tx.Status&staUnsync != 0 {
		ck.Status = CheckWarn
		ck.Detail = fmt.Sprintf("%s, but not synchronised (kernel adjtimex: STA_UNSYNC set, as timedatectl's \"System clock synchronized: no\")",
			now.UTC().Format(time.RFC3339))
		ck.Fix = "enable a time daemon: timedatectl set-ntp true (systemd-timesyncd) or install chrony, and allow NTP (UDP 123) to its servers"
		return ck
	}
	ck.Data["synchronised"] = true
	ck.Status = CheckPass
	ck.Detail = fmt.Sprintf("%s, synchronised (kernel adjtimex: STA_UNSYNC clear, max error %s)", now.UTC().Format(time.RFC3339), maxErr)
	if maxErr > time.Second {
		ck.Status, ck.Fix = CheckWarn, "the clock's error bound exceeds 1 s: check the time daemon's servers (chronyc sources, timedatectl timesync-status)"
	}
	return ck
}

// checkDrone listens on the MAVLink endpoint until an autopilot heartbeat arrives.
func checkDrone(ctx context.Context, d config.Drone, timeout time.Duration) Check {
	ck := Check{Name: "drone"}
	if !d.Enabled() {
		ck.Status, ck.Detail = CheckSkip, "drone mode is off (no drone.mavlink)"
		return ck
	}
	mc, err := mavlink.New(mavlink.Config{Endpoint: d.MAVLink, MaxAge: d.MaxAge, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		ck.Status, ck.Detail, ck.Fix = CheckFail, err.Error(), "fix drone.mavlink: udp://host:port, tcp://host:port or serial:///dev/ttyX:baud"
		return ck
	}
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := mc.Start(lctx); err != nil {
		ck.Status, ck.Detail = CheckFail, err.Error()
		ck.Fix = "the MAVLink endpoint cannot be opened: the port may be taken by the running agent (stop it to test the link) or the serial device missing"
		return ck
	}
	defer mc.Close()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-lctx.Done():
			st := mc.Stats()
			ck.Status = CheckFail
			ck.Detail = fmt.Sprintf("no autopilot HEARTBEAT on %s within %s (%d messages, %d parse errors)", d.MAVLink, timeout, total(st.Messages), st.ParseErrors)
			ck.Fix = "check the telemetry cable or the autopilot's MAVLink output (its serial port protocol and baud rate, or its UDP target address and port)"
			return ck
		case <-tick.C:
			if s := mc.Snapshot(); s.LinkUp {
				ck.Status = CheckPass
				ck.Detail = fmt.Sprintf("autopilot system %d heard on %s (type %d, autopilot %d)", s.SystemID, d.MAVLink, s.VehicleType, s.Autopilot)
				if s.Pose == nil {
					ck.Status, ck.Fix = CheckWarn, "no pose yet ("+s.PoseError+"): detections are not geo-referenced until GPS and attitude arrive"
					ck.Detail += "; no pose yet"
				}
				return ck
			}
		}
	}
}

func total(m map[string]uint64) uint64 {
	var n uint64
	for _, v := range m {
		n += v
	}
	return n
}

func cmdDoctor(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file (YAML)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	timeout := fs.Duration("timeout", 10*time.Second, "time allowed to each camera, the broker and the drone link")
	runs := fs.Int("model-runs", 5, "timed inferences of the model check")
	strict := fs.Bool("strict", false, "warnings fail too")
	if err := fs.Parse(args); err != nil {
		return parseExit(err)
	}
	var r DoctorReport
	cfg, err := config.Load(*path, os.Environ())
	if err != nil {
		r.Checks = []Check{{Name: "config", Status: CheckFail, Detail: err.Error(),
			Fix: "edit the keys named above in " + cmpOr(*path, "the configuration") + " (vigil-agent check-config --config FILE checks it again)"}}
	} else {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		r = Doctor(ctx, cfg, DoctorOptions{Timeout: *timeout, ModelRuns: *runs, Strict: *strict})
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
	} else {
		printReport(stdout, r)
	}
	if !r.OK {
		return 1
	}
	return 0
}

func printReport(w io.Writer, r DoctorReport) {
	fails := 0
	for _, c := range r.Checks {
		fmt.Fprintf(w, "%-4s  %-14s %s\n", strings.ToUpper(c.Status), c.Name, strings.ReplaceAll(c.Detail, "\n", "\n                     "))
		if c.Fix != "" && c.Status != CheckPass && c.Status != CheckSkip {
			fmt.Fprintf(w, "      %-14s fix: %s\n", "", c.Fix)
		}
		if c.Status == CheckFail {
			fails++
		}
	}
	switch {
	case r.OK:
		fmt.Fprintln(w, "doctor: no check failed")
	case fails == 0:
		fmt.Fprintln(w, "doctor: warnings fail with --strict")
	default:
		fmt.Fprintf(w, "doctor: %d check(s) failed\n", fails)
	}
}
