// Package logflag gives every binary the same logging flags, --log-level and --log-format, and
// makes the slog.Logger they describe. Errors are logged under the key "err" everywhere.
package logflag

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Flags are the logging settings of a command line.
type Flags struct {
	Level  string // debug, info, warn, error
	Format string // text or json
}

// Register adds --log-level (default level) and --log-format (default text) to fs.
func (f *Flags) Register(fs *flag.FlagSet, level string) {
	fs.StringVar(&f.Level, "log-level", level, "log level: debug, info, warn or error")
	fs.StringVar(&f.Format, "log-format", "text", "log format: text (key=value) or json (one object a line)")
}

// New makes the logger writing to w; a bad level or format is an error naming the flag.
func (f Flags) New(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.Level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", f.Level)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch strings.ToLower(f.Format) {
	case "text", "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", f.Format)
	}
}
