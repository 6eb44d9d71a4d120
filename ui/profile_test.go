package ui

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/graph/profile"
)

// testJWT makes an unsigned-looking JWT with these claims (the UI only decodes).
func testJWT(t *testing.T, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "k1"}) + "." + enc(claims) + ".c2lnbmF0dXJl"
}

func graphToken(t *testing.T) string {
	return testJWT(t, map[string]any{
		"aud":                "https://graph.microsoft.com",
		"iss":                "https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",
		"tid":                "72f988bf-86f1-41af-91ab-2d7cd011db47",
		"oid":                "11111111-aaaa-4bbb-8ccc-000000000001",
		"scp":                "User.Read GroupMember.Read.All openid profile",
		"preferred_username": "adele@contoso.com",
		"name":               "Adele Vance",
		"ver":                "1.0",
		"iat":                testNow.Add(-8 * time.Minute).Unix(),
		"nbf":                testNow.Add(-8 * time.Minute).Unix(),
		"exp":                testNow.Add(52 * time.Minute).Unix(),
	})
}

func adeleSnapshot() *profile.Snapshot {
	return &profile.Snapshot{
		AccountID: adele.ID,
		Profile: &profile.Profile{ID: "11111111-aaaa-4bbb-8ccc-000000000001", DisplayName: "Adele Vance", GivenName: "Adele",
			Surname: "Vance", Mail: "adele@contoso.com", UserPrincipalName: "adele@contoso.com", JobTitle: "Retail Manager",
			Department: "Retail", OfficeLocation: "18/2111", MobilePhone: "+1 425 555 0109", BusinessPhones: []string{"+1 425 555 0100"},
			PreferredLanguage: "en-US", UserType: "Member"},
		Organization: &profile.Organization{TenantID: adele.TenantID, DisplayName: "Contoso", VerifiedDomains: []profile.VerifiedDomain{
			{Name: "contoso.com", IsDefault: true}, {Name: "contoso.onmicrosoft.com", IsInitial: true}}},
		Groups: []profile.Group{
			{ID: "aaaaaaaa-0000-4000-8000-000000000001", DisplayName: "Retail", Kind: profile.KindMicrosoft365},
			{ID: "aaaaaaaa-0000-4000-8000-000000000002", DisplayName: "Sales and Marketing", Kind: profile.KindSecurity},
			{ID: "aaaaaaaa-0000-4000-8000-000000000003", DisplayName: "All Company", Kind: profile.KindDistribution},
			{ID: "aaaaaaaa-0000-4000-8000-000000000004", DisplayName: "Global Reader", Kind: profile.KindRole},
		},
		ReadAt: testNow.Add(-time.Minute),
	}
}

func profileHarness(t *testing.T) *harness {
	h := newHarness(t, adele, alex)
	tok := graphToken(t)
	h.acc.token = func(_ context.Context, req auth.TokenRequest) (*auth.AccessToken, error) {
		return &auth.AccessToken{Value: tok, Header: "Bearer " + tok, ExpiresOn: testNow.Add(52 * time.Minute), AccountID: adele.ID}, nil
	}
	h.dir.fresh = map[string]*profile.Snapshot{adele.ID: adeleSnapshot()}
	return h
}

func TestProfileWindowLoadsAndRenders(t *testing.T) {
	h := profileHarness(t)
	h.state()
	h.u.ShowProfile()
	h.wait()
	p := h.u.profile
	if h.dir.refresh != 1 {
		t.Errorf("Graph read %d times on first open, want 1 (nothing cached)", h.dir.refresh)
	}
	if p.name.Text != "Adele Vance" || !strings.Contains(p.where.Text, "Contoso") {
		t.Errorf("header: %q / %q", p.name.Text, p.where.Text)
	}
	if got := p.act.status.Text; got != "Read from Microsoft Graph at 13:59:00." {
		t.Errorf("status %q", got)
	}
	test.AssertImageMatches(t, "profile.png", p.win.Canvas().Capture())

	p.tabs.SelectIndex(1)
	test.AssertImageMatches(t, "profile_organization.png", p.win.Canvas().Capture())
	p.tabs.SelectIndex(3)
	test.AssertImageMatches(t, "profile_token.png", p.win.Canvas().Capture())

	// opening again uses the cache and only re-reads the token
	h.u.ShowProfile()
	h.wait()
	if h.dir.refresh != 1 {
		t.Errorf("Graph read %d times after reopening, want 1 (cached)", h.dir.refresh)
	}
	// Refresh reads Graph again
	test.Tap(p.refreshB)
	h.wait()
	if h.dir.refresh != 2 {
		t.Errorf("Graph read %d times after Refresh, want 2", h.dir.refresh)
	}
}

func TestProfileTokenClaims(t *testing.T) {
	h := profileHarness(t)
	h.state()
	h.u.ShowProfile()
	h.wait()
	text := markupText(h.u.profile.token)
	for _, want := range []string{
		"https://graph.microsoft.com",
		"User.Read GroupMember.Read.All openid profile",
		"72f988bf-86f1-41af-91ab-2d7cd011db47",
		"11111111-aaaa-4bbb-8ccc-000000000001",
		"https://sts.windows.net/72f988bf-86f1-41af-91ab-2d7cd011db47/",
		"2026-03-02 14:52:00 (in 52 minutes)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("token tab lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "c2lnbmF0dXJl") || strings.Contains(text, graphToken(t)[:20]) {
		t.Error("the token tab shows the token itself")
	}
}

func TestProfileCopyButtons(t *testing.T) {
	h := profileHarness(t)
	h.state()
	h.u.ShowProfile()
	h.wait()
	tapButtonNear(t, h.u.profile.details, "Retail Manager")
	if got := h.clip.Content(); got != "Retail Manager" {
		t.Errorf("clipboard %q after copying the job title", got)
	}
	if got := h.u.profile.act.status.Text; got != "Job title copied." {
		t.Errorf("status %q", got)
	}
}

func TestGroupsFilterAndConsentHint(t *testing.T) {
	h := profileHarness(t)
	snap := adeleSnapshot()
	snap.GroupsErr = &profile.ConsentError{Permission: "GroupMember.Read.All", Op: "reading group memberships"}
	h.dir.fresh[adele.ID] = snap
	h.state()
	h.u.ShowProfile()
	h.wait()
	g := h.u.profile.groups
	if g.hint.Hidden || !strings.Contains(g.hint.Text, "missing GroupMember.Read.All") {
		t.Errorf("consent hint hidden %v: %q", g.hint.Hidden, g.hint.Text)
	}
	if len(g.shown) != 4 || g.count.Text != "4 groups and roles" {
		t.Errorf("before filtering: %d shown, count %q", len(g.shown), g.count.Text)
	}
	test.Type(g.filter, "sales")
	if len(g.shown) != 1 || g.shown[0].DisplayName != "Sales and Marketing" || g.count.Text != "1 of 4 groups and roles" {
		t.Errorf("filter 'sales': %v, count %q", g.shown, g.count.Text)
	}
	g.filter.SetText("directory role") // by kind
	if len(g.shown) != 1 || g.shown[0].DisplayName != "Global Reader" {
		t.Errorf("filter by kind: %v", g.shown)
	}
	g.filter.SetText("000000000003") // by id
	if len(g.shown) != 1 || g.shown[0].DisplayName != "All Company" {
		t.Errorf("filter by id: %v", g.shown)
	}
	g.filter.SetText("nothing like this")
	if len(g.shown) != 0 {
		t.Errorf("filter without match: %v", g.shown)
	}
	g.filter.SetText("")
	h.u.profile.tabs.SelectIndex(2)
	test.AssertImageMatches(t, "profile_groups.png", h.u.profile.win.Canvas().Capture())
}

func TestProfilePhotoAndGuest(t *testing.T) {
	h := profileHarness(t)
	snap := adeleSnapshot()
	img := image.NewNRGBA(image.Rect(0, 0, 8, 8))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	img.Set(0, 0, color.NRGBA{R: 0, G: 0x78, B: 0xd4, A: 0xff})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	snap.Photo = &profile.Photo{ContentType: "image/png", Data: buf.Bytes()}
	snap.HomeTenantID = "00000000-home-4000-8000-000000000000"
	h.dir.cached = map[string]*profile.Snapshot{adele.ID: snap}
	h.state()
	h.u.ShowProfile()
	h.wait()
	p := h.u.profile
	if h.dir.refresh != 0 {
		t.Errorf("Graph read although a snapshot was cached")
	}
	if got := p.where.Text; !strings.HasPrefix(got, "Guest in Contoso (home tenant 00000000-home-4000-8000-000000000000)") {
		t.Errorf("guest line %q", got)
	}
	if !strings.Contains(markupText(p.org), "Home tenant id") {
		t.Error("the Organization tab does not show the home tenant of a guest")
	}
	if !strings.Contains(test.RenderObjectToMarkup(p.avatar), "<image") {
		t.Errorf("no photo rendered:\n%s", test.RenderObjectToMarkup(p.avatar))
	}
}

func TestInitials(t *testing.T) {
	for _, tc := range []struct {
		prof profile.Profile
		acc  auth.Account
		want string
	}{
		{profile.Profile{GivenName: "adele", Surname: "vance"}, auth.Account{}, "AV"},
		{profile.Profile{DisplayName: "Jean-Luc de la Mer"}, auth.Account{}, "JM"},
		{profile.Profile{}, auth.Account{Name: "Élodie"}, "É"},
		{profile.Profile{}, auth.Account{Username: "svc@contoso.com"}, "S"},
	} {
		if got := initials(tc.prof, tc.acc); got != tc.want {
			t.Errorf("initials(%+v, %+v) = %q, want %q", tc.prof, tc.acc, got, tc.want)
		}
	}
}

// markupText joins the texts of the labels under o, one a line, to search them.
func markupText(o fyne.CanvasObject) string {
	var out []string
	var walk func(o fyne.CanvasObject)
	walk = func(o fyne.CanvasObject) {
		switch w := o.(type) {
		case *fyne.Container:
			for _, c := range w.Objects {
				walk(c)
			}
		case *widget.Label:
			out = append(out, w.Text)
		}
	}
	walk(o)
	return strings.Join(out, "\n")
}

// tapButtonNear taps the button next to the label showing text (a copy button).
func tapButtonNear(t *testing.T, root fyne.CanvasObject, text string) {
	t.Helper()
	var walk func(o fyne.CanvasObject) bool
	walk = func(o fyne.CanvasObject) bool {
		c, ok := o.(*fyne.Container)
		if !ok {
			return false
		}
		var label bool
		var button *widget.Button
		for _, child := range c.Objects {
			switch w := child.(type) {
			case *widget.Label:
				label = label || w.Text == text
			case *widget.Button:
				button = w
			}
		}
		if label && button != nil {
			test.Tap(button)
			return true
		}
		for _, child := range c.Objects {
			if walk(child) {
				return true
			}
		}
		return false
	}
	if !walk(root) {
		t.Fatalf("no button next to %q", text)
	}
}
