package jwt

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
)

// jwk is one key of a JSON Web Key Set, as Entra publishes them.
type jwk struct {
	Kty string   `json:"kty"`
	Use string   `json:"use,omitempty"`
	Kid string   `json:"kid"`
	X5t string   `json:"x5t,omitempty"`
	Alg string   `json:"alg,omitempty"`
	N   string   `json:"n,omitempty"`
	E   string   `json:"e,omitempty"`
	X5c []string `json:"x5c,omitempty"`
}

type jwks struct {
	Keys []jwk `json:"keys"`
}

// key is a parsed signing key.
type key struct {
	kid string
	x5t string
	alg string // "" = any RSA algorithm
	pub *rsa.PublicKey
	err error // why the key could not be used
}

func parseJWK(k jwk) key {
	out := key{kid: k.Kid, x5t: k.X5t, alg: k.Alg}
	if k.Kty != "RSA" {
		out.err = fmt.Errorf("key type %q is not supported (RSA only)", k.Kty)
		return out
	}
	if k.Use != "" && k.Use != "sig" {
		out.err = fmt.Errorf("key use is %q, not sig", k.Use)
		return out
	}
	if k.N != "" && k.E != "" {
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			out.err = errors.New("key has a malformed modulus or exponent")
			return out
		}
		ei := new(big.Int).SetBytes(e)
		out.pub = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(ei.Int64())}
		if out.pub.N.BitLen() < 2048 {
			out.pub, out.err = nil, fmt.Errorf("RSA key of %d bits is too small", out.pub.N.BitLen())
		}
		return out
	}
	if len(k.X5c) > 0 {
		der, err := base64.StdEncoding.DecodeString(k.X5c[0])
		if err != nil {
			out.err = errors.New("key certificate (x5c) is not base64")
			return out
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			out.err = fmt.Errorf("key certificate (x5c) does not parse: %v", err)
			return out
		}
		pub, ok := cert.PublicKey.(*rsa.PublicKey)
		if !ok {
			out.err = errors.New("key certificate (x5c) does not hold an RSA key")
			return out
		}
		if pub.N.BitLen() < 2048 {
			out.err = fmt.Errorf("RSA key of %d bits is too small", pub.N.BitLen())
			return out
		}
		out.pub = pub
		return out
	}
	out.err = errors.New("key has neither n/e nor x5c")
	return out
}

// algHash maps a JWS algorithm to its hash and whether it is RSASSA-PSS.
func algHash(alg string) (h crypto.Hash, pss bool, ok bool) {
	switch alg {
	case "RS256":
		return crypto.SHA256, false, true
	case "RS384":
		return crypto.SHA384, false, true
	case "RS512":
		return crypto.SHA512, false, true
	case "PS256":
		return crypto.SHA256, true, true
	case "PS384":
		return crypto.SHA384, true, true
	case "PS512":
		return crypto.SHA512, true, true
	}
	return 0, false, false
}

// verifySignature checks sig over signed with pub using alg (already known to be supported).
func verifySignature(alg string, pub *rsa.PublicKey, signed, sig []byte) error {
	h, pss, _ := algHash(alg)
	hh := h.New()
	hh.Write(signed)
	digest := hh.Sum(nil)
	if pss {
		return rsa.VerifyPSS(pub, h, digest, sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	}
	return rsa.VerifyPKCS1v15(pub, h, digest, sig)
}
