package wire

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"testing"
)

func testJPEG(t testing.TB) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 16, 8))
	for i := range img.Pix {
		img.Pix[i] = byte(i)
	}
	img.Set(1, 1, color.White)
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestPictureRoundTrip(t *testing.T) {
	raw := testJPEG(t)
	p := Picture{Header: Header{Schema: SchemaSnapshot, DeviceID: "edge-1", Seq: 7, MsgID: "edge-1-ab-7", CapturedAt: 1700000000000},
		Camera: "gate", EventID: "01HZX5S3K8Q2W6V7Y8Z9A0B1C2", Width: 16, Height: 8}
	b, err := EncodePicture(p, raw)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodePicture(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got != p {
		t.Errorf("decoded %+v, want %+v", got, p)
	}
	// Still a JPEG any decoder reads, of the same size.
	cfg, err := jpeg.DecodeConfig(bytes.NewReader(b))
	if err != nil || cfg.Width != 16 || cfg.Height != 8 {
		t.Errorf("payload as JPEG: %+v %v", cfg, err)
	}
	if _, err := DecodePicture(b, len(b)-1); !errors.Is(err, ErrPictureSize) {
		t.Errorf("over the limit: %v", err)
	}
}

func TestPictureBad(t *testing.T) {
	raw := testJPEG(t)
	good, _ := EncodePicture(Picture{Header: Header{Schema: SchemaSnapshot}}, raw)
	for _, tt := range []struct {
		name    string
		payload []byte
		want    error
	}{
		{"json", []byte(`{"schema":"vigil.snapshot/1"}`), ErrNotJPEG},
		{"png", []byte("\x89PNG\r\n\x1a\n...."), ErrNotJPEG},
		{"plain jpeg", raw, ErrNoHeader},
		{"truncated", good[:len(good)-10], ErrTruncated},
		{"comment too long", append([]byte{0xFF, 0xD8, 0xFF, 0xFE, 0xFF, 0xFF}, '{'), ErrBadHeader},
		{"comment not json", append([]byte{0xFF, 0xD8, 0xFF, 0xFE, 0, 5, 'a', 'b', 'c'}, raw[2:]...), ErrBadHeader},
	} {
		if _, err := DecodePicture(tt.payload, 0); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := EncodePicture(Picture{}, []byte("not a jpeg")); !errors.Is(err, ErrNotJPEG) {
		t.Errorf("encode non-JPEG: %v", err)
	}
}

func TestSnapshotTopic(t *testing.T) {
	id := "01HZX5S3K8Q2W6V7Y8Z9A0B1C2"
	topic := SnapshotTopic("edge-1", "gate", id)
	if topic != "vigil/v1/edge-1/snapshots/gate/"+id {
		t.Fatal(topic)
	}
	d, c, e, err := ParseSnapshotTopic(topic)
	if err != nil || d != "edge-1" || c != "gate" || e != id {
		t.Errorf("%q %q %q %v", d, c, e, err)
	}
	for _, bad := range []string{"vigil/v1/edge-1/snapshots/gate", "vigil/v1/edge-1/events/gate/" + id,
		"vigil/v1/edge-1/snapshots/gate/not-a-ulid", "vigil/v1/e dge/snapshots/gate/" + id, "x/v1/edge-1/snapshots/gate/" + id} {
		if _, _, _, err := ParseSnapshotTopic(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzDecodePicture(f *testing.F) {
	raw := testJPEG(f)
	good, _ := EncodePicture(Picture{Header: Header{Schema: SchemaSnapshot, DeviceID: "d", Seq: 1, MsgID: "d-e-1"}, Camera: "c"}, raw)
	f.Add(good)
	f.Add(raw)
	f.Add([]byte{0xFF, 0xD8, 0xFF, 0xFE, 0, 4, '{', '}', 0xFF, 0xD9})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePicture(b, 1<<20)
		if err != nil {
			return
		}
		// A decoded header encodes again; after that one normalisation (JSON replaces invalid
		// UTF-8), encoding and decoding are each other's inverse.
		tail := []byte{0xFF, 0xD8, 0xFF, 0xD9, 0xFF, 0xD9}
		again, err := EncodePicture(p, tail)
		if err != nil {
			return // a header longer than MaxPictureHeader once re-encoded
		}
		q, err := DecodePicture(again, 0)
		if err != nil {
			t.Fatalf("re-encoded picture does not decode: %v", err)
		}
		third, err := EncodePicture(q, tail)
		if err != nil {
			t.Fatal(err)
		}
		if r, err := DecodePicture(third, 0); err != nil || r != q {
			t.Errorf("round trip: %+v %v, want %+v", r, err, q)
		}
	})
}
