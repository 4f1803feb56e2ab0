package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockRate is the RTP clock of H.264 and H.265 video.
const clockRate = 90000

// clip is one file, ready to stream: its access units in decode order with their times.
type clip struct {
	name   string // path in the URL
	path   string // source file
	codec  string // CodecH264 or CodecH265
	width  int
	height int
	aus    []AccessUnit
	pts    []int64 // per AU, clockRate units, from the start of the clip
	dts    []int64 // per AU, clockRate units, non-decreasing, dts[0] == 0
	period int64   // length of one loop, clockRate units
	params [][]byte
}

// probeInfo is what ffprobe tells about a file's first video stream.
type probeInfo struct {
	codec    string
	width    int
	height   int
	fps      float64
	timeBase [2]int64 // num, den
	pts, dts []int64  // per packet, in timeBase units; nil when unknown
}

type ffprobeOut struct {
	Streams []struct {
		CodecName    string `json:"codec_name"`
		CodecType    string `json:"codec_type"`
		Width        int    `json:"width"`
		Height       int    `json:"height"`
		RFrameRate   string `json:"r_frame_rate"`
		AvgFrameRate string `json:"avg_frame_rate"`
		TimeBase     string `json:"time_base"`
	} `json:"streams"`
	Packets []struct {
		PTS *int64 `json:"pts"`
		DTS *int64 `json:"dts"`
	} `json:"packets"`
}

// probe runs ffprobe on path.
func probe(ctx context.Context, path string) (probeInfo, error) {
	cmd := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,codec_type,width,height,r_frame_rate,avg_frame_rate,time_base:packet=pts,dts",
		"-of", "json", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return probeInfo{}, fmt.Errorf("ffprobe %s: %w: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	var p ffprobeOut
	if err := json.Unmarshal(out, &p); err != nil {
		return probeInfo{}, fmt.Errorf("ffprobe %s: parse output: %w", path, err)
	}
	if len(p.Streams) == 0 || p.Streams[0].CodecType != "video" {
		return probeInfo{}, fmt.Errorf("%s: not a video file (ffprobe finds no video stream)", path)
	}
	s := p.Streams[0]
	info := probeInfo{codec: s.CodecName, width: s.Width, height: s.Height}
	info.fps = parseRate(s.AvgFrameRate)
	if info.fps <= 0 || info.fps > 240 {
		info.fps = parseRate(s.RFrameRate)
	}
	if info.fps <= 0 || info.fps > 240 {
		return probeInfo{}, fmt.Errorf("%s: cannot tell the frame rate (avg %q, r %q)", path, s.AvgFrameRate, s.RFrameRate)
	}
	if num, den, ok := parseFraction(s.TimeBase); ok && num > 0 && den > 0 {
		info.timeBase = [2]int64{num, den}
		info.pts = make([]int64, 0, len(p.Packets))
		info.dts = make([]int64, 0, len(p.Packets))
		for _, pk := range p.Packets {
			if pk.PTS == nil || pk.DTS == nil {
				info.pts, info.dts = nil, nil
				break
			}
			info.pts = append(info.pts, *pk.PTS)
			info.dts = append(info.dts, *pk.DTS)
		}
	}
	return info, nil
}

func parseFraction(s string) (num, den int64, ok bool) {
	a, b, found := strings.Cut(s, "/")
	n, err1 := strconv.ParseInt(a, 10, 64)
	d := int64(1)
	var err2 error
	if found {
		d, err2 = strconv.ParseInt(b, 10, 64)
	}
	return n, d, err1 == nil && err2 == nil
}

func parseRate(s string) float64 {
	n, d, ok := parseFraction(s)
	if !ok || d == 0 {
		return 0
	}
	return float64(n) / float64(d)
}

// prepareClip probes path and produces its H.264/H.265 access units: a remux of the
// elementary stream when the file already holds one, else a transcode to H.264 cached in
// cacheDir.
func prepareClip(ctx context.Context, path, cacheDir string, log *slog.Logger) (*clip, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("video file %s: %w", path, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("video file %s: is a folder", path)
	}
	info, err := probe(ctx, path)
	if err != nil {
		return nil, err
	}
	c := &clip{
		name:   strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)),
		path:   path,
		width:  info.width,
		height: info.height,
	}
	var es []byte
	switch info.codec {
	case "h264", "hevc":
		c.codec = info.codec
		es, err = remux(ctx, path, info.codec)
	default:
		c.codec = CodecH264
		info.pts, info.dts = nil, nil // the transcode has no B-frames: times follow the frame rate
		es, err = transcodeCached(ctx, path, st, cacheDir, info.fps, log)
	}
	if err != nil {
		return nil, err
	}
	c.aus = SplitAccessUnits(c.codec, SplitNALUs(es))
	if len(c.aus) == 0 {
		return nil, fmt.Errorf("%s: no pictures in its %s stream", path, c.codec)
	}
	c.collectParams()
	if len(c.params) != len(paramSetTypes(c.codec)) {
		return nil, fmt.Errorf("%s: its %s stream has no parameter sets", path, c.codec)
	}
	if !IsKey(c.codec, c.aus[0]) {
		return nil, fmt.Errorf("%s: its %s stream does not start with a key frame", path, c.codec)
	}
	c.prependParams()
	c.setTimes(info)
	return c, nil
}

// collectParams keeps the first parameter sets of the stream (for the SDP).
func (c *clip) collectParams() {
	types := paramSetTypes(c.codec)
	found := make([][]byte, len(types))
	for _, au := range c.aus {
		for _, n := range au {
			t := naluType(c.codec, n)
			for i, want := range types {
				if t == want && found[i] == nil {
					found[i] = n
				}
			}
		}
	}
	c.params = nil
	for _, p := range found {
		if p == nil {
			return
		}
		c.params = append(c.params, p)
	}
}

// prependParams makes every key frame carry the parameter sets in-band, so that a reader
// joining mid-stream (or one that ignores the SDP) can decode from any key frame.
func (c *clip) prependParams() {
	types := paramSetTypes(c.codec)
	for i, au := range c.aus {
		if !IsKey(c.codec, au) {
			continue
		}
		has := 0
		for _, n := range au {
			for _, want := range types {
				if naluType(c.codec, n) == want {
					has++
				}
			}
		}
		if has >= len(types) {
			continue
		}
		withParams := make(AccessUnit, 0, len(au)+len(c.params))
		withParams = append(withParams, c.params...)
		withParams = append(withParams, au...)
		c.aus[i] = withParams
	}
}

// setTimes gives each AU its presentation and decode time: from the container's packets when
// they match the AUs one to one (this keeps B-frame reordering right), else from the frame
// rate.
func (c *clip) setTimes(info probeInfo) {
	n := len(c.aus)
	c.pts, c.dts = make([]int64, n), make([]int64, n)
	frame := int64(math.Round(clockRate / info.fps))
	if frame <= 0 {
		frame = 1
	}
	if len(info.pts) == n && info.timeBase[1] > 0 {
		conv := func(v int64) int64 { return v * clockRate * info.timeBase[0] / info.timeBase[1] }
		d0 := conv(info.dts[0])
		ok := true
		for i := range n {
			c.pts[i], c.dts[i] = conv(info.pts[i])-d0, conv(info.dts[i])-d0
			if c.pts[i] < c.dts[i] || i > 0 && c.dts[i] < c.dts[i-1] {
				ok = false
				break
			}
		}
		if ok {
			c.period = c.dts[n-1] + frame
			return
		}
	}
	for i := range n {
		c.pts[i] = int64(i) * frame
		c.dts[i] = c.pts[i]
	}
	c.period = int64(n) * frame
}

// remux extracts the elementary stream of a file that already holds H.264 or H.265.
func remux(ctx context.Context, path, codec string) ([]byte, error) {
	bsf := "h264_mp4toannexb"
	if codec == CodecH265 {
		bsf = "hevc_mp4toannexb"
	}
	cmd := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-v", "error", "-i", path,
		"-map", "0:v:0", "-an", "-c:v", "copy", "-bsf:v", bsf, "-f", codec, "pipe:1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("extract the %s stream of %s: %w: %s", codec, path, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// cacheKey names the transcode of a source by its absolute path, size and modification time.
func cacheKey(path string, st os.FileInfo) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d\x00%d\x00libx264-v1", abs, st.Size(), st.ModTime().UnixNano())))
	name := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	return name + "-" + hex.EncodeToString(h[:8]) + ".h264"
}

// transcodeCached returns the H.264 transcode of path from cacheDir, making it first when
// missing. The file appears atomically (temporary file + rename), so a concurrent or killed
// run never leaves a partial one behind under the final name.
func transcodeCached(ctx context.Context, path string, st os.FileInfo, cacheDir string, fps float64, log *slog.Logger) ([]byte, error) {
	final := filepath.Join(cacheDir, cacheKey(path, st))
	if b, err := os.ReadFile(final); err == nil && len(b) > 0 {
		return b, nil
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("transcode cache: %w", err)
	}
	tmp, err := os.CreateTemp(cacheDir, filepath.Base(final)+".*.tmp")
	if err != nil {
		return nil, fmt.Errorf("transcode cache: %w", err)
	}
	tmpName := tmp.Name()
	_ = tmp.Close()
	defer os.Remove(tmpName) // a no-op after the rename

	gop := strconv.Itoa(max(1, int(math.Round(fps))))
	cmd := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-v", "error", "-y", "-i", path,
		"-map", "0:v:0", "-an", "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
		"-bf", "0", "-g", gop, "-keyint_min", gop, "-sc_threshold", "0",
		"-f", "h264", tmpName)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("transcode %s to H.264: %w: %s", path, err, strings.TrimSpace(stderr.String()))
	}
	b, err := os.ReadFile(tmpName)
	if err != nil {
		return nil, fmt.Errorf("transcode %s: %w", path, err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("transcode %s: ffmpeg wrote nothing", path)
	}
	if err := os.Rename(tmpName, final); err != nil {
		return nil, fmt.Errorf("transcode cache: %w", err)
	}
	log.Info("transcoded to H.264", "file", path, "cache", final, "took", time.Since(start).Round(time.Millisecond))
	return b, nil
}
