package config

import (
	"fmt"
	"time"
)

// Web configures the web application (login, worklist, viewer, report
// editor) served under /app on the HTTP listener.
type Web struct {
	// Disabled turns the web app off (the APIs stay).
	Disabled bool `yaml:"disabled"`
	// SessionIdle ends a session after this long without a request
	// (default 30m).
	SessionIdle Duration `yaml:"session_idle"`
	// SessionMax ends a session this long after the login, whatever its
	// use (default 12h).
	SessionMax Duration `yaml:"session_max"`
	// SecureCookie forces the Secure attribute of the session cookie
	// (it is set anyway when the request is HTTPS, by TLS or
	// X-Forwarded-Proto, or when http.public_url is https).
	SecureCookie bool `yaml:"secure_cookie"`
	// Language is the UI language when the browser asks for neither
	// French nor English: "fr" (default) or "en".
	Language string `yaml:"language"`
}

// Web defaults.
const (
	DefaultSessionIdle = 30 * time.Minute
	DefaultSessionMax  = 12 * time.Hour
)

func (c *Config) validateWeb() error {
	w := &c.Web
	bad := func(key, format string, a ...any) error {
		return &KeyError{Key: "web." + key, Msg: fmt.Sprintf(format, a...)}
	}
	if w.SessionIdle < 0 {
		return bad("session_idle", "must not be negative")
	}
	if w.SessionMax < 0 {
		return bad("session_max", "must not be negative")
	}
	if w.SessionIdle == 0 {
		w.SessionIdle = Duration(DefaultSessionIdle)
	}
	if w.SessionMax == 0 {
		w.SessionMax = Duration(DefaultSessionMax)
	}
	if w.SessionIdle > w.SessionMax {
		return bad("session_idle", "%v is longer than web.session_max %v", time.Duration(w.SessionIdle), time.Duration(w.SessionMax))
	}
	switch w.Language {
	case "":
		w.Language = "fr"
	case "fr", "en":
	default:
		return bad("language", "%q is not one of fr, en", w.Language)
	}
	return nil
}
