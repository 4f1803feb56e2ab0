// Package redact hides secrets in strings that are logged, shown in status pages or put in
// error messages. Every URL that may carry a password (MQTT brokers, RTSP cameras) goes
// through [URL] before it is printed, by the agent and the fleet alike.
package redact

import (
	"net/url"
	"strings"
)

// Placeholder replaces a hidden secret.
const Placeholder = "REDACTED"

// URL returns s with the password of its user information replaced by Placeholder
// (tcp://user:REDACTED@host:1883). A string that does not parse as a URL but has user
// information (scheme://...@) has everything between "://" and the last '@' replaced, so that
// even a malformed URL never shows its password.
func URL(s string) string {
	u, err := url.Parse(s)
	if err == nil {
		if u.User == nil {
			return s
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), Placeholder)
		}
		return u.String()
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		if i := strings.LastIndexByte(s, '@'); i >= 0 {
			return Placeholder + s[i:]
		}
		return s
	}
	auth := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		auth = rest[:i]
	}
	if i := strings.LastIndexByte(auth, '@'); i >= 0 {
		return scheme + "://" + Placeholder + rest[i:]
	}
	return s
}
