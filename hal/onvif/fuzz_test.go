package onvif_test

import (
	"testing"

	"github.com/vigil-edge/vigil/hal/onvif"
)

func seeds(f *testing.F) {
	m := onvif.ProbeMatch{Endpoint: "urn:uuid:1", Types: []string{"dn:NetworkVideoTransmitter"},
		Scopes: []string{"onvif://www.onvif.org/name/A"}, XAddrs: []string{"http://127.0.0.1/onvif/device_service"}}
	f.Add(onvif.ProbeMessage("urn:uuid:x"))
	f.Add(onvif.ProbeMatchesMessage("urn:uuid:x", m, 1))
	f.Add([]byte(`<Envelope><Body><GetProfilesResponse><Profiles token="a"><Name>n</Name><VideoEncoderConfiguration><Encoding>H264</Encoding><Resolution><Width>-1</Width><Height>9</Height></Resolution></VideoEncoderConfiguration></Profiles></GetProfilesResponse></Body></Envelope>`))
	f.Add([]byte(`<Envelope><Body><GetStreamUriResponse><MediaUri><Uri>rtsp://a/b</Uri></MediaUri></GetStreamUriResponse></Body></Envelope>`))
	f.Add([]byte(`<Envelope><Body><Fault><Code><Value>x</Value></Code></Fault></Body></Envelope>`))
	f.Add([]byte(`<!DOCTYPE a [<!ENTITY b "c">]><a>&b;</a>`))
	f.Add([]byte(`<a><a><a><a></a></a></a></a>`))
}

// The parsers of what cameras send never panic, and what they accept is consistent.
func FuzzParseProbeMatches(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		_, ms, err := onvif.ParseProbeMatches(b)
		if err != nil && len(ms) > 0 {
			t.Fatal("matches with an error")
		}
		for _, m := range ms {
			if len(m.XAddrs) == 0 {
				t.Fatal("a match without an address")
			}
			_, _ = m.Name(), m.Hardware()
		}
	})
}

func FuzzParseProbe(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := onvif.ParseProbe(b); err == nil && p.MessageID == "" {
			t.Fatal("a probe without id")
		}
	})
}

func FuzzParseMedia(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := onvif.ParseProfiles(b)
		for _, p := range ps {
			if err != nil || p.Token == "" || p.Width < 0 || p.Height < 0 || p.FPS < 0 {
				t.Fatalf("bad profile %+v (%v)", p, err)
			}
		}
		if u, err := onvif.ParseStreamURI(b); err == nil && u == "" {
			t.Fatal("empty URI accepted")
		}
		_ = onvif.ParseFault(400, b)
	})
}
