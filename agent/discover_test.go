package agent_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/vigil-edge/vigil/agent"
	"github.com/vigil-edge/vigil/agent/config"
	"github.com/vigil-edge/vigil/hal/onvif/onvifsim"
	"github.com/vigil-edge/vigil/testvideos/testharness"
)

// discover finds a simulated ONVIF camera by a unicast probe on loopback, gets its stream
// URIs with a digest-authenticated media service, and prints entries that, pasted into a
// configuration, pass the doctor's camera check against the real RTSP server.
func TestDiscoverPrintsWorkingCameraEntries(t *testing.T) {
	srv := startRTSP(t, "admin", "p@ss:word", petsClip)
	cam, err := onvifsim.Start(onvifsim.Config{User: "admin", Password: "p@ss:word", Name: "Front Gate", Hardware: "SimCam 2",
		Profiles: []onvifsim.Profile{
			{Token: "Profile_1", Name: "mainStream", Encoding: "H264", Width: 768, Height: 576, FPS: 10, URI: srv.URL("pedestrians_pets09_s2l1_vtest")},
			{Token: "Profile_2", Name: "mjpeg", Encoding: "JPEG", Width: 320, Height: 240, FPS: 5, URI: srv.URL("pedestrians_pets09_s2l1_vtest")}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cam.Close)

	var out, errOut bytes.Buffer
	t.Setenv("VIGIL_ONVIF_PASSWORD", "p@ss:word")
	code := agent.Main([]string{"discover", "--probe-addr", cam.ProbeAddr(), "--user", "admin", "--wait", "1s"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("discover: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	t.Logf("discover printed:\n%s", out.String())
	var pasted struct {
		Cameras []config.Camera `yaml:"cameras"`
	}
	if err := yaml.Unmarshal(out.Bytes(), &pasted); err != nil {
		t.Fatalf("output is not YAML: %v\n%s", err, out.String())
	}
	if len(pasted.Cameras) != 2 || pasted.Cameras[0].ID != "front-gate-mainstream" || pasted.Cameras[1].IsEnabled() {
		t.Fatalf("cameras %+v", pasted.Cameras)
	}
	if !strings.Contains(out.String(), "H264 768x576 at 10 fps") || !strings.Contains(out.String(), "SimCam 2") {
		t.Errorf("entries lack the profile description:\n%s", out.String())
	}

	// Paste the entries into a configuration: the doctor decodes the discovered stream.
	mq := testharness.StartMosquitto(t, testharness.MosquittoOptions{})
	cfg := doctorConfig(t, mq.URL, pasted.Cameras[0].URL)
	cfg.Cameras = pasted.Cameras
	for i := range cfg.Cameras {
		cfg.Cameras[i].ApplyDefaults()
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("pasted entries do not validate: %v", err)
	}
	r := doctor(t, cfg, agent.DoctorOptions{ModelRuns: 1})
	if c := findCheck(t, r, "camera/front-gate-mainstream"); c.Status != agent.CheckPass {
		t.Errorf("discovered camera: %s %s", c.Status, c.Detail)
	}

	// --json, --redact
	out.Reset()
	code = agent.Main([]string{"discover", "--probe-addr", cam.ProbeAddr(), "--user", "admin", "--wait", "1s", "--json", "--redact"}, &out, &errOut)
	var cams []agent.DiscoveredCamera
	if err := json.Unmarshal(out.Bytes(), &cams); err != nil || code != 0 || len(cams) != 1 || len(cams[0].Streams) != 2 {
		t.Fatalf("--json: exit %d, %v: %s", code, err, out.String())
	}
	if strings.Contains(out.String(), "p@ss") || !strings.Contains(cams[0].Streams[0].URL, "admin:PASSWORD@") {
		t.Errorf("--redact printed %s", cams[0].Streams[0].URL)
	}
}

func TestDiscoverWrongPasswordAndNoAddress(t *testing.T) {
	cam, err := onvifsim.Start(onvifsim.Config{User: "admin", Password: "right", Name: "Yard",
		Profiles: []onvifsim.Profile{{Token: "P", Name: "main", Encoding: "H264", URI: "rtsp://127.0.0.1:1/x"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cam.Close)
	var out, errOut bytes.Buffer
	code := agent.Main([]string{"discover", "--probe-addr", cam.ProbeAddr(), "--user", "admin", "--password", "wrong", "--wait", "1s"}, &out, &errOut)
	if code != 1 || !strings.Contains(out.String()+errOut.String(), "refused the user name or password") || cam.AuthFailures() == 0 {
		t.Errorf("wrong password: exit %d\n%s%s", code, out.String(), errOut.String())
	}

	// Without --probe-addr or --multicast nothing is sent: the command refuses.
	errOut.Reset()
	probes := cam.Probes()
	if code := agent.Main([]string{"discover", "--user", "admin"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "--multicast") {
		t.Errorf("no address: exit %d, %s", code, errOut.String())
	}
	if cam.Probes() != probes {
		t.Error("a probe was sent without an address")
	}
}
