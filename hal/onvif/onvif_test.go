package onvif_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/hal/onvif"
	"github.com/vigil-edge/vigil/hal/onvif/onvifsim"
)

// The test vector of the ONVIF Application Programmer's Guide (UsernameToken digest).
func TestPasswordDigestVector(t *testing.T) {
	nonce := []byte{0x2c, 0xaa, 0x88, 0xe8, 0x6f, 0xc0, 0x8a, 0x42, 0x82, 0x42, 0xb3, 0x74, 0xce, 0xa6, 0x45, 0x96} // LKqI6G/AikKCQrN0zqZFlg==
	if got := onvif.PasswordDigest(nonce, "2010-09-16T07:50:45Z", "userpassword"); got != "tuOSpGlFlIXsozq4HFNeeGeFLEI=" {
		t.Fatalf("digest %s, want tuOSpGlFlIXsozq4HFNeeGeFLEI=", got)
	}
}

func TestProbeRoundTrip(t *testing.T) {
	id := onvif.NewMessageID()
	p, err := onvif.ParseProbe(onvif.ProbeMessage(id))
	if err != nil || p.MessageID != id || len(p.Types) != 1 || p.Types[0] != "dp0:NetworkVideoTransmitter" {
		t.Fatalf("ParseProbe(ProbeMessage) = %+v, %v", p, err)
	}
	m := onvif.ProbeMatch{Endpoint: "urn:uuid:1", Types: []string{"dn:NetworkVideoTransmitter"},
		Scopes: []string{"onvif://www.onvif.org/name/Front%20Gate", "onvif://www.onvif.org/hardware/X1"},
		XAddrs: []string{"http://127.0.0.1:80/onvif/device_service", "ftp://x"}}
	rel, ms, err := onvif.ParseProbeMatches(onvif.ProbeMatchesMessage(id, m, 3))
	if err != nil || rel != id || len(ms) != 1 {
		t.Fatalf("ParseProbeMatches = %q, %+v, %v", rel, ms, err)
	}
	if ms[0].Name() != "Front Gate" || ms[0].Hardware() != "X1" || len(ms[0].XAddrs) != 1 {
		t.Errorf("match %+v: name %q hardware %q", ms[0], ms[0].Name(), ms[0].Hardware())
	}
	if _, _, err := onvif.ParseProbeMatches(onvif.ProbeMessage(id)); !errors.Is(err, onvif.ErrNotProbeMatches) {
		t.Errorf("a Probe parsed as ProbeMatches: %v", err)
	}
	if _, _, err := onvif.ParseProbeMatches([]byte(`<!DOCTYPE x [<!ENTITY a "aaaa">]><Envelope/>`)); err == nil {
		t.Error("a DTD was accepted")
	}
}

func TestProbeRequiresAnAddress(t *testing.T) {
	if _, err := onvif.Probe(context.Background(), onvif.ProbeOptions{}); err == nil {
		t.Fatal("Probe without an address must refuse (no default destination)")
	}
}

// Probe (unicast to the simulator on loopback), then the media service with a digest.
func TestProbeAndStreamsAgainstSimulator(t *testing.T) {
	cam, err := onvifsim.Start(onvifsim.Config{User: "admin", Password: "pw", Name: "Yard", Hardware: "SimCam",
		Profiles: []onvifsim.Profile{
			{Token: "P1", Name: "main", Encoding: "H264", Width: 1920, Height: 1080, FPS: 25, URI: "rtsp://127.0.0.1:8554/main"},
			{Token: "P2", Name: "sub", Encoding: "H265", Width: 640, Height: 360, FPS: 10, URI: "rtsp://127.0.0.1:8554/sub"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Close()
	ctx := context.Background()
	ms, err := onvif.Probe(ctx, onvif.ProbeOptions{Addr: cam.ProbeAddr(), Wait: time.Second})
	if err != nil || len(ms) != 1 {
		t.Fatalf("Probe: %+v, %v", ms, err)
	}
	if ms[0].XAddrs[0] != cam.DeviceURL() || ms[0].Name() != "Yard" {
		t.Errorf("match %+v", ms[0])
	}
	cl := &onvif.Client{HTTP: &http.Client{Timeout: 5 * time.Second}, User: "admin", Password: "pw"}
	got, err := cl.Streams(ctx, ms[0])
	if err != nil || len(got.Streams) != 2 {
		t.Fatalf("Streams: %+v, %v", got, err)
	}
	if s := got.Streams[0]; s.URI != "rtsp://127.0.0.1:8554/main" || s.Profile.Width != 1920 || s.Profile.FPS != 25 || s.Profile.Encoding != "H264" {
		t.Errorf("stream 0: %+v", s)
	}
	bad := &onvif.Client{HTTP: &http.Client{Timeout: 5 * time.Second}, User: "admin", Password: "wrong"}
	if _, err := bad.Streams(ctx, ms[0]); !errors.Is(err, onvif.ErrNotAuthorized) {
		t.Errorf("wrong password: %v, want ErrNotAuthorized", err)
	}
	if cam.AuthFailures() == 0 {
		t.Error("the simulator saw no refused request")
	}
}

// A device naming a media service on another host is not followed (credentials stay home).
func TestMediaServiceOnAnotherHostIsRefused(t *testing.T) {
	cam, err := onvifsim.Start(onvifsim.Config{User: "admin", Password: "pw", Name: "X", MediaHost: "127.0.0.2",
		Profiles: []onvifsim.Profile{{Token: "P1", Name: "main", Encoding: "H264", URI: "rtsp://127.0.0.1/x"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer cam.Close()
	ms, err := onvif.Probe(context.Background(), onvif.ProbeOptions{Addr: cam.ProbeAddr(), Wait: time.Second})
	if err != nil || len(ms) != 1 {
		t.Fatalf("Probe: %v %v", ms, err)
	}
	cl := &onvif.Client{HTTP: &http.Client{Timeout: 5 * time.Second}, User: "admin", Password: "pw"}
	if _, err := cl.Streams(context.Background(), ms[0]); err == nil || !strings.Contains(err.Error(), "another host") {
		t.Errorf("Streams: %v", err)
	}
}

func TestParseFaultAndResponses(t *testing.T) {
	f := onvif.ParseFault(400, []byte(`<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><e:Fault><e:Code><e:Value>e:Sender</e:Value>`+
		`<e:Subcode><e:Value>ter:NotAuthorized</e:Value></e:Subcode></e:Code><e:Reason><e:Text xml:lang="en">Sender not Authorized</e:Text></e:Reason></e:Fault></e:Body></e:Envelope>`))
	if f == nil || !errors.Is(f, onvif.ErrNotAuthorized) || f.Reason != "Sender not Authorized" {
		t.Errorf("fault %+v", f)
	}
	if _, err := onvif.ParseStreamURI([]byte(`<Envelope><Body><GetStreamUriResponse><MediaUri><Uri>http://evil/</Uri></MediaUri></GetStreamUriResponse></Body></Envelope>`)); err == nil {
		t.Error("a non-RTSP stream URI was accepted")
	}
	ps, err := onvif.ParseProfiles([]byte(`<Envelope><Body><GetProfilesResponse><Profiles token="a"><Name>n</Name></Profiles><Profiles><Name>no token</Name></Profiles></GetProfilesResponse></Body></Envelope>`))
	if err != nil || len(ps) != 1 || ps[0].Encoding != "" {
		t.Errorf("profiles %+v, %v", ps, err)
	}
}
