package ui

import (
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2/test"

	"github.com/entra-companion/entra-companion/localproxy"
)

func TestProxyWindowRendersRoutesAndLiveLog(t *testing.T) {
	h := newHarness(t, adele)
	h.u.Start()
	h.wait()
	h.flush()
	h.proxy.emit(localproxy.LogEntry{Time: testNow.Add(-2 * time.Second), Method: "GET", Path: "/graph/v1.0/me", Route: "graph",
		Account: "adele@contoso.com", Status: 200, Duration: 38 * time.Millisecond, Bytes: 1234})
	h.u.ShowProxy()
	v := h.u.proxy
	if len(v.entries) != 1 {
		t.Fatalf("log shows %d entries, want the one served before the window opened", len(v.entries))
	}
	// entries arriving while the window is open appear at the top
	h.proxy.emit(localproxy.LogEntry{Time: testNow, Method: "POST", Path: "/cms/api/articles", Route: "cms",
		Account: "adele@contoso.com", Status: 401, Duration: 120 * time.Millisecond, Bytes: 96, Error: "needs_sign_in"})
	h.pump()
	if len(v.entries) != 2 || v.entries[0].Path != "/cms/api/articles" {
		t.Fatalf("live log = %+v, want the new entry first", v.entries)
	}
	if v.curl.Text != "curl http://127.0.0.1:8631/graph/v1.0/me" || v.base.Text != "http://127.0.0.1:8631" {
		t.Errorf("base %q, curl %q", v.base.Text, v.curl.Text)
	}
	test.AssertImageMatches(t, "proxy.png", v.win.Canvas().Capture())

	test.Tap(v.toggle)
	h.wait()
	h.flush()
	if v.status.Text != "The proxy is off" || v.toggle.Text != "Turn on" {
		t.Errorf("after turning off: %q / %q", v.status.Text, v.toggle.Text)
	}
}

func TestLogLine(t *testing.T) {
	got := logLine(localproxy.LogEntry{Time: testNow, Method: "GET", Path: "/graph/v1.0/me", Route: "graph", Account: "adele@contoso.com",
		Status: 502, Duration: 1500 * time.Millisecond, Bytes: 2_500_000, Error: "upstream_unreachable"})
	for _, want := range []string{"14:00:00", "GET", "/graph/v1.0/me", "502", "1.5s", "2.5MB", "graph", "adele@contoso.com", "upstream_unreachable"} {
		if !strings.Contains(got, want) {
			t.Errorf("log line %q lacks %q", got, want)
		}
	}
}
