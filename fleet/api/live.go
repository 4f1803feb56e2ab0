package api

import (
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/vigil-edge/vigil/fleet/liveview"
	"github.com/vigil-edge/vigil/fleet/registry"
)

// LiveViews asks cameras for their current frame and keeps the answers (fleet/liveview).
type LiveViews interface {
	Request(device, camera string) (cmdID string, err error)
	Frame(device, camera string) (liveview.Frame, bool)
}

// LiveRequest is the answer to POST …/live.
type LiveRequest struct {
	CmdID    string `json:"cmd_id"`    // the command sent; the frame that answers it names it
	FrameURL string `json:"frame_url"` // where the frame will be
}

// RegisterLive adds the live view's endpoints to mux:
//
//	POST /api/v1/devices/{id}/cameras/{camera}/live      send a signed live_view command (202)
//	GET  /api/v1/devices/{id}/cameras/{camera}/live.jpg  the newest frame the camera sent back
func RegisterLive(mux *http.ServeMux, v LiveViews, devices Devices, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	h := &liveHandlers{v: v, devices: devices, handlers: handlers{log: log.With("component", "api")}}
	mux.HandleFunc("POST /api/v1/devices/{id}/cameras/{camera}/live", h.request)
	mux.HandleFunc("GET /api/v1/devices/{id}/cameras/{camera}/live.jpg", h.frame)
}

type liveHandlers struct {
	v       LiveViews
	devices Devices
	handlers
}

// known checks that the device exists and has the camera.
func (h *liveHandlers) known(w http.ResponseWriter, r *http.Request) (device, camera string, ok bool) {
	device, camera = r.PathValue("id"), r.PathValue("camera")
	d, found := h.devices.Device(device)
	if !found {
		h.write(w, http.StatusNotFound, Error{Error: "unknown device " + strconv.Quote(device)})
		return "", "", false
	}
	if !slices.ContainsFunc(d.Cameras, func(c registry.Camera) bool { return c.ID == camera }) {
		h.write(w, http.StatusNotFound, Error{Error: "device " + device + " has no camera " + strconv.Quote(camera)})
		return "", "", false
	}
	return device, camera, true
}

func (h *liveHandlers) request(w http.ResponseWriter, r *http.Request) {
	device, camera, ok := h.known(w, r)
	if !ok {
		return
	}
	id, err := h.v.Request(device, camera)
	switch {
	case errors.Is(err, liveview.ErrRateLimited):
		w.Header().Set("Retry-After", "2")
		h.write(w, http.StatusTooManyRequests, Error{Error: err.Error()})
		return
	case err != nil:
		h.write(w, http.StatusServiceUnavailable, Error{Error: err.Error()})
		return
	}
	h.write(w, http.StatusAccepted, LiveRequest{CmdID: id, FrameURL: "/api/v1/devices/" + device + "/cameras/" + camera + "/live.jpg"})
}

func (h *liveHandlers) frame(w http.ResponseWriter, r *http.Request) {
	device, camera, ok := h.known(w, r)
	if !ok {
		return
	}
	f, ok := h.v.Frame(device, camera)
	if !ok {
		h.write(w, http.StatusNotFound, Error{Error: "no live frame from " + device + "/" + camera + " yet"})
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", strconv.Itoa(len(f.JPEG)))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Vigil-Cmd-Id", f.CmdID)
	w.Header().Set("X-Vigil-Captured-At", f.CapturedAt.Format(time.RFC3339Nano))
	_, _ = w.Write(f.JPEG)
}
