package testharness

import "testing"

func TestSchemasRejectAndAccept(t *testing.T) {
	good := `{"schema":"vigil.status/1","device_id":"edge-1","seq":1,"msg_id":"edge-1-a-1","captured_at":1763800000000,"state":"online"}`
	if err := ValidateJSON("status", []byte(good)); err != nil {
		t.Fatalf("valid status rejected: %v", err)
	}
	for name, bad := range map[string]string{
		"bad state":     `{"schema":"vigil.status/1","device_id":"edge-1","seq":1,"msg_id":"x","captured_at":1,"state":"maybe"}`,
		"unknown field": `{"schema":"vigil.status/1","device_id":"edge-1","seq":1,"msg_id":"x","captured_at":1,"state":"online","extra":1}`,
		"missing seq":   `{"schema":"vigil.status/1","device_id":"edge-1","msg_id":"x","captured_at":1,"state":"online"}`,
		"bad device":    `{"schema":"vigil.status/1","device_id":"a/b","seq":1,"msg_id":"x","captured_at":1,"state":"online"}`,
	} {
		if err := ValidateJSON("status", []byte(bad)); err == nil {
			t.Errorf("%s: accepted %s", name, bad)
		}
	}
	det := `{"schema":"vigil.detections/1","device_id":"e","seq":2,"msg_id":"m","captured_at":5,"camera":"c","frame_seq":1,
	"frame_width":640,"frame_height":480,"model":{"name":"n","version":"1","sha256":""},"inference_ms":12.5,
	"objects":[{"label":"person","class_id":0,"score":0.9,"box_px":[1,2,30,40],"box_norm":[0,0,0.5,0.5]}]}`
	if err := ValidateJSON("detections", []byte(det)); err != nil {
		t.Fatalf("valid detections rejected: %v", err)
	}
	if err := ValidateJSON("detections", []byte(`{"schema":"vigil.detections/1"}`)); err == nil {
		t.Fatal("detections without fields accepted")
	}
}

func TestMosquittoStartsAndStops(t *testing.T) {
	m := StartMosquitto(t, MosquittoOptions{})
	if m.Port == 0 || m.URL == "" {
		t.Fatalf("no address: %+v", m)
	}
	m.Stop()
	m.Restart()
	m.Stop()
}
