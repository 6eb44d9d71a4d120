package sim_test

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entra-companion/entra-companion/sim"
)

// stepClock is a clock the test moves by hand.
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

const reuseScope = "User.Read openid profile offline_access"

// redeem refreshes rt and returns the status, the error code and the new refresh token.
func redeem(t *testing.T, s *sim.Server, rt string) (int, string, string) {
	t.Helper()
	st, body := refresh(t, s, sim.TenantContoso, rt, reuseScope)
	next, _ := body["refresh_token"].(string)
	code, _ := body["error"].(string)
	return st, code, next
}

// Without a reuse interval a refresh token is strictly single use.
func TestRefreshTokenStrictByDefault(t *testing.T) {
	t.Parallel()
	s := sim.Start(t)
	rt := userTokens(t, s, sim.TenantContoso, sim.UserAdele, reuseScope)["refresh_token"].(string)
	if st, _, _ := redeem(t, s, rt); st != 200 {
		t.Fatalf("first redemption: %d", st)
	}
	st, body := refresh(t, s, sim.TenantContoso, rt, reuseScope)
	wantEntraError(t, st, body, 400, "invalid_grant", 70000)
}

// With a reuse interval the immediately previous refresh token of a grant is accepted once
// more within the interval, and only then.
func TestRefreshTokenReuseInterval(t *testing.T) {
	t.Parallel()
	clock := &stepClock{now: time.Now().Truncate(time.Second)}
	s := sim.Start(t, sim.Options{Now: clock.Now, RefreshTokenReuseInterval: 30 * time.Second})
	signIn := func() string {
		return userTokens(t, s, sim.TenantContoso, sim.UserAdele, reuseScope)["refresh_token"].(string)
	}

	t.Run("once within the interval", func(t *testing.T) {
		r1 := signIn()
		st, _, r2 := redeem(t, s, r1)
		if st != 200 || r2 == "" {
			t.Fatalf("first redemption: %d", st)
		}
		clock.advance(10 * time.Second)
		st, _, r3 := redeem(t, s, r1) // the client never stored r2 (killed): r1 still works once
		if st != 200 || r3 == "" || r3 == r2 {
			t.Fatalf("reuse within the interval: %d", st)
		}
		if st, code, _ := redeem(t, s, r1); st != 400 || code != "invalid_grant" {
			t.Fatalf("second reuse: %d %s, want 400 invalid_grant", st, code)
		}
		if st, _, _ := redeem(t, s, r3); st != 200 {
			t.Fatalf("the token issued on reuse: %d", st)
		}
	})
	t.Run("not after the interval", func(t *testing.T) {
		r1 := signIn()
		if st, _, _ := redeem(t, s, r1); st != 200 {
			t.Fatal(st)
		}
		clock.advance(31 * time.Second)
		st, body := refresh(t, s, sim.TenantContoso, r1, reuseScope)
		wantEntraError(t, st, body, 400, "invalid_grant", 70000)
	})
	t.Run("not once its successor was redeemed", func(t *testing.T) {
		r1 := signIn()
		_, _, r2 := redeem(t, s, r1)
		if st, _, _ := redeem(t, s, r2); st != 200 {
			t.Fatal(st)
		}
		if st, code, _ := redeem(t, s, r1); st != 400 || code != "invalid_grant" {
			t.Fatalf("r1 after r2 was redeemed: %d %s", st, code)
		}
	})
	t.Run("revocation still wins", func(t *testing.T) {
		r1 := signIn()
		if st, _, _ := redeem(t, s, r1); st != 200 {
			t.Fatal(st)
		}
		s.RevokeRefreshTokens(sim.UserAdele)
		defer s.RestoreRefreshTokens(sim.UserAdele)
		st, body := refresh(t, s, sim.TenantContoso, r1, reuseScope)
		wantEntraError(t, st, body, 400, "invalid_grant", 50173)
	})
}

func gzipped(t *testing.T, s string) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return &b
}

// Graph reads gzip-compressed JSON request bodies ($batch, getMemberObjects), as
// msgraph-sdk-go sends them, and refuses codings it cannot read.
func TestGraphGzipRequestBody(t *testing.T) {
	t.Parallel()
	s := sim.Start(t)
	tok := issue(t, s, sim.UserAdele, "https://graph.microsoft.com/User.Read", "https://graph.microsoft.com/GroupMember.Read.All")
	post := func(path, encoding string, body *bytes.Buffer) (*http.Response, map[string]any) {
		t.Helper()
		req, err := http.NewRequest("POST", s.GraphURL()+path, body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		if encoding != "" {
			req.Header.Set("Content-Encoding", encoding)
		}
		resp, err := s.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var out map[string]any
		decodeJSON(t, resp, &out)
		return resp, out
	}
	batch := `{"requests":[{"id":"1","method":"GET","url":"/me?$select=displayName"},{"id":"2","method":"GET","url":"/organization"}]}`
	resp, out := post("/$batch", "gzip", gzipped(t, batch))
	if resp.StatusCode != 200 {
		t.Fatalf("gzip $batch: %s %v", resp.Status, out)
	}
	rs, _ := out["responses"].([]any)
	if len(rs) != 2 {
		t.Fatalf("gzip $batch: %v", out)
	}
	for _, r := range rs {
		if m := r.(map[string]any); m["status"] != float64(200) {
			t.Errorf("step %v: %v", m["id"], m["status"])
		}
	}
	resp, out = post("/me/getMemberObjects", "gzip", gzipped(t, `{"securityEnabledOnly":false}`))
	if v, _ := out["value"].([]any); resp.StatusCode != 200 || len(v) == 0 {
		t.Fatalf("gzip getMemberObjects: %s %v", resp.Status, out)
	}
	resp, out = post("/$batch", "gzip", bytes.NewBufferString(batch))
	if resp.StatusCode != 400 || !strings.Contains(out["error"].(map[string]any)["message"].(string), "gzip") {
		t.Errorf("plain body labelled gzip: %s %v", resp.Status, out)
	}
	resp, out = post("/$batch", "br", bytes.NewBufferString(batch))
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Errorf("br body: %s %v", resp.Status, out)
	}
	if resp, out = post("/$batch", "", bytes.NewBufferString(batch)); resp.StatusCode != 200 {
		t.Errorf("plain $batch: %s %v", resp.Status, out)
	}
}
