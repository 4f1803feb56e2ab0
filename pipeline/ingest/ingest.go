// Package ingest brings a camera's compressed video into the pipeline. Sources are chosen by
// URL scheme (rtsp:// and rtsps:// in rtsp/, file paths and file:// in file/); Supervise
// runs a Source for as long as the camera is configured, reconnecting with capped
// exponential back-off and restarting a session whose pictures stop (the watchdog).
package ingest

import (
	"context"

	"github.com/vigil-edge/vigil/pipeline/frame"
)

// Source produces one camera's compressed packets.
//
// Call contract: Run is called by one goroutine, and again only after the previous Run
// returned. It opens one session, calls sink for each packet in order from that goroutine,
// and returns nil when ctx is cancelled, io.EOF when a finite source (a file played once) is
// finished, or an error that names the camera's problem (unreachable, unauthorised,
// unsupported codec, not a video, ...). sink must return quickly: it never blocks the source.
type Source interface {
	Run(ctx context.Context, sink func(frame.Packet)) error
}
