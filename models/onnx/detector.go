//go:build cgo

// Package onnx runs detection models with ONNX Runtime (github.com/yalue/onnxruntime_go): a
// Detector letterboxes a frame into the model's input tensor (a decoder's YUV frame, or a crop
// of one, straight through libswscale; a BGR image through OpenCV), runs the model, decodes the
// output with the family's models.Decoder, maps boxes back to the frame and applies NMS.
//
// ONNX Runtime's environment is process-global; Load (called by Open) creates it once.
// Importing this package registers the yolox, yolov8 and yolov5 decoder families.
package onnx

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/vigil-edge/vigil/models"
	_ "github.com/vigil-edge/vigil/models/yolov8" // registers "yolov8" and "yolov5"
	_ "github.com/vigil-edge/vigil/models/yolox"  // registers "yolox"
)

// Options tune a Detector. The zero value is valid.
type Options struct {
	// Threads is ONNX Runtime's intra-op thread count; 0 means 1.
	Threads int
	// Spin lets idle intra-op threads busy-wait between work items. With Threads > 1 it is
	// faster (PETS frame, 2 threads: ~12 ms against ~16 ms) but keeps the cores busy that the
	// rest of the pipeline needs; off by default. It does nothing with one thread.
	Spin bool
	// Score and NMS override the manifest's default thresholds; 0 keeps the default.
	Score, NMS float32
	// Labels keeps only detections of these labels (matched as models.Manifest.ResolveLabel
	// does); empty keeps all. A label the model does not know is an error at Open.
	Labels []string
	// Batch above 1 opens the session for runs of up to Batch frames (DetectBatch, Batcher):
	// the manifest must declare input.max_batch >= Batch, and the model a dynamic batch
	// dimension. 0 or 1: one frame a run.
	Batch int
}

// Detector is a models.Detector backed by one ONNX Runtime session. It owns its input and
// output tensors and its OpenCV buffers, reused from frame to frame.
type Detector struct {
	m       models.Manifest
	dec     models.Decoder
	score   float32
	nms     float32
	keep    []bool // by class id; nil keeps all
	session *ort.AdvancedSession
	batch   *batchRun // instead of session when opened with Options.Batch > 1 (batch.go)
	in      *ort.Tensor[float32]
	out     *ort.Tensor[float32]
	outDims []int64

	lut     [3][256]float32 // byte value -> input value, per input channel
	srcByte [3]int          // input channel -> byte offset in a BGR pixel
	sc      scaler          // letterboxed YUV frame, reused
	geom    geometry        // of the previous frame; the padding is written when it changes
	cands   []models.Detection
}

var (
	_ models.Detector         = (*Detector)(nil)
	_ models.FilteredDetector = (*Detector)(nil)
)

// Open loads the model that m describes and prepares a session for it. It checks the file's
// sha256 when the manifest sets one, that the file is an ONNX model, that its input is a
// float32 tensor of shape [1 3 H W] matching the manifest, and that the family's decoder
// accepts its output shape. Errors about the model wrap models.ErrBadModel and name the file.
func Open(m models.Manifest, opts Options) (*Detector, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	path := m.ModelPath()
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read model %q: %w", m.Name, err)
	}
	if m.SHA256 != "" {
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); !strings.EqualFold(got, m.SHA256) {
			return nil, fmt.Errorf("%w: model file %s: sha256 is %s, manifest %q expects %s", models.ErrBadModel, path, got, m.Name, strings.ToLower(m.SHA256))
		}
	}
	d := &Detector{m: m, score: m.Defaults.Score, nms: m.Defaults.NMS}
	if opts.Score != 0 {
		d.score = opts.Score
	}
	if opts.NMS != 0 {
		d.nms = opts.NMS
	}
	if !(d.score > 0 && d.score < 1) || !(d.nms > 0 && d.nms <= 1) {
		return nil, fmt.Errorf("model %q: score threshold %v must be in (0,1) and NMS IoU %v in (0,1]", m.Name, d.score, d.nms)
	}
	if len(opts.Labels) > 0 {
		d.keep = make([]bool, len(m.Labels))
		for _, l := range opts.Labels {
			id := m.ResolveLabel(l)
			if id < 0 {
				return nil, fmt.Errorf("model %q has no label %q (it has %s)", m.Name, l, strings.Join(m.Labels, ", "))
			}
			d.keep[id] = true
		}
	}
	if d.dec, err = models.NewDecoder(m); err != nil {
		return nil, err
	}
	if _, err := Load(); err != nil {
		return nil, err
	}
	inputs, outputs, err := ort.GetInputOutputInfoWithONNXData(data)
	if err != nil {
		return nil, fmt.Errorf("%w: model file %s is not a loadable ONNX model: %v", models.ErrBadModel, path, err)
	}
	inInfo, err := pick(inputs, m.Input.Name, "input", path)
	if err != nil {
		return nil, err
	}
	outInfo, err := pick(outputs, m.Output.Name, "output", path)
	if err != nil {
		return nil, err
	}
	H, W := int64(m.Input.Height), int64(m.Input.Width)
	if opts.Batch > 1 && m.Input.MaxBatch < opts.Batch {
		return nil, fmt.Errorf("%w: batch of %d frames asked for, but manifest %q takes at most %d a run (input.max_batch %d; a fixed batch dimension is 1)",
			models.ErrBadModel, opts.Batch, m.Name, max(m.Input.MaxBatch, 1), m.Input.MaxBatch)
	}
	if m.Input.MaxBatch > 1 && (len(inInfo.Dimensions) == 0 || inInfo.Dimensions[0] > 0) {
		return nil, fmt.Errorf("%w: model %s: manifest %q declares input.max_batch %d but the model's batch dimension is fixed (input shape %v)",
			models.ErrBadModel, path, m.Name, m.Input.MaxBatch, []int64(inInfo.Dimensions))
	}
	if !shapeFits(inInfo.Dimensions, []int64{1, 3, H, W}) {
		return nil, fmt.Errorf("%w: model %s input shape %v does not match manifest %v", models.ErrBadModel, path, []int64(inInfo.Dimensions), []int64{1, 3, H, W})
	}
	d.outDims = slices.Clone([]int64(outInfo.Dimensions))
	if len(d.outDims) > 0 && d.outDims[0] == -1 {
		d.outDims[0] = 1
	}
	for _, v := range d.outDims {
		if v <= 0 {
			return nil, fmt.Errorf("%w: model %s output %q has a dynamic shape %v; only fixed output shapes are supported", models.ErrBadModel, path, outInfo.Name, []int64(outInfo.Dimensions))
		}
	}
	ok := false
	defer func() {
		if !ok {
			d.Close()
		}
	}()
	if d.in, err = ort.NewEmptyTensor[float32](ort.NewShape(1, 3, H, W)); err != nil {
		return nil, fmt.Errorf("model %q: input tensor: %w", m.Name, err)
	}
	if d.out, err = ort.NewEmptyTensor[float32](ort.NewShape(d.outDims...)); err != nil {
		return nil, fmt.Errorf("model %q: output tensor: %w", m.Name, err)
	}
	// The zeroed output tensor checks the decoder against the model's output shape now,
	// rather than on the first frame.
	if _, err := d.dec.Decode(nil, d.out.GetData(), d.outDims, 2, len(m.Labels)); err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("model %q: session options: %w", m.Name, err)
	}
	defer so.Destroy()
	threads := max(opts.Threads, 1)
	spin := "0"
	if opts.Spin {
		spin = "1"
	}
	if err := errors.Join(
		so.SetIntraOpNumThreads(threads),
		so.SetInterOpNumThreads(1),
		so.AddSessionConfigEntry("session.intra_op.allow_spinning", spin),
	); err != nil {
		return nil, fmt.Errorf("model %q: session options: %w", m.Name, err)
	}
	if sharedArena() {
		// Activations come from the process's one arena, allocated tensor by tensor (a
		// memory pattern would reserve each session's whole peak on its own).
		if err := errors.Join(
			so.AddSessionConfigEntry("session.use_env_allocators", "1"),
			so.SetMemPattern(false),
		); err != nil {
			return nil, fmt.Errorf("model %q: session options: %w", m.Name, err)
		}
	}
	if opts.Batch > 1 {
		d.batch, err = newBatchRun(data, inInfo.Name, outInfo.Name, opts.Batch, so)
	} else {
		d.session, err = ort.NewAdvancedSessionWithONNXData(data, []string{inInfo.Name}, []string{outInfo.Name},
			[]ort.Value{d.in}, []ort.Value{d.out}, so)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: model file %s: create session: %v", models.ErrBadModel, path, err)
	}
	d.setupInput()
	trimHeap() // creating a session leaves freed work memory behind
	ok = true
	return d, nil
}

// pick finds the tensor named name (or the only one when name is empty) and checks that it
// holds float32 values.
func pick(infos []ort.InputOutputInfo, name, what, path string) (ort.InputOutputInfo, error) {
	var names []string
	for _, in := range infos {
		names = append(names, in.Name)
	}
	i := -1
	switch {
	case name != "":
		i = slices.IndexFunc(infos, func(in ort.InputOutputInfo) bool { return in.Name == name })
	case len(infos) == 1:
		i = 0
	}
	if i < 0 {
		return ort.InputOutputInfo{}, fmt.Errorf("%w: model %s has no %s %q (it has %q)", models.ErrBadModel, path, what, name, names)
	}
	in := infos[i]
	if in.OrtValueType != ort.ONNXTypeTensor || in.DataType != ort.TensorElementDataTypeFloat {
		return in, fmt.Errorf("%w: model %s %s %q is %s, want a float32 tensor", models.ErrBadModel, path, what, in.Name, in.String())
	}
	return in, nil
}

// shapeFits reports whether a model's dimensions match want, a dynamic dimension (<= 0)
// matching anything.
func shapeFits(got ort.Shape, want []int64) bool {
	if len(got) != len(want) {
		return false
	}
	for i, g := range got {
		if g > 0 && g != want[i] {
			return false
		}
	}
	return true
}

// setupInput builds the byte-to-input lookup tables from the manifest's colour order and
// normalisation.
func (d *Detector) setupInput() {
	in := d.m.Input
	d.srcByte = [3]int{0, 1, 2}
	if in.ColorOrder == "rgb" {
		d.srcByte = [3]int{2, 1, 0}
	}
	for c := range 3 {
		std := in.Std[c]
		if std == 0 {
			std = 1
		}
		for v := range 256 {
			d.lut[c][v] = (float32(v)*in.Scale - in.Mean[c]) / std
		}
	}
}

// Manifest returns the manifest the detector was opened with.
func (d *Detector) Manifest() models.Manifest { return d.m }

// Thresholds returns the score and NMS IoU thresholds in use.
func (d *Detector) Thresholds() models.Thresholds {
	return models.Thresholds{Score: d.score, NMS: d.nms}
}

// Detect implements models.Detector. ctx is checked before the frame is prepared and before
// inference; a running inference is not interrupted.
func (d *Detector) Detect(ctx context.Context, img models.Image) ([]models.Detection, error) {
	return d.DetectFiltered(ctx, img, models.Filter{})
}

// DetectFiltered implements models.FilteredDetector: Detect with f's score (when above the
// detector's), NMS IoU and labels (both applied after the detector's own label filter).
func (d *Detector) DetectFiltered(ctx context.Context, img models.Image, f models.Filter) ([]models.Detection, error) {
	if d.batch != nil {
		res, errs := d.DetectBatch(ctx, []models.Image{img}, []models.Filter{f})
		return res[0], errs[0]
	}
	if d.session == nil {
		return nil, errors.New("onnx: Detect after Close")
	}
	if !img.Valid() {
		return nil, fmt.Errorf("%w: %dx%d stride %d with %d bytes", models.ErrBadImage, img.Width, img.Height, img.Stride, len(img.Pix))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	g, err := d.prepare(img)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := d.session.Run(); err != nil {
		return nil, fmt.Errorf("model %q: run: %w", d.m.Name, err)
	}
	return d.finish(d.out.GetData(), g, f)
}

// finish decodes one frame's output and turns the candidates into the frame's detections.
func (d *Detector) finish(out []float32, g geometry, f models.Filter) ([]models.Detection, error) {
	cands, err := d.dec.Decode(d.cands[:0], out, d.outDims, max(d.score, f.Score), len(d.m.Labels))
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", d.m.Name, err)
	}
	d.cands = cands
	return d.toDetections(cands, g, f), nil
}

// toDetections keeps the candidates (in model-input pixels, changed in place) that pass the
// detector's and f's score and labels, suppresses overlaps and maps the rest to the frame.
func (d *Detector) toDetections(cands []models.Detection, g geometry, f models.Filter) []models.Detection {
	score, nms := max(d.score, f.Score), d.nms
	if f.NMS > 0 {
		nms = f.NMS
	}
	cands = slices.DeleteFunc(cands, func(c models.Detection) bool {
		return c.Score < score || (d.keep != nil && !d.keep[c.ClassID]) || (f.Keep != nil && (c.ClassID >= len(f.Keep) || !f.Keep[c.ClassID]))
	})
	cands = models.NMS(cands, nms) // in model-input pixels, where the model saw the boxes
	res := make([]models.Detection, 0, len(cands))
	for _, c := range cands {
		c.Box = g.toSource(c.Box)
		if c.Box.Area() == 0 {
			continue
		}
		c.Label = d.m.Labels[c.ClassID]
		res = append(res, c)
	}
	return res
}

// Close releases the session, tensors and OpenCV buffers. It is safe to call twice.
func (d *Detector) Close() error {
	var errs []error
	if d.session != nil {
		errs = append(errs, d.session.Destroy())
		d.session = nil
	}
	if d.batch != nil {
		errs = append(errs, d.batch.close())
		d.batch = nil
	}
	if d.in != nil {
		errs = append(errs, d.in.Destroy())
		d.in = nil
	}
	if d.out != nil {
		errs = append(errs, d.out.Destroy())
		d.out = nil
	}
	d.sc.close()
	return errors.Join(errs...)
}
