package decode_test

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/vigil-edge/vigil/pipeline/decode"
	"github.com/vigil-edge/vigil/pipeline/frame"
	"github.com/vigil-edge/vigil/pipeline/ingest/file"
	"github.com/vigil-edge/vigil/testvideos/data"
)

// A file source's packets, decoded to YUV frames. In the agent the source's sink hands
// packets to the decode stage's goroutine instead of decoding in the sink.
func Example() {
	path, err := data.Path("videos/mot15_tud_campus.mp4")
	if err != nil {
		fmt.Println(err)
		return
	}
	src, err := file.New(file.Config{Path: path})
	if err != nil {
		fmt.Println(err)
		return
	}
	var (
		dec     *decode.Decoder
		openErr error
	)
	frames := 0
	use := func(fs []*frame.Frame) {
		for _, f := range fs {
			if frames++; frames == 1 {
				fmt.Printf("first frame %dx%d at %v\n", f.Image.Width, f.Image.Height, f.PTS)
			}
			f.Release() // its picture goes back to libavcodec's pool
		}
	}
	err = src.Run(context.Background(), func(p frame.Packet) {
		if dec == nil && openErr == nil {
			dec, openErr = decode.New(p.Codec)
		}
		if dec == nil {
			return
		}
		fs, derr := dec.Decode(p)
		if derr != nil {
			fmt.Println(derr) // count it and go on
		}
		use(fs)
	})
	if dec == nil {
		fmt.Println("no decoder:", openErr, err)
		return
	}
	defer dec.Close()
	if !errors.Is(err, io.EOF) {
		fmt.Println(err)
	}
	fs, _ := dec.Flush()
	use(fs)
	fmt.Println(frames, "frames with", dec.Name())
	// Output:
	// first frame 640x480 at 0s
	// 71 frames with mpeg4
}
