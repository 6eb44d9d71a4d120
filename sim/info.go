package sim

// Info describes a running sim for `entra-companion sim --json`.
type Info struct {
	AuthorityHost string       `json:"authority_host"`
	Tenants       []InfoTenant `json:"tenants"`
	Users         []InfoUser   `json:"users"`
	Clients       []InfoClient `json:"clients"`
	GraphURL      string       `json:"graph_url"`
	CMSURL        string       `json:"cms_url"`
	PagesURL      string       `json:"pages_url"`
	// CAFile is left empty: the caller fills it in after writing CAPEM to a file.
	CAFile string `json:"ca_file"`
}

// InfoTenant is a tenant in Info.
type InfoTenant struct {
	ID     string `json:"id"`
	Domain string `json:"domain"`
}

// InfoUser is a user in Info; Tenant is the domain of the tenant the user object lives in.
type InfoUser struct {
	UPN    string `json:"upn"`
	Tenant string `json:"tenant"`
}

// InfoClient is an application registration in Info.
type InfoClient struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
}

// Info returns the sim's URLs, tenants, users and clients.
func (s *Server) Info() Info {
	in := Info{
		AuthorityHost: s.AuthorityHost(),
		GraphURL:      s.GraphURL(),
		CMSURL:        s.CMSURL(),
		PagesURL:      s.PagesURL(),
		Tenants:       []InfoTenant{},
		Users:         []InfoUser{},
		Clients:       []InfoClient{},
	}
	for _, t := range s.dir.tenants {
		in.Tenants = append(in.Tenants, InfoTenant{ID: t.ID, Domain: t.Domain})
	}
	for _, u := range s.dir.users {
		in.Users = append(in.Users, InfoUser{UPN: u.UPN, Tenant: s.dir.tenantByID(u.TenantID).Domain})
	}
	for _, c := range s.dir.clients {
		in.Clients = append(in.Clients, InfoClient{ID: c.ID, Kind: c.Kind})
	}
	return in
}
