package models

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Manifest describes a model file: which decoder reads its output, how its input is made,
// its labels and its default thresholds. It travels beside the model file (NAME.json) and is
// what the fleet signs for over-the-air updates.
type Manifest struct {
	Name     string     `json:"name"`
	Version  string     `json:"version"`
	Family   string     `json:"family"`           // decoder name: "yolox", "yolov8", "yolov5"
	File     string     `json:"file"`             // model file, relative to the manifest's folder
	SHA256   string     `json:"sha256,omitempty"` // hex digest of File; checked at load when set
	Input    Input      `json:"input"`
	Output   Output     `json:"output"`
	Labels   []string   `json:"labels"`
	Defaults Thresholds `json:"defaults"`

	// Dir is the folder the manifest was loaded from (not serialised).
	Dir string `json:"-"`
}

// Input describes the model's input tensor and how a BGR frame becomes it.
// A channel value v (0-255) becomes (v*Scale - Mean[c]) / Std[c], channels in ColorOrder.
type Input struct {
	Name       string     `json:"name"`        // tensor name
	Width      int        `json:"width"`       // pixels
	Height     int        `json:"height"`      // pixels
	ColorOrder string     `json:"color_order"` // "bgr" or "rgb"
	Scale      float32    `json:"scale"`       // 1 for 0-255 input, 1/255 for 0-1
	Mean       [3]float32 `json:"mean"`
	Std        [3]float32 `json:"std"`       // zero means 1
	Letterbox  string     `json:"letterbox"` // "top-left", "center" or "stretch"
	PadValue   uint8      `json:"pad_value"`
	// MaxBatch is the most frames one run takes, for a model whose input has a dynamic batch
	// dimension; 0 or 1: the batch is fixed at 1 (YOLOX-nano's is).
	MaxBatch int `json:"max_batch,omitempty"`
}

// Output names the model's output tensor.
type Output struct {
	Name string `json:"name"`
}

// Thresholds are a model's default score and NMS IoU thresholds.
type Thresholds struct {
	Score float32 `json:"score"`
	NMS   float32 `json:"nms"`
}

// ModelPath is the model file's path.
func (m Manifest) ModelPath() string {
	if filepath.IsAbs(m.File) {
		return m.File
	}
	return filepath.Join(m.Dir, m.File)
}

// Validate checks the manifest without I/O; the error names the first bad field.
func (m Manifest) Validate() error {
	bad := func(field, why string) error {
		return fmt.Errorf("%w: manifest %q: '%s' %s", ErrBadModel, m.Name, field, why)
	}
	switch {
	case m.Name == "":
		return bad("name", "is empty")
	case m.Family == "":
		return bad("family", "is empty")
	case m.File == "":
		return bad("file", "is empty")
	case m.Input.Width <= 0 || m.Input.Height <= 0:
		return bad("input.width/height", "must be > 0")
	case m.Input.ColorOrder != "bgr" && m.Input.ColorOrder != "rgb":
		return bad("input.color_order", "must be bgr or rgb")
	case m.Input.Scale <= 0:
		return bad("input.scale", "must be > 0")
	case m.Input.Letterbox != "top-left" && m.Input.Letterbox != "center" && m.Input.Letterbox != "stretch":
		return bad("input.letterbox", "must be top-left, center or stretch")
	case m.Input.MaxBatch < 0:
		return bad("input.max_batch", "must be >= 0")
	case len(m.Labels) == 0:
		return bad("labels", "is empty")
	case m.Defaults.Score <= 0 || m.Defaults.Score >= 1:
		return bad("defaults.score", "must be in (0,1)")
	case m.Defaults.NMS <= 0 || m.Defaults.NMS > 1:
		return bad("defaults.nms", "must be in (0,1]")
	}
	if m.SHA256 != "" && (len(m.SHA256) != 64 || strings.Trim(strings.ToLower(m.SHA256), "0123456789abcdef") != "") {
		return bad("sha256", "must be 64 hex digits")
	}
	return nil
}

// LoadManifest reads and validates a manifest file.
func LoadManifest(path string) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(path)
	if err != nil {
		return m, fmt.Errorf("read manifest: %w", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return m, fmt.Errorf("%w: manifest %s: %v", ErrBadModel, path, err)
	}
	m.Dir = filepath.Dir(path)
	return m, m.Validate()
}

// LabelIndex returns the class id of label, or -1.
func (m Manifest) LabelIndex(label string) int {
	for i, l := range m.Labels {
		if l == label {
			return i
		}
	}
	return -1
}

// HashFile returns the hex sha256 and the size of the file at path (a model artifact's
// checks: Manifest.SHA256 and Size).
func HashFile(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", n, fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
