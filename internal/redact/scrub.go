package redact

import (
	"net/url"
	"strings"
)

// Secrets returns the password of the URL s in the forms a message may quote it (as is, query-
// and path-escaped), for Scrub; nil when s has none.
func Secrets(s string) []string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return nil
	}
	p, ok := u.User.Password()
	if !ok || p == "" {
		return nil
	}
	return []string{p, url.QueryEscape(p), url.PathEscape(p)}
}

// Scrub replaces every occurrence of each non-empty secret in msg with Placeholder: for
// messages that libraries build with a URL or a password inside.
func Scrub(msg string, secrets ...string) string {
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, Placeholder)
		}
	}
	return msg
}
