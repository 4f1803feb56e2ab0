package api

import (
	"errors"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/vigil-edge/vigil/fleet/catalog"
)

// Model is one model version as the API lists it.
type Model struct {
	Name        string    `json:"name"`
	Version     string    `json:"version"`
	Family      string    `json:"family"`
	File        string    `json:"file"`
	SHA256      string    `json:"sha256"`
	Size        int64     `json:"size"`
	Signature   string    `json:"signature"` // base64 ed25519 of the manifest's bytes
	KeyID       string    `json:"key_id"`
	AddedAt     time.Time `json:"added_at"`
	Bad         bool      `json:"bad"`
	BadReason   string    `json:"bad_reason,omitempty"`
	URL         string    `json:"url"`
	ManifestURL string    `json:"manifest_url"`
}

// Models is what the model endpoints read; its methods may be called concurrently.
type Models interface {
	List() ([]catalog.Model, error)
	// OpenArtifact opens a version's artifact; the caller closes it. The error wraps
	// catalog.ErrNotFound for an unknown version.
	OpenArtifact(name, version string) (*os.File, catalog.Model, error)
	// Manifest returns a version's manifest bytes as signed.
	Manifest(name, version string) ([]byte, catalog.Model, error)
}

// RegisterModels adds the model endpoints to mux:
//
//	GET /models/{name}/{version}/model.onnx     the artifact, with Range support
//	GET /models/{name}/{version}/manifest.json  the signed manifest, byte for byte
//	GET /api/v1/models                          every version (Model), sorted by name@version
//
// publicURL is the base of the URLs in the list (e.g. http://fleet:8080).
func RegisterModels(mux *http.ServeMux, m Models, publicURL string, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	h := &modelHandlers{m: m, base: publicURL, handlers: handlers{log: log.With("component", "api")}}
	mux.HandleFunc("GET /models/{name}/{version}/model.onnx", h.artifact)
	mux.HandleFunc("GET /models/{name}/{version}/"+catalog.ManifestFile, h.manifest)
	mux.HandleFunc("GET /api/v1/models", h.list)
}

type modelHandlers struct {
	handlers
	m    Models
	base string
}

func (h *modelHandlers) list(w http.ResponseWriter, _ *http.Request) {
	ms, err := h.m.List()
	if err != nil {
		h.log.Warn("list models", "err", err)
		h.write(w, http.StatusInternalServerError, Error{Error: "list models: " + err.Error()})
		return
	}
	out := make([]Model, 0, len(ms))
	for _, m := range ms {
		out = append(out, FromModel(m, h.base))
	}
	h.write(w, http.StatusOK, out)
}

func (h *modelHandlers) artifact(w http.ResponseWriter, r *http.Request) {
	f, m, err := h.m.OpenArtifact(r.PathValue("name"), r.PathValue("version"))
	if err != nil {
		h.fail(w, err)
		return
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("ETag", `"`+m.SHA256+`"`)
	http.ServeContent(w, r, "", st.ModTime(), f)
}

func (h *modelHandlers) manifest(w http.ResponseWriter, r *http.Request) {
	b, m, err := h.m.Manifest(r.PathValue("name"), r.PathValue("version"))
	if err != nil {
		h.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Vigil-Signature", m.Signature)
	w.Header().Set("X-Vigil-Key-Id", m.KeyID)
	if _, err := w.Write(b); err != nil {
		h.log.Debug("write manifest", "err", err)
	}
}

func (h *modelHandlers) fail(w http.ResponseWriter, err error) {
	if errors.Is(err, catalog.ErrNotFound) {
		h.write(w, http.StatusNotFound, Error{Error: err.Error()})
		return
	}
	h.log.Warn("serve model", "err", err)
	h.write(w, http.StatusInternalServerError, Error{Error: "model unavailable"})
}

// FromModel converts a registry record to its API form; base is the fleet's public URL.
func FromModel(m catalog.Model, base string) Model {
	ref := m.Ref(base)
	return Model{Name: m.Name, Version: m.Version, Family: m.Family, File: m.File, SHA256: m.SHA256,
		Size: m.Size, Signature: m.Signature, KeyID: m.KeyID, AddedAt: m.AddedAt, Bad: m.Bad,
		BadReason: m.BadReason, URL: ref.URL, ManifestURL: ref.ManifestURL}
}
