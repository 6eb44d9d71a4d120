package graph

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/entra-companion/entra-companion/graph/profile"
	"github.com/entra-companion/entra-companion/sim"
)

// countingTransport counts requests per method and path on their way to the sim.
type countingTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	n    map[string]int
}

func (t *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.mu.Lock()
	t.n[r.Method+" "+r.URL.Path]++
	t.mu.Unlock()
	return t.base.RoundTrip(r)
}

func (t *countingTransport) counts() map[string]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]int{}
	for k, v := range t.n {
		out[k] = v
	}
	return out
}

func (t *countingTransport) reset() {
	t.mu.Lock()
	clear(t.n)
	t.mu.Unlock()
}

func counting(s *sim.Server) (*http.Client, *countingTransport) {
	ct := &countingTransport{base: s.Client().Transport, n: map[string]int{}}
	return &http.Client{Transport: ct}, ct
}

// wantProfile is what Graph must say of a sim user.
func wantProfile(u sim.User) *profile.Profile {
	return &profile.Profile{
		ID: u.ObjectID, DisplayName: u.DisplayName, GivenName: u.GivenName, Surname: u.Surname,
		Mail: u.Mail, UserPrincipalName: u.UPN, JobTitle: u.JobTitle, Department: u.Department,
		OfficeLocation: u.OfficeLocation, MobilePhone: u.MobilePhone, BusinessPhones: u.BusinessPhones,
		PreferredLanguage: u.PreferredLanguage, UserType: u.UserType,
	}
}

func jsonEqual(t *testing.T, what string, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func TestSnapshotEveryUser(t *testing.T) {
	s := sim.Start(t)
	hc, ct := counting(s)
	creds := newSimCreds(s, "")
	c := newSimClient(t, s, creds, func(o *Options) { o.HTTPClient = hc })
	tenants := map[string]sim.Tenant{}
	for _, tn := range s.Tenants() {
		tenants[tn.ID] = tn
	}
	ctx := context.Background()

	for _, u := range s.Users() {
		t.Run(u.UPN, func(t *testing.T) {
			batches := s.Count(sim.EndpointGraphBatch)
			ct.reset()
			snap, err := c.Snapshot(ctx, u.UPN)
			if err != nil {
				t.Fatal(err)
			}
			// Every field as the sim holds it.
			jsonEqual(t, "profile", snap.Profile, wantProfile(u))
			tn := tenants[u.TenantID]
			if snap.Organization == nil || snap.Organization.TenantID != u.TenantID || snap.Organization.DisplayName != tn.DisplayName {
				t.Errorf("organization %+v, want %s %s", snap.Organization, u.TenantID, tn.DisplayName)
			} else {
				var names []string
				for _, d := range snap.Organization.VerifiedDomains {
					names = append(names, d.Name)
				}
				if !slices.Equal(names, tn.VerifiedDomains) {
					t.Errorf("verified domains %v, want %v", names, tn.VerifiedDomains)
				}
			}
			if snap.HomeTenantID != u.HomeTenantID {
				t.Errorf("home tenant %s, want %s", snap.HomeTenantID, u.HomeTenantID)
			}
			if (snap.Photo != nil) != u.HasPhoto || snap.PhotoErr != nil {
				t.Errorf("photo %v (err %v), has photo %v", snap.Photo != nil, snap.PhotoErr, u.HasPhoto)
			}
			if snap.Photo != nil && (len(snap.Photo.Data) == 0 || !strings.HasPrefix(snap.Photo.ContentType, "image/")) {
				t.Errorf("photo %s, %d bytes", snap.Photo.ContentType, len(snap.Photo.Data))
			}
			if snap.GroupsErr != nil || snap.OrganizationErr != nil {
				t.Errorf("GroupsErr %v, OrganizationErr %v", snap.GroupsErr, snap.OrganizationErr)
			}
			var ids []string
			roles := 0
			for _, g := range snap.Groups {
				if g.Kind == profile.KindRole {
					roles++
				} else {
					ids = append(ids, g.ID)
				}
				if g.DisplayName == "" || g.Kind == profile.KindUnknown {
					t.Errorf("group %+v lacks a name or kind", g)
				}
			}
			slices.Sort(ids)
			want := slices.Sorted(slices.Values(u.Groups))
			if !slices.Equal(ids, want) || roles != len(u.Roles) {
				t.Errorf("%d groups and %d roles, want %d and %d", len(ids), roles, len(want), len(u.Roles))
			}
			if snap.ReadAt.IsZero() || snap.AccountID != u.UPN {
				t.Errorf("ReadAt %v AccountID %q", snap.ReadAt, snap.AccountID)
			}

			// One $batch for profile, organization and the first groups page; the photo beside.
			if n := s.Count(sim.EndpointGraphBatch) - batches; n != 1 {
				t.Errorf("%d $batch calls, want 1", n)
			}
			got := ct.counts()
			base := strings.TrimPrefix(s.GraphURL(), "https://"+s.GraphHost())
			if got["POST "+base+"/$batch"] != 1 || got["GET "+base+"/me"] != 0 || got["GET "+base+"/organization"] != 0 || got["GET "+base+"/me/photo/$value"] != 1 {
				t.Errorf("requests: %v", got)
			}
		})
	}
}

func TestSnapshotGradyAllGroupsAndRoles(t *testing.T) {
	s := sim.Start(t)
	hc, ct := counting(s)
	c := newSimClient(t, s, newSimCreds(s, ""), func(o *Options) { o.HTTPClient = hc })
	c.pageSize = 50 // the first page comes in the batch, the other five through the iterator
	snap, err := c.Refresh(context.Background(), sim.UserGrady)
	if err != nil {
		t.Fatal(err)
	}
	if n := ct.counts()["GET /v1.0/me/transitiveMemberOf"]; n != 5 {
		t.Errorf("%d further pages, want 5", n)
	}
	u, _ := s.User(sim.UserGrady)
	if len(snap.Groups) != len(u.Groups)+len(u.Roles) || len(snap.Groups) < 260 {
		t.Fatalf("%d groups, want %d", len(snap.Groups), len(u.Groups)+len(u.Roles))
	}
	kinds := map[profile.GroupKind]int{}
	for _, g := range snap.Groups {
		kinds[g.Kind]++
	}
	if kinds[profile.KindSecurity] == 0 || kinds[profile.KindMicrosoft365] == 0 || kinds[profile.KindDistribution] == 0 || kinds[profile.KindUnknown] != 0 {
		t.Errorf("kinds %v", kinds)
	}

	// Adele's role comes back as a role.
	snap, err = c.Refresh(context.Background(), sim.UserAdele)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, g := range snap.Groups {
		if g.Kind == profile.KindRole && g.DisplayName == "Global Reader" {
			found = true
		}
	}
	if !found {
		t.Errorf("no Global Reader role in %+v", snap.Groups)
	}
}

func TestMeganHasNoPhoto(t *testing.T) {
	s := sim.Start(t)
	c := newSimClient(t, s, newSimCreds(s, ""))
	p, err := c.Photo(context.Background(), sim.UserMegan)
	if p != nil || err != nil {
		t.Fatalf("photo %v, err %v", p, err)
	}
	p, err = c.Photo(context.Background(), sim.UserAdele)
	if p == nil || err != nil {
		t.Fatalf("Adele's photo %v, err %v", p, err)
	}
}

func TestRetryAfter(t *testing.T) {
	ctx := context.Background()
	for _, ep := range []sim.Endpoint{sim.EndpointGraphMemberOf, sim.EndpointGraphBatch, sim.EndpointGraphMe,
		sim.EndpointGraphOrganization, sim.EndpointGraphPhoto} {
		t.Run(string(ep), func(t *testing.T) {
			s := sim.Start(t)
			c := newSimClient(t, s, newSimCreds(s, ""))
			adele, _ := s.User(sim.UserAdele)
			s.InjectFault(ep, sim.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Second, Count: 1})
			start := time.Now()
			snap, err := c.Refresh(ctx, sim.UserAdele)
			if err != nil {
				t.Fatal(err)
			}
			if d := time.Since(start); d < time.Second {
				t.Errorf("answered after %v: Retry-After not honoured", d)
			}
			if snap.GroupsErr != nil || snap.PhotoErr != nil || snap.OrganizationErr != nil || len(snap.Groups) != len(adele.Groups)+len(adele.Roles) || snap.Photo == nil {
				t.Errorf("snapshot incomplete: %d groups, photo %v, errs %v %v %v", len(snap.Groups), snap.Photo != nil, snap.GroupsErr, snap.PhotoErr, snap.OrganizationErr)
			}
		})
	}

	t.Run("bounded", func(t *testing.T) {
		s := sim.Start(t)
		c := newSimClient(t, s, newSimCreds(s, ""), func(o *Options) { o.MaxRetries = 2 })
		s.InjectFault(sim.EndpointGraphMe, sim.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Second, Count: 10})
		before := s.Count(sim.EndpointGraphMe)
		_, err := c.Profile(ctx, sim.UserAdele)
		if !errors.Is(err, ErrThrottled) {
			t.Fatalf("err = %v, want ErrThrottled", err)
		}
		var ge *Error
		if !errors.As(err, &ge) || ge.Status != 429 || ge.Code != "TooManyRequests" || ge.RetryAfter != "1" {
			t.Errorf("error %#v", ge)
		}
		if n := s.Count(sim.EndpointGraphMe) - before; n != 3 {
			t.Errorf("%d calls, want 3 (1 + 2 retries)", n)
		}
	})

	t.Run("unavailable", func(t *testing.T) {
		s := sim.Start(t)
		c := newSimClient(t, s, newSimCreds(s, ""), func(o *Options) { o.MaxRetries = -1 })
		s.InjectFault(sim.EndpointGraphOrganization, sim.Fault{Status: http.StatusServiceUnavailable, Count: 5})
		_, err := c.Organization(ctx, sim.UserAdele)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "503") {
			t.Fatalf("err = %v", err)
		}
		if n := s.Count(sim.EndpointGraphOrganization); n != 1 {
			t.Errorf("%d calls with retries off", n)
		}
	})
}

func TestConsentFallback(t *testing.T) {
	s := sim.Start(t)
	creds := newSimCreds(s, "")
	creds.scopes[sim.UserAdele] = []string{"User.Read"}
	c := newSimClient(t, s, creds)
	ctx := context.Background()
	u, _ := s.User(sim.UserAdele)

	snap, err := c.Refresh(ctx, sim.UserAdele)
	if err != nil {
		t.Fatal(err)
	}
	var ce *profile.ConsentError
	if !errors.As(snap.GroupsErr, &ce) || ce.Permission != "GroupMember.Read.All" || ce.Op != "reading group memberships" {
		t.Fatalf("GroupsErr = %v", snap.GroupsErr)
	}
	check := func(groups []profile.Group) {
		t.Helper()
		var ids []string
		for _, g := range groups {
			if g.Kind != profile.KindUnknown {
				t.Errorf("claim group %+v has a kind", g)
			}
			ids = append(ids, g.ID)
		}
		if !slices.Equal(ids, u.Groups) {
			t.Errorf("groups %v, want the claim's %v", ids, u.Groups)
		}
	}
	check(snap.Groups)
	if snap.Profile == nil || snap.Profile.ID != u.ObjectID {
		t.Error("profile missing")
	}

	groups, err := c.Groups(ctx, sim.UserAdele)
	if !errors.Is(err, profile.ErrConsent) {
		t.Fatalf("Groups err = %v", err)
	}
	check(groups)
}

func TestGuestTenants(t *testing.T) {
	s := sim.Start(t)
	c := newSimClient(t, s, newSimCreds(s, ""))
	snap, err := c.Refresh(context.Background(), sim.UserAdeleGuest)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Organization.TenantID != sim.TenantFabrikamID || snap.HomeTenantID != sim.TenantContosoID || snap.Profile.UserType != "Guest" {
		t.Fatalf("org %s home %s type %s", snap.Organization.TenantID, snap.HomeTenantID, snap.Profile.UserType)
	}
	// As `me --json` prints it.
	b, _ := json.Marshal(snap)
	for _, want := range []string{`"home_tenant_id":"` + sim.TenantContosoID + `"`, `"tenant_id":"` + sim.TenantFabrikamID + `"`, `"user_type":"Guest"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s: %s", want, b)
		}
	}
}

func TestCacheSingleflightAndActiveAccount(t *testing.T) {
	s := sim.Start(t)
	creds := newSimCreds(s, sim.UserAdele)
	c := newSimClient(t, s, creds)
	ctx := context.Background()

	if _, ok := c.Cached(""); ok {
		t.Fatal("cached before any read")
	}
	var wg sync.WaitGroup
	snaps := make([]any, 8)
	for i := range snaps {
		wg.Go(func() {
			snap, err := c.Refresh(ctx, "")
			if err != nil {
				t.Error(err)
			}
			snaps[i] = snap
		})
	}
	wg.Wait()
	if n := s.Count(sim.EndpointGraphBatch); n != 1 {
		t.Errorf("%d batches for 8 concurrent refreshes", n)
	}
	cached, ok := c.Cached("")
	if !ok || cached.Profile.UserPrincipalName != sim.UserAdele {
		t.Fatal("not cached")
	}
	if again, _ := c.Snapshot(ctx, ""); again != cached || s.Count(sim.EndpointGraphBatch) != 1 {
		t.Error("Snapshot read Graph although cached")
	}
	if creds.issued.Load() != 1 {
		t.Errorf("%d tokens issued", creds.issued.Load())
	}

	// Another active account: the previous one's snapshot is not served for "".
	creds.setActive(sim.UserMegan)
	if snap, ok := c.Cached(""); ok {
		t.Fatalf("cached %s for the new active account", snap.Profile.UserPrincipalName)
	}
	snap, err := c.Snapshot(ctx, "")
	if err != nil || snap.Profile.UserPrincipalName != sim.UserMegan {
		t.Fatalf("%v %v", snap, err)
	}
	// A caller that gives up does not cancel the shared read.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Refresh(cctx, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v", err)
	}
}

func TestUnauthorized(t *testing.T) {
	s := sim.Start(t)
	creds := newSimCreds(s, "")
	c := newSimClient(t, s, creds)
	ctx := context.Background()
	if _, err := c.Profile(ctx, sim.UserAlex); err != nil {
		t.Fatal(err)
	}
	// Revoked tokens: Graph's claims challenge makes the SDK ask the credential once more,
	// which (this test's credential knows no claims) hands out the same token: 401.
	s.RevokeAccessTokens(sim.UserAlex)
	_, err := c.Profile(ctx, sim.UserAlex)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("err = %v", err)
	}
	_, err = c.Refresh(ctx, sim.UserAlex)
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("snapshot err = %v", err)
	}
	creds.mu.Lock()
	tok := creds.tokens[sim.UserAlex].Token
	creds.mu.Unlock()
	if strings.Contains(err.Error(), tok) || strings.Contains(err.Error(), tok[len(tok)-20:]) {
		t.Error("error shows the token")
	}
}
