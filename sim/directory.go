package sim

import (
	"crypto/sha1"
	"fmt"
	"slices"
	"strings"
)

// Tenants of the simulated directory.
const (
	// TenantContoso is the initial domain of the Contoso tenant.
	TenantContoso = "contoso.onmicrosoft.com"
	// TenantContosoID is the tenant id of Contoso.
	TenantContosoID = "0c7a1d6e-3b5f-4a2e-9c11-5e6f7a8b9c01"
	// TenantFabrikam is the initial domain of the Fabrikam tenant.
	TenantFabrikam = "fabrikam.onmicrosoft.com"
	// TenantFabrikamID is the tenant id of Fabrikam.
	TenantFabrikamID = "2f4e6a8c-1b3d-4c5e-8f70-9a1b2c3d4e02"
)

// Applications registered in the simulated directory.
const (
	// PublicClientID is the sim's own public client (the desktop app registration).
	PublicClientID = "7d1e3c5a-9b2f-4e6d-8a0c-1f2e3d4c5b61"
	// GraphCLIClientID is Microsoft Graph Command Line Tools, accepted as a public client too.
	GraphCLIClientID = "14d82eec-204b-4c2f-b7e8-296a70dab67e"
	// ConfidentialClientID is a confidential client (client secret and certificate credentials).
	ConfidentialClientID = "b3a5c7e9-2d4f-4a6b-9c8e-0f1a2b3c4d72"
	// CMSClientID is the CMS API's application id; it is the aud of CMS access tokens.
	CMSClientID = "c9e8d7f6-5a4b-4c3d-8e2f-1a0b9c8d7e83"
	// CMSAudience is the CMS API's identifier URI, the resource part of its scopes.
	CMSAudience = "api://entra-companion-cms"
	// GraphAudience is Microsoft Graph's identifier URI and the aud of Graph access tokens.
	GraphAudience = "https://graph.microsoft.com"
	// GraphAppID is Microsoft Graph's application id.
	GraphAppID = "00000003-0000-0000-c000-000000000000"
)

// Users of the simulated directory (user principal names).
const (
	// UserAdele has a full profile, a photo, five groups and the Global Reader role.
	UserAdele = "adele@contoso.onmicrosoft.com"
	// UserMegan has no photo and no mobile phone.
	UserMegan = "megan@contoso.onmicrosoft.com"
	// UserGrady is in 260 groups (security, Microsoft 365 and distribution): Graph pages them
	// and tokens carry the groups overage claim instead of the groups.
	UserGrady = "grady@contoso.onmicrosoft.com"
	// UserAlex is a member of Fabrikam.
	UserAlex = "alex@fabrikam.onmicrosoft.com"
	// UserAdeleGuest is Adele as a guest in Fabrikam: its own object id there, home tenant Contoso.
	UserAdeleGuest = "adele_contoso.onmicrosoft.com#EXT#@fabrikam.onmicrosoft.com"
)

// RoleGlobalReader is the role template id of the Global Reader directory role.
const RoleGlobalReader = "f2ef992c-3afb-46b9-b7cf-a126ee74c451"

// Client kinds.
const (
	// KindPublic is a public client: no credential, PKCE required.
	KindPublic = "public"
	// KindConfidential is a confidential client: a secret or a certificate.
	KindConfidential = "confidential"
	// KindResource is an API registration that exposes scopes and app roles.
	KindResource = "resource"
)

// Tenant is a directory tenant.
type Tenant struct {
	ID, Domain, DisplayName string
	// VerifiedDomains lists the tenant's domains, the initial (default) one first; each one
	// is accepted as the tenant segment of an authority URL.
	VerifiedDomains []string
}

// User is a user object in one tenant. A guest is a separate object in the resource tenant
// whose HomeTenantID and HomeObjectID name the home account.
type User struct {
	ObjectID, UPN, DisplayName, GivenName, Surname, Mail, JobTitle, Department, OfficeLocation,
	MobilePhone, PreferredLanguage string
	BusinessPhones []string
	// UserType is "Member" or "Guest".
	UserType string
	// TenantID is the tenant this user object lives in.
	TenantID string
	// HomeTenantID is the user's home tenant (differs from TenantID for a guest).
	HomeTenantID string
	// HomeObjectID is the user's oid in the home tenant (equal to ObjectID for members).
	HomeObjectID string
	// Password is what the login page accepts (a guest signs in with its home password).
	Password string
	// HasPhoto says whether Graph serves a photo for this user.
	HasPhoto bool
	// Groups holds group object ids (transitive membership).
	Groups []string
	// Roles holds directory role template ids.
	Roles []string
}

// Client is an application registration.
type Client struct {
	ID, Name string
	// Kind is KindPublic, KindConfidential or KindResource.
	Kind string
	// Secret is the client secret of a confidential client.
	Secret string
	// IdentifierURI is the identifier URI of a resource, e.g. CMSAudience.
	IdentifierURI string
	// Scopes are the delegated scopes a resource exposes.
	Scopes []string
	// AppRoles are the application roles a resource exposes.
	AppRoles []string
}

// group kinds as Graph shows them.
const (
	groupSecurity     = "security"
	groupUnified      = "unified"
	groupDistribution = "distribution"
)

type group struct {
	ID, TenantID, DisplayName, Description, Kind, MailNickname string
}

type directoryRole struct {
	TemplateID, DisplayName, Description string
}

// resource is an API that access tokens are issued for.
type resource struct {
	AppID    string
	URIs     []string // identifier URIs, lowercase, no trailing slash
	Audience string   // aud of its access tokens
	Name     string
	Scopes   []string // delegated
	Roles    []string // application
}

// clientReg is a client registration with what the sim needs beyond the exported Client.
type clientReg struct {
	Client
	// granted delegated permissions (admin consent) per resource app id.
	delegated map[string][]string
	// granted application permissions per resource app id.
	appRoles map[string][]string
	// groupClaims: tokens for this app carry groups/wids (groupMembershipClaims "All").
	groupClaims bool
}

type directory struct {
	tenants   []*Tenant
	users     []*User
	groups    map[string]*group
	roles     map[string]*directoryRole // by template id
	clients   []*clientReg
	resources []*resource
}

func newDirectory() *directory {
	d := &directory{groups: map[string]*group{}, roles: map[string]*directoryRole{}}
	d.tenants = []*Tenant{
		{ID: TenantContosoID, Domain: TenantContoso, DisplayName: "Contoso", VerifiedDomains: []string{TenantContoso, "contoso.com"}},
		{ID: TenantFabrikamID, Domain: TenantFabrikam, DisplayName: "Fabrikam", VerifiedDomains: []string{TenantFabrikam, "fabrikam.com"}},
	}
	d.roles[RoleGlobalReader] = &directoryRole{
		TemplateID:  RoleGlobalReader,
		DisplayName: "Global Reader",
		Description: "Can read everything that a Global Administrator can, but not update anything.",
	}

	addGroup := func(tenantID, name, kind, desc string) string {
		g := &group{
			ID:           guidFromName("group", tenantID, name),
			TenantID:     tenantID,
			DisplayName:  name,
			Description:  desc,
			Kind:         kind,
			MailNickname: mailNickname(name),
		}
		d.groups[g.ID] = g
		return g.ID
	}
	allCompany := addGroup(TenantContosoID, "All Company", groupUnified, "This is the default group for everyone in the network")
	sales := addGroup(TenantContosoID, "Sales and Marketing", groupUnified, "Marketing campaigns and sales pipeline")
	readers := addGroup(TenantContosoID, "Contoso Security Readers", groupSecurity, "Read access to security reports")
	mark8 := addGroup(TenantContosoID, "Mark 8 Project Team", groupUnified, "Welcome to the team that we've assembled to launch our product.")
	retail := addGroup(TenantContosoID, "Retail Distribution List", groupDistribution, "Retail announcements")
	grady := []string{allCompany}
	kinds := []string{groupSecurity, groupUnified, groupDistribution}
	for i := 1; len(grady) < 260; i++ {
		kind := kinds[i%3]
		grady = append(grady, addGroup(TenantContosoID, fmt.Sprintf("Design Project %03d", i), kind, fmt.Sprintf("Design project %d (%s)", i, kind)))
	}
	fabEng := addGroup(TenantFabrikamID, "Fabrikam Engineering", groupSecurity, "Engineering staff")
	fabAll := addGroup(TenantFabrikamID, "All Fabrikam", groupUnified, "Everyone at Fabrikam")
	fabPartners := addGroup(TenantFabrikamID, "Fabrikam Partners", groupSecurity, "External partners")

	adele := &User{
		ObjectID: "a4d3c2b1-0e1f-4a2b-8c3d-4e5f6a7b8c01", UPN: UserAdele,
		DisplayName: "Adele Vance", GivenName: "Adele", Surname: "Vance", Mail: UserAdele,
		JobTitle: "Retail Manager", Department: "Retail", OfficeLocation: "18/2111",
		MobilePhone: "+1 425 555 0109", PreferredLanguage: "en-US",
		BusinessPhones: []string{"+1 425 555 0109"}, UserType: "Member",
		TenantID: TenantContosoID, Password: "Adele-Sim-2026!", HasPhoto: true,
		Groups: []string{allCompany, sales, readers, mark8, retail},
		Roles:  []string{RoleGlobalReader},
	}
	megan := &User{
		ObjectID: "b5e4d3c2-1f20-4b3c-9d4e-5f6a7b8c9d02", UPN: UserMegan,
		DisplayName: "Megan Bowen", GivenName: "Megan", Surname: "Bowen", Mail: UserMegan,
		JobTitle: "Marketing Manager", Department: "Marketing", OfficeLocation: "12/1110",
		PreferredLanguage: "en-US", BusinessPhones: []string{"+1 412 555 0109"}, UserType: "Member",
		TenantID: TenantContosoID, Password: "Megan-Sim-2026!",
		Groups: []string{allCompany, sales},
	}
	gradyU := &User{
		ObjectID: "c6f5e4d3-2031-4c4d-8e5f-6a7b8c9d0e03", UPN: UserGrady,
		DisplayName: "Grady Archie", GivenName: "Grady", Surname: "Archie", Mail: UserGrady,
		JobTitle: "Designer", Department: "R&D", OfficeLocation: "19/2109",
		MobilePhone: "+1 309 555 0104", PreferredLanguage: "en-US",
		BusinessPhones: []string{"+1 309 555 0104"}, UserType: "Member",
		TenantID: TenantContosoID, Password: "Grady-Sim-2026!", HasPhoto: true,
		Groups: grady,
	}
	alex := &User{
		ObjectID: "d7a6f5e4-3142-4d5e-9f60-7b8c9d0e1f04", UPN: UserAlex,
		DisplayName: "Alex Wilber", GivenName: "Alex", Surname: "Wilber", Mail: UserAlex,
		JobTitle: "Marketing Assistant", Department: "Sales & Marketing", OfficeLocation: "131/1104",
		MobilePhone: "+1 858 555 0110", PreferredLanguage: "en-GB",
		BusinessPhones: []string{"+1 858 555 0110"}, UserType: "Member",
		TenantID: TenantFabrikamID, Password: "Alex-Sim-2026!", HasPhoto: true,
		Groups: []string{fabEng, fabAll},
	}
	guest := &User{
		ObjectID: "e8b7a6f5-4253-4e6f-a071-8c9d0e1f2a05", UPN: UserAdeleGuest,
		DisplayName: "Adele Vance", GivenName: "Adele", Surname: "Vance", Mail: UserAdele,
		UserType: "Guest", TenantID: TenantFabrikamID, HomeTenantID: TenantContosoID,
		HomeObjectID: adele.ObjectID, Password: adele.Password,
		Groups: []string{fabPartners},
	}
	for _, u := range []*User{adele, megan, gradyU, alex} {
		u.HomeTenantID = u.TenantID
		u.HomeObjectID = u.ObjectID
	}
	d.users = []*User{adele, megan, gradyU, alex, guest}

	graph := &resource{
		AppID: GraphAppID, URIs: []string{GraphAudience, GraphAppID}, Audience: GraphAudience,
		Name:   "Microsoft Graph",
		Scopes: []string{"User.Read", "User.ReadBasic.All", "User.Read.All", "GroupMember.Read.All", "Group.Read.All", "Directory.Read.All"},
		Roles:  []string{"User.Read.All", "GroupMember.Read.All", "Group.Read.All", "Directory.Read.All", "Organization.Read.All"},
	}
	cms := &resource{
		AppID: CMSClientID, URIs: []string{CMSAudience, CMSClientID}, Audience: CMSClientID,
		Name:   "Entra Companion CMS API",
		Scopes: []string{"Articles.Read", "Articles.Write"},
		Roles:  []string{"Articles.Read.All", "Articles.Write.All"},
	}
	d.resources = []*resource{graph, cms}

	publicGrants := map[string][]string{
		GraphAppID:  {"User.Read", "User.ReadBasic.All", "GroupMember.Read.All"},
		CMSClientID: {"Articles.Read", "Articles.Write"},
	}
	d.clients = []*clientReg{
		{Client: Client{ID: PublicClientID, Name: "Entra Companion", Kind: KindPublic}, delegated: publicGrants, groupClaims: true},
		{Client: Client{ID: GraphCLIClientID, Name: "Microsoft Graph Command Line Tools", Kind: KindPublic}, delegated: publicGrants},
		{
			Client:    Client{ID: ConfidentialClientID, Name: "Entra Companion Daemon", Kind: KindConfidential, Secret: "sim~Qx8.Confidential-Secret-2026"},
			delegated: map[string][]string{GraphAppID: {"User.Read"}},
			appRoles: map[string][]string{
				GraphAppID:  {"User.Read.All", "GroupMember.Read.All", "Organization.Read.All"},
				CMSClientID: {"Articles.Read.All"},
			},
		},
		{
			Client:      Client{ID: CMSClientID, Name: cms.Name, Kind: KindResource, IdentifierURI: CMSAudience, Scopes: cms.Scopes, AppRoles: cms.Roles},
			groupClaims: true,
		},
	}
	return d
}

// guidFromName derives a stable version-5-style GUID from names.
func guidFromName(parts ...string) string {
	h := sha1.Sum([]byte(strings.Join(parts, "\x00")))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

func mailNickname(name string) string {
	var b strings.Builder
	for _, r := range name {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// roleObjectID is the id of a directory role's object in a tenant.
func roleObjectID(tenantID, templateID string) string {
	return guidFromName("directoryRole", tenantID, templateID)
}

// tenant resolves an authority tenant segment (id or verified domain, case-insensitive).
// organizations, common and unknown names give nil.
func (d *directory) tenant(seg string) *Tenant {
	for _, t := range d.tenants {
		if strings.EqualFold(t.ID, seg) {
			return t
		}
		for _, dom := range t.VerifiedDomains {
			if strings.EqualFold(dom, seg) {
				return t
			}
		}
	}
	return nil
}

func (d *directory) tenantByID(id string) *Tenant {
	for _, t := range d.tenants {
		if t.ID == id {
			return t
		}
	}
	return nil
}

func (d *directory) userByUPN(upn string) *User {
	for _, u := range d.users {
		if strings.EqualFold(u.UPN, upn) {
			return u
		}
	}
	return nil
}

func (d *directory) userByOID(tenantID, oid string) *User {
	for _, u := range d.users {
		if u.TenantID == tenantID && strings.EqualFold(u.ObjectID, oid) {
			return u
		}
	}
	return nil
}

// home returns the home (member) object of u.
func (d *directory) home(u *User) *User {
	if u.UserType != "Guest" {
		return u
	}
	if h := d.userByOID(u.HomeTenantID, u.HomeObjectID); h != nil {
		return h
	}
	return u
}

// inTenant finds the object for the home account h in tenant t (h itself or its guest object).
func (d *directory) inTenant(h *User, t *Tenant) *User {
	for _, u := range d.users {
		if u.TenantID == t.ID && u.HomeObjectID == h.HomeObjectID && u.HomeTenantID == h.HomeTenantID {
			return u
		}
	}
	return nil
}

// signIn resolves what a person types on the login page to the user object the tokens are for.
// t is nil for organizations/common: the home account signs in.
func (d *directory) signIn(login string, t *Tenant) *User {
	u := d.userByUPN(login)
	if u == nil {
		return nil
	}
	h := d.home(u)
	if t == nil {
		return h
	}
	return d.inTenant(h, t)
}

func (d *directory) client(id string) *clientReg {
	for _, c := range d.clients {
		if strings.EqualFold(c.ID, id) {
			return c
		}
	}
	return nil
}

// resourceFor resolves the resource part of a scope (an identifier URI or app id).
func (d *directory) resourceFor(prefix string) *resource {
	p := strings.TrimRight(strings.ToLower(prefix), "/")
	for _, r := range d.resources {
		for _, u := range r.URIs {
			if strings.ToLower(u) == p {
				return r
			}
		}
	}
	return nil
}

func (d *directory) graph() *resource { return d.resources[0] }

func (u *User) clone() User {
	c := *u
	c.BusinessPhones = slices.Clone(u.BusinessPhones)
	c.Groups = slices.Clone(u.Groups)
	c.Roles = slices.Clone(u.Roles)
	return c
}

// Tenants returns the tenants of the simulated directory.
func (s *Server) Tenants() []Tenant {
	out := make([]Tenant, 0, len(s.dir.tenants))
	for _, t := range s.dir.tenants {
		c := *t
		c.VerifiedDomains = slices.Clone(t.VerifiedDomains)
		out = append(out, c)
	}
	return out
}

// Users returns every user object, guests included.
func (s *Server) Users() []User {
	out := make([]User, 0, len(s.dir.users))
	for _, u := range s.dir.users {
		out = append(out, u.clone())
	}
	return out
}

// User returns the user object with this user principal name (case-insensitive).
func (s *Server) User(upn string) (User, bool) {
	u := s.dir.userByUPN(upn)
	if u == nil {
		return User{}, false
	}
	return u.clone(), true
}

// Clients returns the application registrations.
func (s *Server) Clients() []Client {
	out := make([]Client, 0, len(s.dir.clients))
	for _, c := range s.dir.clients {
		x := c.Client
		x.Scopes = slices.Clone(c.Scopes)
		x.AppRoles = slices.Clone(c.AppRoles)
		out = append(out, x)
	}
	return out
}
