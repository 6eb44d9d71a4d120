// Package jwt decodes and verifies JSON Web Tokens as Microsoft Entra ID issues them, with the
// standard library only.
//
// Decode reads a token without checking it (the token view of the UI, the claims printed by the
// CLI). A Verifier checks a token against its issuer: it fetches the issuer's OpenID Connect
// discovery document and signing keys (cached per issuer), then checks the signature, the
// issuer, the audience and the lifetime, and explains every failed check in words.
//
// Nothing here ever sends a token anywhere or puts one in an error message.
package jwt

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxTokenSize is the largest token Decode accepts. Entra tokens are 1–4 KiB; one with hundreds
// of group ids stays well below this.
const MaxTokenSize = 64 << 10

// Token is a decoded, not necessarily verified, JSON Web Token (JWS compact serialisation).
type Token struct {
	// Raw is the token as given, without surrounding space or a "Bearer " prefix.
	Raw string
	// Header is the decoded JOSE header.
	Header Header
	// Claims is the decoded payload.
	Claims Claims
	// HeaderJSON is the header exactly as encoded in the token (for display in its own order).
	HeaderJSON []byte
	// ClaimsJSON is the payload exactly as encoded in the token (for display in its own order).
	ClaimsJSON []byte
	// Signed is the signing input: the first two parts of Raw with the dot between them.
	Signed []byte
	// Signature is the decoded third part (empty for an unsigned token).
	Signature []byte
}

// Header is the part of a JOSE header this package reads.
type Header struct {
	// Alg is the signing algorithm, e.g. RS256.
	Alg string `json:"alg"`
	// Kid is the id of the signing key in the issuer's key set.
	Kid string `json:"kid,omitempty"`
	// Typ is the token type, usually JWT.
	Typ string `json:"typ,omitempty"`
	// X5t is the base64url SHA-1 thumbprint of the signing certificate.
	X5t string `json:"x5t,omitempty"`
	// Nonce is set in Microsoft Graph access tokens, whose signature only Graph can check.
	Nonce string `json:"nonce,omitempty"`
}

var b64 = base64.RawURLEncoding.Strict()

// Decode splits and decodes a token without verifying it. Errors say what is wrong with the
// token and never contain it.
func Decode(token string) (*Token, error) {
	if len(token) > 2*MaxTokenSize { // don't even trim a huge input
		return nil, fmt.Errorf("token is %d bytes, more than the %d KiB limit", len(token), MaxTokenSize>>10)
	}
	token = strings.TrimSpace(token)
	if len(token) > 7 && strings.EqualFold(token[:7], "bearer ") {
		token = strings.TrimSpace(token[7:])
	}
	if token == "" {
		return nil, errors.New("not a JWT: the token is empty")
	}
	if len(token) > MaxTokenSize {
		return nil, fmt.Errorf("token is %d bytes, more than the %d KiB limit", len(token), MaxTokenSize>>10)
	}
	parts := strings.Split(token, ".")
	switch n := len(parts); {
	case n == 5:
		return nil, errors.New("not a signed JWT: 5 dot-separated parts make an encrypted token (JWE), which cannot be read without its key")
	case n != 3:
		return nil, fmt.Errorf("not a JWT: expected 3 dot-separated parts, found %d", n)
	}
	t := &Token{Raw: token}

	hdr, err := decodePart(parts[0])
	if err != nil {
		return nil, fmt.Errorf("header is not base64url JSON: %w", err)
	}
	var raw map[string]any
	if err := unmarshalObject(hdr, &raw); err != nil {
		return nil, fmt.Errorf("header is not base64url JSON: %w", err)
	}
	for _, f := range []struct {
		name string
		dst  *string
	}{{"alg", &t.Header.Alg}, {"kid", &t.Header.Kid}, {"typ", &t.Header.Typ}, {"x5t", &t.Header.X5t}, {"nonce", &t.Header.Nonce}} {
		v, ok := raw[f.name]
		if !ok || v == nil {
			continue
		}
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("header field %q is not a string", f.name)
		}
		*f.dst = s
	}
	t.HeaderJSON = hdr

	payload, err := decodePart(parts[1])
	if err != nil {
		return nil, fmt.Errorf("payload is not base64url JSON: %w", err)
	}
	var claims map[string]any
	if err := unmarshalObject(payload, &claims); err != nil {
		return nil, fmt.Errorf("payload is not base64url JSON: %w", err)
	}
	t.Claims = Claims(claims)
	t.ClaimsJSON = payload

	sig, err := decodePart(parts[2])
	if err != nil {
		return nil, fmt.Errorf("signature is not base64url: %w", err)
	}
	t.Signature = sig
	t.Signed = []byte(token[:len(parts[0])+1+len(parts[1])])
	return t, nil
}

// decodePart decodes one base64url part (no padding, canonical encoding).
func decodePart(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
		case c == '=':
			return nil, errors.New("padding '=' is not allowed in a JWT")
		default:
			// The decoder would skip \r and \n; a JWT has none.
			return nil, fmt.Errorf("bad base64url at byte %d", i)
		}
	}
	b, err := b64.DecodeString(s)
	if err != nil {
		var ce base64.CorruptInputError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("bad base64url at byte %d", int64(ce))
		}
		return nil, errors.New("bad base64url")
	}
	return b, nil
}

// unmarshalObject decodes one JSON object (numbers kept as json.Number) and says where the
// JSON is broken without quoting it.
func unmarshalObject(b []byte, dst *map[string]any) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return errors.New("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(dst); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("broken JSON at byte %d", se.Offset)
		}
		return errors.New("broken JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("data after the JSON object")
	}
	if *dst == nil {
		return errors.New("not a JSON object")
	}
	return nil
}
