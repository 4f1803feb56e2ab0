package modelstore

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-edge/vigil/internal/backoff"
	"github.com/vigil-edge/vigil/models"
	"github.com/vigil-edge/vigil/pipeline/wire"
)

// maxManifest bounds a manifest's size.
const maxManifest = 1 << 20

// Progress states Install reports (the same words as wire's command result states).
const (
	StateDownloading = wire.CmdDownloading
	StateVerifying   = wire.CmdVerifying
)

// HTTPError is a download answered with an HTTP status Install cannot use.
type HTTPError struct {
	URL    string // without query, fragment or credentials
	Status int
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("GET %s: HTTP status %d %s", e.URL, e.Status, http.StatusText(e.Status))
}

// Temporary reports whether a later attempt may succeed (5xx, 408, 429).
func (e *HTTPError) Temporary() bool {
	return e.Status >= 500 || e.Status == http.StatusRequestTimeout || e.Status == http.StatusTooManyRequests
}

// transientError marks an error a later attempt may not meet (a dropped connection).
type transientError struct{ err error }

func (e transientError) Error() string { return e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

func transient(format string, args ...any) error {
	return transientError{fmt.Errorf(format, args...)}
}

func isTransient(err error) bool {
	var t transientError
	var h *HTTPError
	return errors.As(err, &t) || errors.As(err, &h) && h.Temporary()
}

// Install downloads the model ref names and puts it in the store, not yet active:
//
//   - the manifest is fetched from ref.ManifestURL and its ed25519 signature ref.ManifestSig
//     verified with pub (ErrSignature); it must be valid, name ref's model and version and
//     carry ref's sha256 (ErrChecksum, ErrBadRef);
//   - the model is fetched from ref.URL into a .partial file, resuming with an HTTP Range
//     from the bytes already there (a download an earlier Install or process left), retrying
//     dropped connections and temporary HTTP errors with back-off (see Options.Attempts);
//   - the whole file's size and sha256 must equal ref's (ErrSize, ErrChecksum name expected
//     and got), and the version folder is moved into place with a rename.
//
// progress, when not nil, is called with StateDownloading and the percent downloaded (each
// time it grows by a whole percent) and then with StateVerifying. A version already
// installed with the same manifest and model is verified and returned without a download.
// When ctx ends or the network keeps failing, the partial download stays for the next
// Install of the same model to resume; a verification failure removes it. Installs run one
// at a time; the store keeps at most one partial download.
func (s *Store) Install(ctx context.Context, ref wire.ModelRef, pub ed25519.PublicKey, progress func(state string, percent float64)) (models.Manifest, error) {
	var none models.Manifest
	if progress == nil {
		progress = func(string, float64) {}
	}
	if err := checkRef(ref); err != nil {
		return none, err
	}
	s.installMu.Lock()
	defer s.installMu.Unlock()
	what := ref.Name + " " + ref.Version
	sum := strings.ToLower(ref.SHA256)

	mb, err := s.fetchManifest(ctx, ref.ManifestURL)
	if err != nil {
		return none, fmt.Errorf("install %s: manifest: %w", what, err)
	}
	if err := verifyManifest(pub, mb, ref.ManifestSig); err != nil {
		return none, fmt.Errorf("install %s: manifest %s: %w", what, redact(ref.ManifestURL), err)
	}
	m, err := parseManifest(mb)
	if err != nil {
		return none, fmt.Errorf("install %s: signed manifest: %w", what, err)
	}
	if m.Name != ref.Name || m.Version != ref.Version {
		return none, fmt.Errorf("install %s: %w: the signed manifest is for %s %s", what, ErrBadRef, m.Name, m.Version)
	}
	if !strings.EqualFold(m.SHA256, sum) {
		return none, fmt.Errorf("install %s: %w: the signed manifest says %s, the model reference %s", what, ErrChecksum, strings.ToLower(m.SHA256), sum)
	}

	if done, m, err := s.installed(ref, mb, progress); done {
		return m, err
	}

	stage := filepath.Join(s.dir, stagingDir, sum)
	s.cleanStaging(sum)
	if err := os.MkdirAll(stage, 0o755); err != nil {
		return none, fmt.Errorf("install %s: %w", what, err)
	}
	if err := errors.Join(writeFileAtomic(filepath.Join(stage, manifestFile), mb),
		writeFileAtomic(filepath.Join(stage, sigFile), []byte(ref.ManifestSig))); err != nil {
		return none, fmt.Errorf("install %s: %w", what, err)
	}
	partial := filepath.Join(stage, partialFile)
	if err := s.download(ctx, ref.URL, partial, ref.Size, progress); err != nil {
		if errors.Is(err, ErrSize) {
			_ = os.RemoveAll(stage)
		}
		return none, fmt.Errorf("install %s: model: %w", what, err)
	}
	progress(StateVerifying, 100)
	got, n, err := models.HashFile(partial)
	if err != nil {
		return none, fmt.Errorf("install %s: %w", what, err)
	}
	if got != sum || n != ref.Size {
		_ = os.RemoveAll(stage)
		if n != ref.Size {
			return none, fmt.Errorf("install %s: model file: %w: expected %d bytes, got %d", what, ErrSize, ref.Size, n)
		}
		return none, fmt.Errorf("install %s: model file: %w: expected %s, got %s", what, ErrChecksum, sum, got)
	}
	if err := os.Rename(partial, filepath.Join(stage, modelFile)); err != nil {
		return none, fmt.Errorf("install %s: %w", what, err)
	}
	if err := os.MkdirAll(filepath.Join(s.dir, ref.Name), 0o755); err != nil {
		return none, fmt.Errorf("install %s: %w", what, err)
	}
	err = errors.Join(syncDir(stage), os.Rename(stage, s.versionDir(ref.Name, ref.Version)))
	if err == nil {
		err = errors.Join(syncDir(filepath.Join(s.dir, ref.Name)), syncDir(filepath.Join(s.dir, stagingDir)))
	}
	if err != nil {
		return none, fmt.Errorf("install %s: move into place: %w", what, err)
	}
	s.mu.Lock()
	s.installing = ref.Name + "/" + ref.Version
	s.mu.Unlock()
	return s.load(ref.Name, ref.Version)
}

// installed handles a version whose folder exists: the same manifest and model are
// verified and returned (done); other content is replaced unless the version is in use.
func (s *Store) installed(ref wire.ModelRef, manifest []byte, progress func(string, float64)) (bool, models.Manifest, error) {
	dir := s.versionDir(ref.Name, ref.Version)
	old, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if errors.Is(err, os.ErrNotExist) {
		return false, models.Manifest{}, nil
	}
	what := ref.Name + " " + ref.Version
	same := err == nil && bytes.Equal(old, manifest)
	if same {
		progress(StateVerifying, 100)
		got, n, err := models.HashFile(filepath.Join(dir, modelFile))
		same = err == nil && got == strings.ToLower(ref.SHA256) && n == ref.Size
	}
	if same {
		if err := writeFileAtomic(filepath.Join(dir, sigFile), []byte(ref.ManifestSig)); err != nil {
			return true, models.Manifest{}, fmt.Errorf("install %s: %w", what, err)
		}
		m, err := s.load(ref.Name, ref.Version)
		if err != nil {
			return true, m, fmt.Errorf("install %s: %w", what, err)
		}
		s.mu.Lock()
		s.installing = ref.Name + "/" + ref.Version
		s.mu.Unlock()
		return true, m, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.Active.is(ref.Name, ref.Version) || s.st.Previous.is(ref.Name, ref.Version) {
		return true, models.Manifest{}, fmt.Errorf("install %s: %w: it is installed with another manifest or model file", what, ErrInUse)
	}
	if err := os.RemoveAll(dir); err != nil {
		return true, models.Manifest{}, fmt.Errorf("install %s: remove the stale copy: %w", what, err)
	}
	return false, models.Manifest{}, nil
}

// cleanStaging removes partial downloads other than keep's.
func (s *Store) cleanStaging(keep string) {
	ents, _ := os.ReadDir(filepath.Join(s.dir, stagingDir))
	for _, e := range ents {
		if e.Name() != keep {
			_ = os.RemoveAll(filepath.Join(s.dir, stagingDir, e.Name()))
		}
	}
}

// checkRef checks a model reference without I/O.
func checkRef(ref wire.ModelRef) error {
	if err := checkNames(ref.Name, ref.Version); err != nil {
		return err
	}
	if len(ref.SHA256) != 64 || strings.Trim(strings.ToLower(ref.SHA256), "0123456789abcdef") != "" {
		return fmt.Errorf("%w: sha256 must be 64 hex digits", ErrBadRef)
	}
	if ref.Size <= 0 {
		return fmt.Errorf("%w: size must be > 0", ErrBadRef)
	}
	for _, u := range []string{ref.URL, ref.ManifestURL} {
		p, err := url.Parse(u)
		if err != nil || p.Scheme != "http" && p.Scheme != "https" || p.Host == "" {
			return fmt.Errorf("%w: %q is not an http(s) URL", ErrBadRef, redact(u))
		}
	}
	if _, err := decodeSig(ref.ManifestSig); err != nil {
		return fmt.Errorf("%w: manifest signature: %v", ErrBadRef, err)
	}
	return nil
}

// decodeSig decodes a base64 (standard, padded) ed25519 signature.
func decodeSig(sig string) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil {
		return nil, errors.New("not base64")
	}
	if len(raw) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%d bytes, want %d", len(raw), ed25519.SignatureSize)
	}
	return raw, nil
}

// redact keeps a URL's scheme, host and path: a query or user info may hold a token.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// retry runs attempt until it succeeds, fails for good, ctx ends, or Options.Attempts
// attempts in a row fail without progress; it waits with back-off in between (doubling from
// Options.Backoff to Options.MaxBackoff, less up to 20 % jitter so that a fleet of devices
// that lost the server together do not come back in step).
func (s *Store) retry(ctx context.Context, what string, attempt func() (progressed bool, err error)) error {
	policy := backoff.Policy{Min: s.opts.Backoff, Max: s.opts.MaxBackoff}
	failures := 0
	for {
		progressed, err := attempt()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, context.Cause(ctx))
		}
		if !isTransient(err) {
			return err
		}
		if progressed {
			failures = 0
		}
		failures++
		if failures >= s.opts.Attempts {
			return fmt.Errorf("%s: gave up after %d attempts: %w", what, failures, err)
		}
		wait := policy.Delay(failures - 1)
		s.log.Warn("download failed, retrying", "what", what, "attempt", failures, "wait", wait, "err", err)
		if !backoff.Sleep(ctx, wait) {
			return fmt.Errorf("%s: %w", what, context.Cause(ctx))
		}
	}
}

// fetchManifest downloads a manifest (at most maxManifest bytes), with retries.
func (s *Store) fetchManifest(ctx context.Context, rawURL string) ([]byte, error) {
	var body []byte
	err := s.retry(ctx, "download "+redact(rawURL), func() (bool, error) {
		resp, err := s.get(ctx, rawURL, "")
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return false, &HTTPError{URL: redact(rawURL), Status: resp.StatusCode}
		}
		body, err = io.ReadAll(io.LimitReader(resp.Body, maxManifest+1))
		if err != nil {
			return false, transient("read %s: %w", redact(rawURL), err)
		}
		if len(body) > maxManifest {
			return false, fmt.Errorf("%w: manifest %s is larger than %d bytes", ErrBadRef, redact(rawURL), maxManifest)
		}
		return true, nil
	})
	return body, err
}

// get sends a GET, with a Range header when rng is set. Transport errors are transient and
// never show the URL's query.
func (s *Store) get(ctx context.Context, rawURL, rng string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadRef, redact(rawURL), err)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, transient("GET %s: %w", redact(rawURL), err)
	}
	return resp, nil
}

// download fills path (a partial download) up to size bytes from rawURL, resuming from the
// bytes already there.
func (s *Store) download(ctx context.Context, rawURL, path string, size int64, progress func(string, float64)) error {
	return s.retry(ctx, "download "+redact(rawURL), func() (bool, error) {
		n, err := s.attempt(ctx, rawURL, path, size, progress)
		return n > 0, err
	})
}

// attempt makes one request for the bytes path lacks and appends what arrives. It returns
// how many bytes it wrote; nil means path holds size bytes.
func (s *Store) attempt(ctx context.Context, rawURL, path string, size int64, progress func(string, float64)) (int64, error) {
	have := int64(0)
	if st, err := os.Stat(path); err == nil {
		have = st.Size()
	}
	if have > size {
		have = 0
	}
	if have == size {
		return 0, nil
	}
	pct := func(n int64) float64 { return float64(n) * 100 / float64(size) }
	progress(StateDownloading, pct(have))

	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	errStall := fmt.Errorf("no data for %v", s.opts.Stall)
	stall := time.AfterFunc(s.opts.Stall, func() { cancel(errStall) })
	defer stall.Stop()

	rng := ""
	if have > 0 {
		rng = fmt.Sprintf("bytes=%d-", have)
	}
	resp, err := s.get(actx, rawURL, rng)
	if err != nil {
		if ctx.Err() == nil && errors.Is(context.Cause(actx), errStall) {
			return 0, transient("GET %s: %w", redact(rawURL), errStall)
		}
		return 0, err
	}
	defer resp.Body.Close()
	start := int64(0)
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusPartialContent:
		first, _, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if total >= 0 && total != size {
			return 0, fmt.Errorf("%w: %s holds %d bytes, the model reference says %d", ErrSize, redact(rawURL), total, size)
		}
		if !ok || first != have {
			// Not the range asked for: start again from the first byte.
			return 0, errors.Join(os.Truncate(path, 0), transient("GET %s: server answered range %q to %q", redact(rawURL), resp.Header.Get("Content-Range"), rng))
		}
		start = have
	case http.StatusRequestedRangeNotSatisfiable:
		return 0, errors.Join(os.Truncate(path, 0), transient("GET %s: server refused range %q", redact(rawURL), rng))
	default:
		return 0, &HTTPError{URL: redact(rawURL), Status: resp.StatusCode}
	}
	if resp.ContentLength >= 0 && start+resp.ContentLength != size {
		return 0, fmt.Errorf("%w: %s sends %d bytes from byte %d, the model reference says %d in all", ErrSize, redact(rawURL), resp.ContentLength, start, size)
	}

	flags := os.O_WRONLY | os.O_CREATE
	if start == 0 {
		flags |= os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return 0, fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return 0, fmt.Errorf("seek %s: %w", path, err)
	}
	buf := make([]byte, 256<<10)
	var n int64
	last := int(pct(start))
	for {
		k, rerr := resp.Body.Read(buf)
		if k > 0 {
			if start+n+int64(k) > size {
				return n, fmt.Errorf("%w: %s sends more than the %d bytes the model reference says", ErrSize, redact(rawURL), size)
			}
			if _, err := f.Write(buf[:k]); err != nil {
				return n, fmt.Errorf("write %s: %w", path, err)
			}
			n += int64(k)
			stall.Reset(s.opts.Stall)
			if p := pct(start + n); int(p) > last {
				last = int(p)
				progress(StateDownloading, p)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			_ = f.Sync()
			if ctx.Err() == nil && errors.Is(context.Cause(actx), errStall) {
				rerr = errStall
			}
			return n, transient("read %s after %d bytes: %w", redact(rawURL), start+n, rerr)
		}
	}
	if err := f.Sync(); err != nil {
		return n, fmt.Errorf("sync %s: %w", path, err)
	}
	if start+n < size {
		return n, transient("read %s: %w after %d of %d bytes", redact(rawURL), io.ErrUnexpectedEOF, start+n, size)
	}
	return n, nil
}

// parseContentRange parses "bytes FIRST-LAST/TOTAL" (TOTAL may be "*", returned as -1).
func parseContentRange(s string) (first, last, total int64, ok bool) {
	rest, found := strings.CutPrefix(s, "bytes ")
	if !found {
		return 0, 0, -1, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, -1, false
	}
	total = -1
	if tot != "*" {
		t, err := strconv.ParseInt(tot, 10, 64)
		if err != nil || t < 0 {
			return 0, 0, -1, false
		}
		total = t
	}
	a, b, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, total, false
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || first < 0 || last < first || total >= 0 && last >= total {
		return 0, 0, total, false
	}
	return first, last, total, true
}
