package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"testing"
)

// Run: go test -run '^$' -bench . -benchmem ./auth/ (the keychain benchmarks need the Secret
// Service: scripts/bench-proxy --go-bench runs them in a private keyring session).

// BenchmarkTokenHotPathSerial is BenchmarkTokenHotPath on one goroutine: the latency of one
// call rather than the throughput of all CPUs.
func BenchmarkTokenHotPathSerial(b *testing.B) {
	br, req := hotBroker(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Token(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// cachePart is a stand-in for one account's part of the MSAL cache as the vault stores it
// (refresh token, id token, account, app metadata): about 6 KB of JSON, random where MSAL's
// has token material, so that nothing compresses or repeats.
func cachePart(tb testing.TB) []byte {
	tb.Helper()
	rnd := func(n int) string {
		raw := make([]byte, n*3/4)
		_, _ = rand.Read(raw)
		return base64.RawURLEncoding.EncodeToString(raw)
	}
	home := "00000000-0000-0000-66f3-3332eca7ea81.72f988bf-86f1-41af-91ab-2d7cd011db47"
	env := "login.microsoftonline.com"
	client := "7d1e3c5a-9b2f-4e6d-8a0c-1f2e3d4c5b61"
	part := map[string]map[string]map[string]string{
		secRefreshToken: {home + "-" + env + "-refreshtoken-" + client + "--": {
			"home_account_id": home, "environment": env, "credential_type": "RefreshToken",
			"client_id": client, "secret": "1.AXkA" + rnd(1400),
		}},
		secIDToken: {home + "-" + env + "-idtoken-" + client + "-organizations-": {
			"home_account_id": home, "environment": env, "credential_type": "IdToken",
			"client_id": client, "realm": "organizations",
			"secret": "eyJ" + rnd(60) + "." + rnd(2400) + "." + rnd(342),
		}},
		secAccount: {home + "-" + env + "-organizations": {
			"home_account_id": home, "environment": env, "realm": "organizations",
			"local_account_id": "00000000-0000-0000-66f3-3332eca7ea81", "authority_type": "MSSTS",
			"username": "adele.vance@contoso.onmicrosoft.com", "client_info": rnd(120),
		}},
		secAppMetadata: {"appmetadata-" + env + "-" + client: {"client_id": client, "environment": env, "family_id": ""}},
	}
	data, err := json.Marshal(part)
	if err != nil {
		tb.Fatal(err)
	}
	if len(data) < 5500 || len(data) > 6500 {
		tb.Fatalf("cache part is %d bytes, want about 6 KB", len(data))
	}
	return data
}

// BenchmarkKeychainRoundTrip writes a 6 KB cache part to the real OS keychain (the Secret
// Service over D-Bus on Linux) as one item and reads it back.
func BenchmarkKeychainRoundTrip(b *testing.B) {
	kc := testKeychain(b)
	v := string(cachePart(b))
	b.SetBytes(int64(len(v)))
	b.ReportAllocs()
	for b.Loop() {
		if err := kc.Set("bench-part", v); err != nil {
			b.Fatal(err)
		}
		got, err := kc.Get("bench-part")
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != len(v) {
			b.Fatalf("read %d bytes, wrote %d", len(got), len(v))
		}
	}
}

// BenchmarkKeychainBlobRoundTrip is the same through the chunked store with Windows' 2,560-byte
// limit: three chunks and a manifest on the real keychain.
func BenchmarkKeychainBlobRoundTrip(b *testing.B) {
	benchBlobRoundTrip(b, testKeychain(b))
}

// BenchmarkBlobRoundTrip is the chunked store's own cost: the 6 KB part through the 2,560-byte
// limit on a MemoryStore (no keychain), put (chunks, manifest, cleanup of the other slot) then
// get (manifest, chunks, checksum).
func BenchmarkBlobRoundTrip(b *testing.B) {
	benchBlobRoundTrip(b, &MemoryStore{MaxValue: 2560})
}

func benchBlobRoundTrip(b *testing.B, s SecretStore) {
	bs := newBlobStore(s, 2560)
	data := cachePart(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := bs.put("bench-part", data); err != nil {
			b.Fatal(err)
		}
		got, err := bs.get("bench-part")
		if err != nil {
			b.Fatal(err)
		}
		if len(got) != len(data) {
			b.Fatalf("read %d bytes, wrote %d", len(got), len(data))
		}
	}
	b.StopTimer()
	if err := bs.del("bench-part"); err != nil {
		b.Fatal(err)
	}
}
