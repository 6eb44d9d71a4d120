package jwt

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// FuzzDecode checks that Decode never panics, that what it decodes re-encodes to the input, and
// that its errors stay short (they never echo the token). Seeds are in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln")
	f.Add("a.b")
	f.Add("..")
	f.Fuzz(func(t *testing.T, in string) {
		tok, err := Decode(in)
		if err != nil {
			if tok != nil {
				t.Fatal("a token and an error")
			}
			if len(err.Error()) > 200 {
				t.Fatalf("error too long (%d bytes)", len(err.Error()))
			}
			return
		}
		if len(tok.Raw) > MaxTokenSize || !strings.Contains(in, tok.Raw) {
			t.Fatalf("Raw is not the trimmed input")
		}
		e := base64.RawURLEncoding.EncodeToString
		parts := []string{e(tok.HeaderJSON), e(tok.ClaimsJSON), e(tok.Signature)}
		if strings.Join(parts, ".") != tok.Raw {
			t.Fatalf("parts do not re-encode to the token")
		}
		if !bytes.Equal(tok.Signed, []byte(parts[0]+"."+parts[1])) {
			t.Fatalf("Signed is not header.payload")
		}
		if tok.Claims == nil {
			t.Fatal("nil claims")
		}
		// The typed helpers never panic on whatever the claims hold.
		for name := range tok.Claims {
			tok.Claims.String(name)
			tok.Claims.Strings(name)
			tok.Claims.Time(name)
		}
		tok.Claims.Audience()
		tok.Claims.PreferredUsername()
		tok.Claims.ExpiresAt()
	})
}
