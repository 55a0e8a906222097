package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"strings"
)

// Token format: "rls_" ID "_" SECRET.
//
//   - the "rls_" prefix makes a leaked token recognisable (secret scanners,
//     log greps);
//   - ID is 10 random bytes (16 base32 characters): it finds the record in
//     O(1) and names the token in logs and in `relais token list/revoke`
//     without revealing it;
//   - SECRET is 32 bytes from crypto/rand (256 bits, 52 base32 characters).
//
// Lower-case base32 (a-z, 2-7) has no '_' or '-', so a token is one word
// for a double click and splits unambiguously.
const (
	tokenPrefix = "rls_"
	idBytes     = 10
	secretBytes = 32
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

var (
	idLen     = b32.EncodedLen(idBytes)
	secretLen = b32.EncodedLen(secretBytes)
)

func randomB32(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("auth: random: %w", err)
	}
	return strings.ToLower(b32.EncodeToString(b)), nil
}

// splitToken returns the ID and secret of a well-formed token.
func splitToken(tok string) (id, secret string, ok bool) {
	rest, ok := strings.CutPrefix(tok, tokenPrefix)
	if !ok || len(rest) != idLen+1+secretLen || rest[idLen] != '_' {
		return "", "", false
	}
	id, secret = rest[:idLen], rest[idLen+1:]
	if !isB32(id) || !isB32(secret) {
		return "", "", false
	}
	return id, secret, true
}

func isB32(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// validID reports whether s has the form of a token ID.
func validID(s string) bool { return len(s) == idLen && isB32(s) }

// TokenID returns the ID part of a well-formed token, "" otherwise. The ID
// is safe to log; the token is not.
func TokenID(token string) string {
	id, _, _ := splitToken(token)
	return id
}

// hashSecret is what the store keeps instead of the secret. A plain SHA-256
// is enough, and a slow password hash (bcrypt, argon2) would only cost CPU
// at every request: slow hashes protect low-entropy human passwords from
// dictionary attacks on a stolen hash, but the secret is 256 bits from
// crypto/rand, so inverting its SHA-256 is as hopeless as guessing it.
func hashSecret(secret string) [sha256.Size]byte { return sha256.Sum256([]byte(secret)) }
