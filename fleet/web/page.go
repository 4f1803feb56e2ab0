package web

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
)

//go:embed static
var static embed.FS

// Page serves the dashboard: GET / (index.html) and GET /static/<file> (its script and
// style). Both are public: they hold no data. The responses forbid inline scripts and
// framing and send no referrer.
func Page() http.Handler { return PageWith(PageOptions{}) }

// PageOptions configure the dashboard.
type PageOptions struct {
	// TileURL is a map tile URL template (https://tiles.example/{z}/{x}/{y}.png) for the drone
	// detections; empty draws them on a scaled plane. Its origin is allowed in the page's
	// Content-Security-Policy.
	TileURL string
}

// PageWith is Page with options; GET /static/config.json gives them to the page.
func PageWith(opts PageOptions) http.Handler {
	imgSrc := "'self' data: blob:"
	if u, err := url.Parse(opts.TileURL); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
		imgSrc += " " + u.Scheme + "://" + u.Host
	} else {
		opts.TileURL = ""
	}
	csp := "default-src 'self'; img-src " + imgSrc + "; frame-ancestors 'none'"
	config, _ := json.Marshal(map[string]string{"tile_url": opts.TileURL})
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embedded folder exists: a broken build
	}
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		headers(w, csp)
		http.ServeFileFS(w, r, sub, "index.html")
	})
	mux.HandleFunc("GET /static/config.json", func(w http.ResponseWriter, r *http.Request) {
		headers(w, csp)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(config)
	})
	mux.Handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers(w, csp)
		files.ServeHTTP(w, r)
	}))
	return mux
}

// IsPage reports whether r asks for the dashboard page or its files (which need no token).
func IsPage(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	return r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/static/")
}

func headers(w http.ResponseWriter, csp string) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
}
