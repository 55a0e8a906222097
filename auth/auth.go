// Package auth owns who may use Relais's HTTP services (DICOMweb first) and
// what they may do there: API tokens (their format, creation, hashed
// storage, expiry and revocation), the roles and the permissions each role
// grants, and the Bearer-token plumbing of HTTP requests (RFC 6750
// challenges). OIDC will join later as a second way to obtain a Principal.
//
// Tokens live in their own append-only file under the data directory
// (DATA/auth/tokens), not in the index, so that `relais token create` works
// whether or not `relais serve` holds the index open, and a running server
// sees new and revoked tokens within a second, without a restart.
package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Role is what a token holder is, and so what it may do.
type Role string

// Roles.
const (
	// RoleAdmin may do everything, including administration.
	RoleAdmin Role = "admin"
	// RoleRadiologist reads and stores images (reports, key images).
	RoleRadiologist Role = "radiologist"
	// RoleRequester is a referring site or clinician: reads the images it
	// asked about and sends priors.
	RoleRequester Role = "requester"
	// RoleModality is an imaging device or gateway: stores images only.
	RoleModality Role = "modality"
)

// Roles returns every known role, most powerful first.
func Roles() []Role { return []Role{RoleAdmin, RoleRadiologist, RoleRequester, RoleModality} }

// ParseRole returns the role named s (case-insensitive). The error of an
// unknown role lists the valid ones.
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if _, ok := grants[r]; ok {
		return r, nil
	}
	names := make([]string, 0, len(grants))
	for _, v := range Roles() {
		names = append(names, string(v))
	}
	return "", fmt.Errorf("unknown role %q (valid: %s)", s, strings.Join(names, ", "))
}

// Valid reports whether r is a known role.
func (r Role) Valid() bool { _, ok := grants[r]; return ok }

// Permission is something a request needs to be allowed to do.
type Permission string

// Permissions.
const (
	// ReadImages: search and retrieve (QIDO-RS, WADO-RS, WADO-URI).
	ReadImages Permission = "read-images"
	// StoreImages: store (STOW-RS).
	StoreImages Permission = "store-images"
	// Admin: administration (tokens, configuration, journal over HTTP).
	Admin Permission = "admin"
	// ReadReports: read reports and manifests (the API, /reports/{id}).
	ReadReports Permission = "read-reports"
	// WriteReports: write, sign and correct reports, flag key images. Only
	// radiologists have it: an administrator cannot sign for a physician.
	WriteReports Permission = "write-reports"
	// BuildManifests: build a study's KOS manifest on demand.
	BuildManifests Permission = "build-manifests"
)

var grants = map[Role][]Permission{
	RoleAdmin:       {ReadImages, StoreImages, Admin, ReadReports, BuildManifests},
	RoleRadiologist: {ReadImages, StoreImages, ReadReports, WriteReports, BuildManifests},
	RoleRequester:   {ReadImages, StoreImages, ReadReports},
	RoleModality:    {StoreImages},
}

// Can reports whether role r grants permission p. An unknown role grants
// nothing.
func (r Role) Can(p Permission) bool {
	for _, g := range grants[r] {
		if g == p {
			return true
		}
	}
	return false
}

// Principal is the authenticated caller of a request.
type Principal struct {
	User string
	Role Role
	// TokenID names the token used (never its secret); safe to log.
	TokenID string
}

// Can reports whether the principal's role grants p.
func (p Principal) Can(perm Permission) bool { return p.Role.Can(perm) }

// Errors of authentication and authorization. ErrRevoked and ErrExpired
// are also ErrInvalidToken (errors.Is), so a caller that does not care why
// a token is bad tests ErrInvalidToken only. Errors returned by this
// package wrap these and name the token ID when there is one, never the
// secret: they are safe to log.
var (
	// ErrNoToken: the request carries no Bearer token.
	ErrNoToken = errors.New("no bearer token")
	// ErrInvalidToken: malformed, unknown or wrong secret.
	ErrInvalidToken = errors.New("invalid token")
	// ErrRevoked: the token was revoked.
	ErrRevoked = fmt.Errorf("%w: revoked", ErrInvalidToken)
	// ErrExpired: the token is past its expiry.
	ErrExpired = fmt.Errorf("%w: expired", ErrInvalidToken)
	// ErrForbidden: authenticated, but the role lacks the permission.
	ErrForbidden = errors.New("forbidden")
	// ErrUnknownToken: Revoke of an ID that the store does not hold.
	ErrUnknownToken = errors.New("no such token")
)

type principalKey struct{}

// ContextWithPrincipal returns ctx carrying p.
func ContextWithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal stored by ContextWithPrincipal.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
