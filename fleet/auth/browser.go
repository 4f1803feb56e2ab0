package auth

import (
	"encoding/json"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Browser guards the HTTP API against being driven by web pages the operator happens to
// visit: cross-site request forgery (a form or fetch from another site posting to the API) and
// DNS rebinding (another site's name resolving to the API's address, so that its pages are
// "same origin" with the API). Without API tokens these are the only protection of the API's
// writes, such as starting a fleet-wide rollout; with tokens they are a second layer.
//
//   - A request with an Origin header must come from the origin it is sent to (scheme-less
//     comparison of Origin's host:port with Host); "null" is refused. Browsers send Origin
//     with every request other than GET and HEAD, and with every cross-origin fetch.
//   - A write (any method but GET, HEAD and OPTIONS) that names a content type must name
//     application/json: forms and fetches without CORS can only send text/plain,
//     multipart/form-data and application/x-www-form-urlencoded, and a JSON one needs a CORS
//     preflight, which the API never approves. A write without Content-Type passes: it comes
//     from a program, or from a browser (a Blob body) that then sends Origin too, which the
//     first rule checks. (Strict refusal of a missing type would also break API clients that
//     never set it, such as the rollout tests.)
//   - With CheckHost, the Host header must be an IP address, localhost or one of Hosts: a page
//     reached through a rebound name carries that name in Host.
//
// Refusals are JSON errors: 403 for Origin and Host, 415 for the content type.
type Browser struct {
	// CheckHost turns on the Host check (the fleet does so when the API has no tokens).
	CheckHost bool
	// Hosts are further host names, without port, under which the API may be reached.
	Hosts []string
}

// Middleware returns next guarded.
func (b Browser) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if b.CheckHost && !b.hostAllowed(r.Host) {
			refuse(w, http.StatusForbidden, "host "+quote(r.Host)+" is not this API's address (DNS rebinding?): use its IP address or localhost")
			return
		}
		if o := r.Header.Get("Origin"); o != "" && !sameOrigin(o, r.Host) {
			refuse(w, http.StatusForbidden, "cross-origin request from "+quote(o)+" refused")
			return
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
		default:
			ct := r.Header.Get("Content-Type")
			if ct == "" {
				break // not a form; a browser adds Origin to such a request: checked above
			}
			if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
				refuse(w, http.StatusUnsupportedMediaType, "a "+r.Method+" must send Content-Type: application/json, not "+quote(ct))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func (b Browser) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "" {
		return false
	}
	if net.ParseIP(host) != nil || host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	return slices.ContainsFunc(b.Hosts, func(h string) bool { return strings.EqualFold(h, host) })
}

// sameOrigin reports whether origin (scheme://host[:port]) names host (the Host header).
func sameOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https" {
		return false
	}
	return strings.EqualFold(withPort(u.Host, u.Scheme), withPort(host, u.Scheme))
}

func withPort(hostport, scheme string) string {
	if _, _, err := net.SplitHostPort(hostport); err == nil {
		return hostport
	}
	if scheme == "https" {
		return net.JoinHostPort(strings.Trim(hostport, "[]"), "443")
	}
	return net.JoinHostPort(strings.Trim(hostport, "[]"), "80")
}

// quote shows a client's string in an error, bounded.
func quote(s string) string {
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	b, _ := json.Marshal(s)
	return string(b)
}

func refuse(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
