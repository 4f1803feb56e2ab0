package api

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-edge/vigil/fleet/eventstore"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// Limits of GET /api/v1/events.
const (
	DefaultEventsLimit = 100
	MaxEventsLimit     = 10000
)

// exportPage is how many records the export reads per store query.
const exportPage = 500

// ParamError is a bad query parameter.
type ParamError struct {
	Param string // the parameter's name
	Err   error
}

func (e *ParamError) Error() string { return fmt.Sprintf("parameter %q: %v", e.Param, e.Err) }

func (e *ParamError) Unwrap() error { return e.Err }

// ParseEventsQuery reads the filters of GET /api/v1/events and /api/v1/events/export:
// device, camera, label, rule, kind (event, alert or detections), since and until (RFC 3339
// or UTC milliseconds; since inclusive, until exclusive; they bound the time the fleet
// received a record, not the device's captured_at) and limit (1-MaxEventsLimit; 0 in the
// result when absent). Unknown or repeated parameters are errors. Errors are *ParamError.
func ParseEventsQuery(q url.Values) (eventstore.Filter, error) {
	var f eventstore.Filter
	for name, vs := range q {
		if len(vs) != 1 {
			return f, &ParamError{name, errors.New("given more than once")}
		}
		v := vs[0]
		var err error
		switch name {
		case "device":
			f.Device = v
		case "camera":
			f.Camera = v
		case "label":
			f.Label = v
		case "rule":
			f.RuleID = v
		case "kind":
			switch v {
			case eventstore.KindEvent, eventstore.KindAlert, eventstore.KindDetections:
				f.Kind = v
			default:
				err = fmt.Errorf("%q is not event, alert or detections", v)
			}
		case "since":
			f.Since, err = parseTime(v)
		case "until":
			f.Until, err = parseTime(v)
		case "limit":
			n, perr := strconv.Atoi(v)
			if perr != nil || n < 1 || n > MaxEventsLimit {
				err = fmt.Errorf("%q is not a number from 1 to %d", v, MaxEventsLimit)
			}
			f.Limit = n
		default:
			err = errors.New("unknown parameter")
		}
		if err != nil {
			return eventstore.Filter{}, &ParamError{name, err}
		}
		if len(v) > 256 {
			return eventstore.Filter{}, &ParamError{name, errors.New("longer than 256 bytes")}
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Until.After(f.Since) {
		return eventstore.Filter{}, &ParamError{"until", errors.New("not after since")}
	}
	return f, nil
}

// parseTime reads RFC 3339 or UTC milliseconds since the epoch.
func parseTime(v string) (time.Time, error) {
	if v != "" && strings.Trim(v, "0123456789") == "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms > 1<<53 {
			return time.Time{}, fmt.Errorf("%q is out of range", v)
		}
		return time.UnixMilli(ms).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || t.Year() < 1970 || t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("%q is neither RFC 3339 nor milliseconds since 1970", v)
	}
	return t, nil
}

// RegisterEvents adds the event store's endpoints to mux:
//
//	GET /api/v1/events         JSON array of records, newest first (limit 100 by default)
//	GET /api/v1/events/export  NDJSON, one stored message per line, oldest first, streamed
//	GET /api/v1/events/{id}/snapshot.jpg  the event's picture (id: the event's ULID), when s keeps them
func RegisterEvents(mux *http.ServeMux, s eventstore.Store, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	h := &eventHandlers{s: s, handlers: handlers{log: log.With("component", "api")}}
	mux.HandleFunc("GET /api/v1/events", h.list)
	mux.HandleFunc("GET /api/v1/events/export", h.export)
	if snaps, ok := s.(eventstore.Snapshots); ok {
		mux.HandleFunc("GET /api/v1/events/{id}/snapshot.jpg", func(w http.ResponseWriter, r *http.Request) {
			h.snapshot(w, r, snaps)
		})
	}
}

func (h *eventHandlers) snapshot(w http.ResponseWriter, r *http.Request, s eventstore.Snapshots) {
	id := r.PathValue("id")
	if !wire.ValidULID(id) {
		h.write(w, http.StatusBadRequest, Error{Error: "event id " + strconv.Quote(id) + " is not a ULID"})
		return
	}
	b, err := s.Snapshot(r.Context(), id)
	switch {
	case errors.Is(err, eventstore.ErrNoSnapshot):
		h.write(w, http.StatusNotFound, Error{Error: "event " + id + " has no snapshot"})
		return
	case err != nil:
		h.log.Warn("snapshot", "event", id, "err", err)
		h.write(w, http.StatusInternalServerError, Error{Error: "event store: " + err.Error()})
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	// A better frame may replace it while the event lasts.
	w.Header().Set("Cache-Control", "private, no-cache")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(b)
}

type eventHandlers struct {
	s eventstore.Store
	handlers
}

func (h *eventHandlers) list(w http.ResponseWriter, r *http.Request) {
	f, err := ParseEventsQuery(r.URL.Query())
	if err != nil {
		h.write(w, http.StatusBadRequest, Error{Error: err.Error()})
		return
	}
	if f.Limit == 0 {
		f.Limit = DefaultEventsLimit
	}
	recs, err := h.s.Query(r.Context(), f)
	if err != nil {
		h.log.Warn("events query", "err", err)
		h.write(w, http.StatusInternalServerError, Error{Error: "event store: " + err.Error()})
		return
	}
	h.write(w, http.StatusOK, recs)
}

// export streams page by page, so that no store transaction stays open while a slow client
// reads. With no limit it streams every match.
func (h *eventHandlers) export(w http.ResponseWriter, r *http.Request) {
	f, err := ParseEventsQuery(r.URL.Query())
	if err != nil {
		h.write(w, http.StatusBadRequest, Error{Error: err.Error()})
		return
	}
	left := f.Limit // 0: no limit
	f.Oldest = true
	bw := bufio.NewWriterSize(w, 64<<10)
	flusher, _ := w.(http.Flusher)
	started := false
	for {
		f.Limit = exportPage
		if left > 0 {
			f.Limit = min(left, exportPage)
		}
		recs, err := h.s.Query(r.Context(), f)
		if err != nil {
			if !started {
				h.write(w, http.StatusInternalServerError, Error{Error: "event store: " + err.Error()})
			} else {
				h.log.Warn("events export stopped", "err", err)
			}
			return
		}
		if !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		for _, rec := range recs {
			_, _ = bw.Write(rec.Payload)
			_ = bw.WriteByte('\n')
		}
		if err := bw.Flush(); err != nil {
			return // the client went away
		}
		if flusher != nil {
			flusher.Flush()
		}
		if left > 0 {
			left -= len(recs)
			if left <= 0 {
				return
			}
		}
		if len(recs) < f.Limit {
			return
		}
		p := recs[len(recs)-1].Position()
		f.After = &p
	}
}
