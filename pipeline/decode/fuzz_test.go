package decode_test

import (
	"testing"

	"github.com/vigil-edge/vigil/pipeline/decode"
	"github.com/vigil-edge/vigil/pipeline/frame"
)

// FuzzDecode feeds arbitrary bytes to the decoders cameras and files use: errors are fine,
// crashes, bad frames and a decoder that stops working are not.
func FuzzDecode(f *testing.F) {
	codecs := []frame.Codec{
		{Name: "h264"}, {Name: "hevc"}, {Name: "mpeg4", Width: 64, Height: 48},
		{Name: "msmpeg4v3", Width: 64, Height: 48}, {Name: "mjpeg"},
	}
	f.Add(uint8(0), []byte{0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1e, 0xd9, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80, 0, 0, 0, 1, 0x65, 0x88, 0x84})
	f.Add(uint8(1), []byte{0, 0, 0, 1, 0x40, 0x01, 0x0c, 0x01, 0xff, 0xff, 0, 0, 0, 1, 0x26, 0x01, 0xaf})
	f.Add(uint8(2), []byte{0, 0, 1, 0xb0, 1, 0, 0, 1, 0xb5, 0x89, 0x13, 0, 0, 1, 0xb6, 0x10})
	f.Add(uint8(3), []byte{0x85, 0x3f, 0xd4, 0x80, 0x00, 0xa2})
	f.Add(uint8(4), []byte{0xff, 0xd8, 0xff, 0xe0, 0, 0x10, 'J', 'F', 'I', 'F', 0, 0xff, 0xd9})
	f.Fuzz(func(t *testing.T, which uint8, b []byte) {
		c := codecs[int(which)%len(codecs)]
		d, err := decode.New(&c)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		check := func(fs []*frame.Frame) {
			for _, fr := range fs {
				if !fr.Image.Valid() {
					t.Fatalf("%s: invalid image %dx%d stride %d, %d bytes", c.Name, fr.Image.Width, fr.Image.Height, fr.Image.Stride, len(fr.Image.Pix))
				}
				fr.Release()
			}
		}
		for _, p := range [][]byte{b, b[:len(b)/2], b[len(b)/2:], b} {
			fs, _ := d.Decode(frame.Packet{Codec: &c, Data: p})
			check(fs)
		}
		fs, _ := d.Flush()
		check(fs)
	})
}
