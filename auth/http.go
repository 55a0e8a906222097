package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Realm is the realm of the Bearer challenges.
const Realm = "relais"

// BearerToken returns the token of the request's "Authorization: Bearer
// TOKEN" header (RFC 6750 §2.1). No header, or another scheme, is
// ErrNoToken; an empty or malformed Bearer value is ErrInvalidToken.
//
// Tokens in the query string (access_token=) are refused on purpose: URLs
// end up in proxy and server logs.
func BearerToken(r *http.Request) (string, error) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return "", ErrNoToken
	}
	if len(vals) > 1 {
		return "", fmt.Errorf("%w: %d Authorization headers", ErrInvalidToken, len(vals))
	}
	scheme, tok, _ := strings.Cut(strings.TrimSpace(vals[0]), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", fmt.Errorf("%w: Authorization scheme %.16q is not Bearer", ErrNoToken, scheme)
	}
	tok = strings.TrimSpace(tok)
	if tok == "" || strings.ContainsAny(tok, " \t") {
		return "", fmt.Errorf("%w: malformed Bearer credentials", ErrInvalidToken)
	}
	return tok, nil
}

// AuthenticateRequest authenticates the request's Bearer token.
func (s *Store) AuthenticateRequest(r *http.Request) (Principal, error) {
	tok, err := BearerToken(r)
	if err != nil {
		return Principal{}, err
	}
	return s.Authenticate(tok)
}

// Authorize authenticates the request and checks that its principal has
// perm: a principal whose role lacks it is returned with an error wrapping
// ErrForbidden (so the refusal can be logged with the user). On error, log
// it (it names the token ID at most) and answer with WriteChallenge.
func (s *Store) Authorize(r *http.Request, perm Permission) (Principal, error) {
	p, err := s.AuthenticateRequest(r)
	if err != nil {
		return Principal{}, err
	}
	if !p.Can(perm) {
		return p, fmt.Errorf("%w: user %s (role %s, token %s) lacks permission %s", ErrForbidden, p.User, p.Role, p.TokenID, perm)
	}
	return p, nil
}

// WriteChallenge answers a request that AuthenticateRequest or Authorize
// refused, as RFC 6750 §3 says:
//
//   - ErrNoToken: 401, WWW-Authenticate: Bearer realm="relais";
//   - ErrInvalidToken (ErrRevoked, ErrExpired): 401 with
//     error="invalid_token";
//   - ErrForbidden: 403 with error="insufficient_scope";
//   - anything else (the store failing): 500, no challenge.
//
// The body is a short JSON object {"error": CODE, "error_description": TEXT}
// that says why without naming the token.
func WriteChallenge(w http.ResponseWriter, err error) {
	status, code, desc := http.StatusInternalServerError, "server_error", "authentication is unavailable"
	challenge := `Bearer realm="` + Realm + `"`
	switch {
	case errors.Is(err, ErrNoToken):
		status, code, desc = http.StatusUnauthorized, "unauthorized", "authentication required: send Authorization: Bearer TOKEN"
	case errors.Is(err, ErrRevoked):
		status, code, desc = http.StatusUnauthorized, "invalid_token", "the token was revoked"
	case errors.Is(err, ErrExpired):
		status, code, desc = http.StatusUnauthorized, "invalid_token", "the token expired"
	case errors.Is(err, ErrInvalidToken):
		status, code, desc = http.StatusUnauthorized, "invalid_token", "the token is invalid"
	case errors.Is(err, ErrForbidden):
		status, code, desc = http.StatusForbidden, "insufficient_scope", "the token's role does not allow this request"
	}
	h := w.Header()
	switch code {
	case "unauthorized":
		h.Set("WWW-Authenticate", challenge)
	case "invalid_token", "insufficient_scope":
		h.Set("WWW-Authenticate", fmt.Sprintf(`%s, error=%q, error_description=%q`, challenge, code, desc))
	}
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}{code, desc})
}
