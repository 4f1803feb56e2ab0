package snapshot

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"gocv.io/x/gocv"

	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/mask"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// ids are valid ULIDs, increasing.
var ids = []string{
	"01KAP98VKV0000000000000001", "01KAP98VKV0000000000000002", "01KAP98VKV0000000000000003",
	"01KAP98VKV0000000000000004", "01KAP98VKV0000000000000005", "01KAP98VKV0000000000000006",
}

// scene is a w x h BGR image with smooth, busy content.
func scene(w, h, stride int) models.Image {
	img := models.Image{Width: w, Height: h, Stride: stride, Pix: make([]byte, (h-1)*stride+3*w)}
	for y := range h {
		for x := range w {
			o := y*stride + 3*x
			img.Pix[o], img.Pix[o+1], img.Pix[o+2] = byte(100+x%128), byte(60+y%128), byte(200-(x+y)%100)
		}
	}
	return img
}

func decode(t *testing.T, b []byte) gocv.Mat {
	t.Helper()
	m, err := gocv.IMDecode(b, gocv.IMReadColor)
	if err != nil || m.Empty() {
		t.Fatalf("the snapshot does not decode as an image: %v", err)
	}
	return m
}

func readAll(t *testing.T, s *Store, id string) []byte {
	t.Helper()
	rc, err := s.Open(id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSaveDownscalesRedactsAndDrawsTheBox(t *testing.T) {
	s, err := Open(t.TempDir(), 10<<20)
	if err != nil {
		t.Fatal(err)
	}
	img := scene(1920, 1080, 3*1920+64) // padded rows
	orig := slices.Clone(img.Pix)
	box := models.Box{X1: 960, Y1: 300, X2: 1200, Y2: 900}
	black := []mask.Mask{{ID: "window", Points: mask.Polygon{{0, 0}, {0.25, 0}, {0.25, 0.25}, {0, 0.25}}}}
	if err := s.Save(ids[0], img, box, func(im models.Image) error { return mask.Apply(im, black) }); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img.Pix, orig) {
		t.Fatal("Save changed the caller's image")
	}
	b := readAll(t, s, ids[0])
	if !bytes.HasPrefix(b, []byte{0xff, 0xd8}) {
		t.Fatal("not a JPEG")
	}
	m := decode(t, b)
	defer m.Close()
	if m.Cols() != 1280 || m.Rows() != 720 {
		t.Fatalf("snapshot is %dx%d, want 1280x720", m.Cols(), m.Rows())
	}
	at := func(x, y int) [3]int {
		v := m.GetVecbAt(y, x)
		return [3]int{int(v[0]), int(v[1]), int(v[2])}
	}
	// The privacy mask (top-left quarter) is black, well inside its edges.
	for _, p := range [][2]int{{10, 10}, {150, 90}, {300, 170}} {
		if c := at(p[0], p[1]); c[0]+c[1]+c[2] > 30 {
			t.Errorf("masked pixel %v is %v, want black", p, c)
		}
	}
	// Outside it, the picture (allowing for JPEG).
	if c := at(600, 400); c[0] < 60 {
		t.Errorf("unmasked pixel is %v", c)
	}
	// The box's left edge (960/1.5 = 640) is drawn green.
	if c := at(640, 400); !(c[1] > 200 && c[0] < 80 && c[2] < 80) {
		t.Errorf("box edge pixel is %v, want green", c)
	}
	if p := s.Path(ids[0]); filepath.Dir(p) != s.Dir() || filepath.Base(p) != ids[0]+".jpg" {
		t.Errorf("Path = %q", p)
	}
}

func TestSmallFrameKeepsItsSize(t *testing.T) {
	s, _ := Open(t.TempDir(), 10<<20)
	if err := s.Save(ids[1], scene(640, 360, 1920), models.Box{}, nil); err != nil {
		t.Fatal(err)
	}
	m := decode(t, readAll(t, s, ids[1]))
	defer m.Close()
	if m.Cols() != 640 || m.Rows() != 360 {
		t.Fatalf("snapshot is %dx%d, want 640x360", m.Cols(), m.Rows())
	}
}

func TestRedactErrorSavesNothing(t *testing.T) {
	s, _ := Open(t.TempDir(), 10<<20)
	boom := errors.New("boom")
	err := s.Save(ids[0], scene(64, 48, 192), models.Box{}, func(models.Image) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if _, err := s.Open(ids[0]); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a snapshot that could not be redacted was stored: %v", err)
	}
	if err := s.Save(ids[0], models.Image{Width: 10, Height: 10, Stride: 30}, models.Box{}, nil); !errors.Is(err, models.ErrBadImage) {
		t.Fatalf("bad image: %v", err)
	}
}

func listJPEGs(t *testing.T, dir string) []string {
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	sort.Strings(out)
	return out
}

func TestEvictsOldestPastTheBudget(t *testing.T) {
	dir := t.TempDir()
	img := scene(320, 240, 960)
	// Measure one snapshot, then allow about three.
	probe, _ := Open(t.TempDir(), 1<<30)
	if err := probe.Save(ids[0], img, models.Box{}, nil); err != nil {
		t.Fatal(err)
	}
	one := probe.Bytes()
	s, err := Open(dir, 3*one+one/2)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids[:4] {
		if err := s.Save(id, img, models.Box{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// The first is gone; re-saving the second makes it the newest, so the third goes next.
	if s.Has(ids[0]) || !s.Has(ids[1]) {
		t.Fatalf("after 4 saves: has %v %v", s.Has(ids[0]), s.Has(ids[1]))
	}
	if err := s.Save(ids[1], img, models.Box{X1: 5, Y1: 5, X2: 50, Y2: 50}, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(ids[4], img, models.Box{}, nil); err != nil {
		t.Fatal(err)
	}
	want := []string{ids[1] + ".jpg", ids[3] + ".jpg", ids[4] + ".jpg"}
	if got := listJPEGs(t, dir); !slices.Equal(got, want) {
		t.Fatalf("files %v, want %v", got, want)
	}
	if s.Bytes() > 3*one+one/2 {
		t.Errorf("%d bytes kept, budget %d", s.Bytes(), 3*one+one/2)
	}
	if _, err := s.Open(ids[0]); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("evicted snapshot opens: %v", err)
	}

	// Reopening finds them again (total matches the files), drops a leftover temporary file
	// and leaves strangers alone; a smaller budget evicts at once, the oldest first.
	os.WriteFile(filepath.Join(dir, tempPrefix+"123"), []byte("half"), 0o600)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600)
	var total int64
	for _, id := range []string{ids[1], ids[3], ids[4]} {
		st, _ := os.Stat(filepath.Join(dir, id+".jpg"))
		total += st.Size()
	}
	r, err := Open(dir, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if r.Bytes() != total {
		t.Errorf("reopened store counts %d bytes, files hold %d", r.Bytes(), total)
	}
	if got := listJPEGs(t, dir); !slices.Equal(got, append(slices.Clone(want), "notes.txt")) {
		t.Errorf("after reopen: %v", got)
	}
}

func TestRejectsIDsThatAreNotULIDs(t *testing.T) {
	dir := t.TempDir()
	s, _ := Open(filepath.Join(dir, "snaps"), 1<<20)
	os.WriteFile(filepath.Join(dir, "secret.jpg"), []byte("secret"), 0o600)
	for _, id := range []string{"../secret", "..", "", "01KAP98VKV000000000000000/", "01kap98vkv0000000000000001", "/etc/passwd"} {
		if err := s.Save(id, scene(8, 8, 24), models.Box{}, nil); !errors.Is(err, ErrBadID) {
			t.Errorf("Save(%q) = %v", id, err)
		}
		if _, err := s.Open(id); !errors.Is(err, ErrBadID) {
			t.Errorf("Open(%q) = %v", id, err)
		}
		if p := s.Path(id); p != "" {
			t.Errorf("Path(%q) = %q", id, p)
		}
	}
	if got := listJPEGs(t, filepath.Join(dir, "snaps")); len(got) != 0 {
		t.Errorf("files written: %v", got)
	}
	if _, err := Open(dir, 0); err == nil {
		t.Error("a zero budget was accepted")
	}
}

func TestHTTPHandler(t *testing.T) {
	s, _ := Open(t.TempDir(), 1<<20)
	if err := s.Save(ids[2], scene(160, 120, 480), models.Box{}, nil); err != nil {
		t.Fatal(err)
	}
	onDisk, _ := os.ReadFile(s.Path(ids[2]))
	mux := http.NewServeMux()
	mux.Handle(wire.SnapshotPrefix, s)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	get := func(method, path string) (*http.Response, []byte) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, body := get("GET", wire.SnapshotPath(ids[2]))
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" || !bytes.Equal(body, onDisk) {
		t.Fatalf("GET: %d %q, %d bytes (file %d)", resp.StatusCode, resp.Header.Get("Content-Type"), len(body), len(onDisk))
	}
	m := decode(t, body)
	if m.Cols() != 160 || m.Rows() != 120 {
		t.Errorf("served image is %dx%d", m.Cols(), m.Rows())
	}
	m.Close()
	if resp, body := get("HEAD", wire.SnapshotPath(ids[2])); resp.StatusCode != 200 || len(body) != 0 {
		t.Errorf("HEAD: %d, %d bytes", resp.StatusCode, len(body))
	}
	for path, want := range map[string]int{
		wire.SnapshotPath(ids[5]):                               404, // unknown event
		wire.SnapshotPrefix + ids[2]:                            404, // no .jpg
		wire.SnapshotPrefix + ids[2] + ".png":                   404,
		wire.SnapshotPrefix + url.PathEscape("../../go.mod"):    404,
		wire.SnapshotPrefix + "..%2F..%2F..%2Fetc%2Fpasswd.jpg": 404,
		wire.SnapshotPrefix:                                     404,
	} {
		if resp, _ := get("GET", path); resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	if resp, _ := get("DELETE", wire.SnapshotPath(ids[2])); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("DELETE: %d", resp.StatusCode)
	}
}

// FuzzServeHTTP sends arbitrary request paths to the handler: it may only ever answer 200 with
// the one stored snapshot, for exactly its path.
func FuzzServeHTTP(f *testing.F) {
	dir := f.TempDir()
	s, err := Open(filepath.Join(dir, "snaps"), 1<<20)
	if err != nil {
		f.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "secret.jpg"), []byte("secret"), 0o600)
	if err := s.Save(ids[0], scene(16, 16, 48), models.Box{}, nil); err != nil {
		f.Fatal(err)
	}
	f.Add(wire.SnapshotPath(ids[0]))
	f.Add(wire.SnapshotPrefix + "../secret.jpg")
	f.Add(wire.SnapshotPrefix + "..%2fsecret.jpg")
	f.Add("/api/v1/snapshots//" + ids[0] + ".jpg")
	f.Fuzz(func(t *testing.T, path string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.URL.Path = path
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code == 200 && path != wire.SnapshotPath(ids[0]) {
			t.Fatalf("served %q", path)
		}
		if bytes.Contains(rec.Body.Bytes(), []byte("secret")) {
			t.Fatalf("leaked a file outside the store for %q", path)
		}
	})
}

// TestCaptionIsDrawn: a box's caption appears above it, green on a dark backing, and the
// quality setting changes the file size the way JPEG quality does.
func TestCaptionIsDrawn(t *testing.T) {
	img := scene(1280, 720, 3*1280)
	box := Box{Box: models.Box{X1: 400, Y1: 300, X2: 700, Y2: 600}, Text: "person 0.91"}
	b, err := Encode(img, []Box{box}, nil, Encoding{Quality: 90})
	if err != nil {
		t.Fatal(err)
	}
	m := decode(t, b)
	defer m.Close()
	green, dark := 0, 0
	for y := 270; y < 300; y++ { // the caption's band above the box
		for x := 400; x < 520; x++ {
			v := m.GetVecbAt(y, x)
			switch {
			case v[1] > 180 && v[0] < 100 && v[2] < 100:
				green++
			case int(v[0])+int(v[1])+int(v[2]) < 90:
				dark++
			}
		}
	}
	if green < 60 || dark < 300 {
		t.Fatalf("caption band has %d green and %d dark pixels, want text on a dark backing", green, dark)
	}
	low, err := Encode(img, []Box{box}, nil, Encoding{Quality: 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(low) >= len(b) {
		t.Fatalf("quality 20 gave %d bytes, quality 90 %d", len(low), len(b))
	}
	if _, err := Encode(models.Image{Width: 4, Height: 4, Stride: 2, Pix: make([]byte, 8)}, nil, nil, Encoding{}); !errors.Is(err, models.ErrBadImage) {
		t.Fatalf("bad image: %v", err)
	}
}
