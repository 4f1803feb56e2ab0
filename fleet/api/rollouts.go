package api

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/vigil-edge/vigil/fleet/rollout"
)

// maxSpecBytes bounds a rollout request's body.
const maxSpecBytes = 64 << 10

// Rollouts is what the rollout endpoints drive; its methods may be called concurrently.
// Errors wrap rollout.ErrInvalid (400), rollout.ErrNotFound (404), rollout.ErrState (409) or
// rollout.ErrUnavailable (503).
type Rollouts interface {
	Create(spec rollout.Spec) (rollout.Rollout, error)
	List() []rollout.Rollout
	Get(id string) (rollout.Rollout, bool)
	Pause(id string) (rollout.Rollout, error)
	Resume(id string) (rollout.Rollout, error)
	Abort(id string) (rollout.Rollout, error)
}

// FallibleReads is an optional ability of Rollouts whose reads can fail (instances reading a
// shared database, see fleet/postgres): the endpoints then read through it and answer a
// failure with its error.
type FallibleReads interface {
	ListErr() ([]rollout.Rollout, error)
	GetErr(id string) (rollout.Rollout, bool, error)
}

// RegisterRollouts adds the rollout endpoints to mux; bodies are rollout.Spec and
// rollout.Rollout as JSON:
//
//	POST /api/v1/rollouts                 create (201, the rollout); the body is a Spec
//	GET  /api/v1/rollouts                 every rollout, oldest first
//	GET  /api/v1/rollouts/{id}            one rollout with each device's progress
//	POST /api/v1/rollouts/{id}/pause      (and resume, abort): the rollout after the change
func RegisterRollouts(mux *http.ServeMux, ro Rollouts, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	h := &rolloutHandlers{ro: ro, handlers: handlers{log: log.With("component", "api")}}
	mux.HandleFunc("POST /api/v1/rollouts", h.create)
	mux.HandleFunc("GET /api/v1/rollouts", h.list)
	mux.HandleFunc("GET /api/v1/rollouts/{id}", h.get)
	mux.HandleFunc("POST /api/v1/rollouts/{id}/{action}", h.action)
}

type rolloutHandlers struct {
	handlers
	ro Rollouts
}

// DecodeSpec reads a rollout request body: one JSON Spec, no unknown fields, nothing after it.
func DecodeSpec(r io.Reader) (rollout.Spec, error) {
	var s rollout.Spec
	dec := json.NewDecoder(io.LimitReader(r, maxSpecBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, err
	}
	if dec.More() {
		return s, errors.New("more than one JSON value")
	}
	return s, nil
}

func (h *rolloutHandlers) create(w http.ResponseWriter, r *http.Request) {
	spec, err := DecodeSpec(r.Body)
	if err != nil {
		h.write(w, http.StatusBadRequest, Error{Error: "rollout spec: " + err.Error()})
		return
	}
	ro, err := h.ro.Create(spec)
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("Location", "/api/v1/rollouts/"+ro.ID)
	h.write(w, http.StatusCreated, ro)
}

func (h *rolloutHandlers) list(w http.ResponseWriter, _ *http.Request) {
	if fr, ok := h.ro.(FallibleReads); ok {
		rs, err := fr.ListErr()
		if err != nil {
			h.fail(w, err)
			return
		}
		h.write(w, http.StatusOK, rs)
		return
	}
	h.write(w, http.StatusOK, h.ro.List())
}

func (h *rolloutHandlers) get(w http.ResponseWriter, r *http.Request) {
	var ro rollout.Rollout
	var ok bool
	if fr, is := h.ro.(FallibleReads); is {
		var err error
		if ro, ok, err = fr.GetErr(r.PathValue("id")); err != nil {
			h.fail(w, err)
			return
		}
	} else {
		ro, ok = h.ro.Get(r.PathValue("id"))
	}
	if !ok {
		h.write(w, http.StatusNotFound, Error{Error: "unknown rollout " + r.PathValue("id")})
		return
	}
	h.write(w, http.StatusOK, ro)
}

func (h *rolloutHandlers) action(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var fn func(string) (rollout.Rollout, error)
	switch r.PathValue("action") {
	case "pause":
		fn = h.ro.Pause
	case "resume":
		fn = h.ro.Resume
	case "abort":
		fn = h.ro.Abort
	default:
		h.write(w, http.StatusNotFound, Error{Error: "no such action: " + r.PathValue("action") + " (pause, resume, abort)"})
		return
	}
	ro, err := fn(id)
	if err != nil {
		h.fail(w, err)
		return
	}
	h.write(w, http.StatusOK, ro)
}

func (h *rolloutHandlers) fail(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, rollout.ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, rollout.ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, rollout.ErrState):
		code = http.StatusConflict
	case errors.Is(err, rollout.ErrUnavailable):
		code = http.StatusServiceUnavailable
		h.log.Warn("rollout request", "err", err)
	default:
		h.log.Warn("rollout request", "err", err)
	}
	h.write(w, code, Error{Error: strings.TrimSpace(err.Error())})
}
