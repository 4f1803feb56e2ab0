package file

import (
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
)

// ErrNotVideo: the file is not a media file FFmpeg can read, or has no video stream.
var ErrNotVideo = errors.New("not a video")

// Config says which file to play and how.
type Config struct {
	Path     string // a local path or a file:// URL
	Realtime bool   // pace packets to their timestamps, as a camera would; else as fast as read
	Loop     bool   // start again at the end, PTS continuing to increase; else io.EOF at the end
}

// Source plays one video file. It implements ingest.Source: Run is called by one goroutine
// at a time.
type Source struct {
	cfg  Config
	path string // absolute local path
}

// LocalPath turns a plain path or a file:// URL (file:///abs/path, file://localhost/abs/path,
// percent-escapes allowed) into an absolute local path.
func LocalPath(s string) (string, error) {
	orig := s
	if s == "" {
		return "", errors.New("no path given")
	}
	if strings.HasPrefix(strings.ToLower(s), "file:") {
		u, err := url.Parse(s)
		if err != nil {
			return "", fmt.Errorf("bad file URL %q: %w", s, err)
		}
		if u.Host != "" && u.Host != "localhost" {
			return "", fmt.Errorf("bad file URL %q: host %q is not this machine (use file:///absolute/path)", orig, u.Host)
		}
		if u.Opaque != "" { // file:relative/path
			s = u.Opaque
		} else {
			s = u.Path
		}
		if s == "" {
			return "", fmt.Errorf("bad file URL %q: no path", orig)
		}
	}
	if strings.ContainsRune(s, 0) {
		return "", fmt.Errorf("bad path %q: contains a NUL byte", orig)
	}
	return filepath.Abs(s)
}

// Path is the absolute path of the file played.
func (s *Source) Path() string { return s.path }
