package sim

import (
	"bytes"
	"crypto"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

var b64 = base64.RawURLEncoding

// signingKey is one token-signing key of the authority.
type signingKey struct {
	kid  string // base64url SHA-1 thumbprint of the certificate, which Entra uses as kid and x5t
	priv *rsa.PrivateKey
	der  []byte // self-signed certificate (x5c)
}

func newSigningKey() (*signingKey, error) {
	priv, der, err := selfSignedRSA("accounts.sim.entra-companion")
	if err != nil {
		return nil, fmt.Errorf("making a token signing key: %w", err)
	}
	return &signingKey{kid: b64.EncodeToString(thumbprintSHA1(der)), priv: priv, der: der}, nil
}

func (k *signingKey) jwk(issuer string) map[string]any {
	return map[string]any{
		"kty":    "RSA",
		"use":    "sig",
		"kid":    k.kid,
		"x5t":    k.kid,
		"n":      b64.EncodeToString(k.priv.N.Bytes()),
		"e":      b64.EncodeToString(big.NewInt(int64(k.priv.E)).Bytes()),
		"x5c":    []string{base64.StdEncoding.EncodeToString(k.der)},
		"issuer": issuer,
	}
}

// signRS256 makes a compact JWS signed with RS256.
func signRS256(k *signingKey, claims map[string]any) (string, error) {
	head := map[string]any{"typ": "JWT", "alg": "RS256", "kid": k.kid, "x5t": k.kid}
	input, err := jwsInput(head, claims)
	if err != nil {
		return "", err
	}
	h := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(nil, k.priv, crypto.SHA256, h[:])
	if err != nil {
		return "", fmt.Errorf("signing a token: %w", err)
	}
	return input + "." + b64.EncodeToString(sig), nil
}

// signHS256 makes a compact JWS signed with HS256 (the CMS's own JWTs).
func signHS256(secret []byte, claims map[string]any) (string, error) {
	input, err := jwsInput(map[string]any{"alg": "HS256", "typ": "JWT"}, claims)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(input))
	return input + "." + b64.EncodeToString(m.Sum(nil)), nil
}

func jwsInput(head, claims map[string]any) (string, error) {
	hj, err := json.Marshal(head)
	if err != nil {
		return "", fmt.Errorf("encoding a token header: %w", err)
	}
	cj, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encoding token claims: %w", err)
	}
	return b64.EncodeToString(hj) + "." + b64.EncodeToString(cj), nil
}

// jws is a parsed, not yet verified, compact JWS.
type jws struct {
	header map[string]any
	claims map[string]any
	input  string
	sig    []byte
}

var errMalformed = errors.New("the token is not a well-formed compact jws")

func parseJWS(tok string) (*jws, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errMalformed
	}
	var j jws
	for i, dst := range []*map[string]any{&j.header, &j.claims} {
		raw, err := b64.DecodeString(parts[i])
		if err != nil {
			return nil, errMalformed
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if err := dec.Decode(dst); err != nil || *dst == nil {
			return nil, errMalformed
		}
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, errMalformed
	}
	j.sig = sig
	j.input = parts[0] + "." + parts[1]
	return &j, nil
}

func (j *jws) verifyRS256(pub *rsa.PublicKey) error {
	h := sha256.Sum256([]byte(j.input))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, h[:], j.sig)
}

func (j *jws) verifyPS256(pub *rsa.PublicKey) error {
	h := sha256.Sum256([]byte(j.input))
	return rsa.VerifyPSS(pub, crypto.SHA256, h[:], j.sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
}

func (j *jws) verifyHS256(secret []byte) bool {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(j.input))
	return hmac.Equal(m.Sum(nil), j.sig)
}

func (j *jws) str(m map[string]any, name string) string {
	v, _ := m[name].(string)
	return v
}

func (j *jws) hdr(name string) string   { return j.str(j.header, name) }
func (j *jws) claim(name string) string { return j.str(j.claims, name) }

// num returns a numeric claim.
func (j *jws) num(name string) (int64, bool) {
	switch v := j.claims[name].(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i, true
		}
		if f, err := v.Float64(); err == nil {
			return int64(f), true
		}
	case string: // some clients send numeric dates as strings
		var n json.Number = json.Number(v)
		if i, err := n.Int64(); err == nil {
			return i, true
		}
	}
	return 0, false
}

// audiences returns aud as a list (a string or an array).
func (j *jws) audiences() []string {
	switch v := j.claims["aud"].(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, a := range v {
			if s, ok := a.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// decodeB64Any decodes standard or URL base64, padded or not.
func decodeB64Any(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}
