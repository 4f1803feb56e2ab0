package fleet_test

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vigil-edge/vigil/fleet"
	"github.com/vigil-edge/vigil/fleet/internal/testpub"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

func pictureJPEG(t *testing.T, w, h int, noise bool) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
		if noise {
			img.Pix[i] = byte((i * 2654435761) >> 13)
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// publishSnapshot sends raw (a JPEG) as event id's snapshot under seq.
func publishSnapshot(t *testing.T, p *testpub.Publisher, seq uint64, camera, id string, raw []byte) {
	t.Helper()
	h := wire.Header{Schema: wire.SchemaSnapshot, DeviceID: p.Device, Seq: seq, MsgID: p.MsgID(seq), CapturedAt: time.Now().UnixMilli()}
	b, err := wire.EncodePicture(wire.Picture{Header: h, Camera: camera, EventID: id}, raw)
	if err != nil {
		t.Fatal(err)
	}
	p.Publish(wire.SnapshotTopic(p.Device, camera, id), b, false)
}

func fetch(t *testing.T, url string) (int, string, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// Snapshots travel beside their events; a snapshot of an unknown event, an oversized one and
// one that is not a JPEG are refused and counted, and cost the device no seq.
func TestSnapshotsAtTheFleet(t *testing.T) {
	c := start(t, fleet.Config{MQTTListen: "127.0.0.1:0"})
	base := "http://" + c.HTTPAddr()
	waitHealth(t, base, http.StatusOK)
	p := testpub.Connect(t, "tcp://"+c.BrokerAddr(), "edge-01")
	p.Online()

	publishEvent(t, p, 1, "gate", "person", "", time.Now())
	id := fmt.Sprintf("01KAP98VKVZ8M1C4A9R6H3T%03d", 1)
	raw := pictureJPEG(t, 64, 48, false)
	publishSnapshot(t, p, 2, "gate", id, raw)
	eventually(t, "the snapshot is served", func() (bool, string) {
		code, ct, b := fetch(t, base+"/api/v1/events/"+id+"/snapshot.jpg")
		if code != 200 {
			return false, fmt.Sprint(code, string(b))
		}
		pic, err := wire.DecodePicture(b, 0)
		cfg, jerr := jpeg.DecodeConfig(bytes.NewReader(b))
		return ct == "image/jpeg" && err == nil && pic.EventID == id && jerr == nil && cfg.Width == 64,
			fmt.Sprint(ct, pic, err, jerr)
	})

	unknown := "01KAP98VKVZ8M1C4A9R6H3TZZZ"
	publishSnapshot(t, p, 3, "gate", unknown, raw)
	// Over wire.MaxPictureBytes.
	big := pictureJPEG(t, 1200, 900, true)
	if len(big) <= wire.MaxPictureBytes {
		t.Fatalf("test picture of %d bytes is not over the limit", len(big))
	}
	publishSnapshot(t, p, 4, "gate", id, big)
	// A PNG with a JPEG's first bytes and our header: parses as a picture, not as a JPEG.
	fake, _ := wire.EncodePicture(wire.Picture{Header: wire.Header{Schema: wire.SchemaSnapshot, DeviceID: "edge-01", Seq: 5,
		MsgID: p.MsgID(5)}, Camera: "gate", EventID: id}, append([]byte{0xFF, 0xD8, 0xFF, 0xD9}, []byte("not an image\xFF\xD9")...))
	p.Publish(wire.SnapshotTopic("edge-01", "gate", id), fake, false)
	// Not a picture at all.
	p.Publish(wire.SnapshotTopic("edge-01", "gate", id), []byte(`{"schema":"vigil.snapshot/1"}`), false)
	publishEvent(t, p, 6, "gate", "car", "", time.Now())

	eventually(t, "the bad snapshots are counted", func() (bool, string) {
		m := scrapeMetrics(t, base)
		ok := strings.Contains(m, `vigil_fleet_snapshots_total{result="unknown_event"} 1`) &&
			strings.Contains(m, `vigil_fleet_snapshots_total{result="not_jpeg"} 1`) &&
			strings.Contains(m, `vigil_fleet_snapshots_total{result="stored"} 1`) &&
			strings.Contains(m, `vigil_fleet_rejected_total{reason="too_large"} 1`) &&
			strings.Contains(m, `vigil_fleet_rejected_total{reason="bad_picture"} 1`)
		return ok, grep(m, "snapshot", "rejected")
	})
	// The first picture is still the event's: nothing bad replaced it.
	if _, _, b := fetch(t, base+"/api/v1/events/"+id+"/snapshot.jpg"); !bytes.HasSuffix(b, raw[2:]) {
		t.Error("the stored snapshot changed")
	}
	if code, _, _ := fetch(t, base+"/api/v1/events/"+unknown+"/snapshot.jpg"); code != 404 {
		t.Errorf("unknown event's snapshot: %d", code)
	}
	if code, _, _ := fetch(t, base+"/api/v1/events/not-a-ulid/snapshot.jpg"); code != 400 {
		t.Errorf("bad id: %d", code)
	}
	d, _ := device(t, base, "edge-01")
	// Seq 4 (too large) was refused: a hole, as any refused message; 2, 3 and 5 passed the
	// registry (the store refused 3 and 5).
	if d.Missing != 1 || d.HighestSeq != 6 || d.Messages[wire.KindSnapshots] != 3 {
		t.Errorf("device after snapshots: missing %d, highest seq %d, messages %v", d.Missing, d.HighestSeq, d.Messages)
	}
}

func grep(s string, subs ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, sub := range subs {
			if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
