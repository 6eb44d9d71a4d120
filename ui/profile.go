package ui

import (
	"context"
	"errors"
	"fmt"
	"image/color"
	"slices"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/auth/jwt"
	"github.com/entra-companion/entra-companion/graph/profile"
)

// ShowProfile opens the Profile window on the active account. Call it on Fyne's goroutine.
func (u *UI) ShowProfile() {
	if u.profile == nil {
		u.profile = newProfileView(u, u.newWindow("Profile", fyne.NewSize(640, 560)))
	}
	p := u.profile
	p.refresh(u.state)
	if a := u.state.ActiveAccount(); a != nil {
		p.showAccount(a.ID)
	}
	p.win.Show()
	p.win.RequestFocus()
}

// profileView is the Profile window: who an account is according to Graph, its tenant, its
// groups and the claims of its current Graph access token, decoded locally.
type profileView struct {
	u   *UI
	win fyne.Window

	accounts []auth.Account
	account  string // ID of the account shown
	snap     *profile.Snapshot
	claims   *tokenClaims

	picker   *widget.Select
	avatar   *fyne.Container
	name     *widget.Label
	upn      *widget.Label
	where    *widget.Label
	details  *fyne.Container
	org      *fyne.Container
	groups   *groupsView
	token    *fyne.Container
	tabs     *container.AppTabs
	refreshB *widget.Button
	act      *activity
	noAcc    *widget.Label
	main     *fyne.Container
}

// tokenClaims is a decoded access token: its claims and the JSON they came in. Never the token.
type tokenClaims struct {
	claims jwt.Claims
	json   []byte
}

func newProfileView(u *UI, w fyne.Window) *profileView {
	p := &profileView{u: u, win: w}
	p.picker = widget.NewSelect(nil, func(label string) {
		for _, a := range p.accounts {
			if accountLabel(a) == label && a.ID != p.account {
				p.showAccount(a.ID)
			}
		}
	})
	p.avatar = container.NewGridWrap(fyne.NewSize(80, 80))
	p.name = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	p.name.SizeName = theme.SizeNameSubHeadingText
	p.upn = widget.NewLabel("")
	p.where = widget.NewLabel("")
	p.where.Wrapping = fyne.TextWrapWord
	p.details = container.New(layout.NewFormLayout())
	p.org = container.New(layout.NewFormLayout())
	p.groups = newGroupsView(u)
	p.token = container.NewVBox()
	p.tabs = container.NewAppTabs(
		container.NewTabItem("Profile", container.NewVScroll(p.details)),
		container.NewTabItem("Organization", container.NewVScroll(p.org)),
		container.NewTabItem("Groups", p.groups.box),
		container.NewTabItem("Token", container.NewVScroll(p.token)),
	)
	p.act = newActivity(u, w)
	p.refreshB = widget.NewButtonWithIcon("Refresh", theme.ViewRefreshIcon(), func() { p.load(true) })
	p.act.onChange = func(busy bool) { enable(p.refreshB, !busy) }

	header := container.NewBorder(nil, nil, p.avatar, nil, container.NewVBox(p.name, p.upn, p.where))
	top := container.NewVBox(
		container.NewBorder(nil, nil, widget.NewLabel("Account"), p.refreshB, p.picker),
		header,
	)
	p.main = container.NewBorder(top, p.act.box, nil, nil, p.tabs)
	p.noAcc = widget.NewLabel(labelNoAccount + ": add an account in the Accounts window.")
	p.noAcc.Hide()
	w.SetContent(container.NewStack(p.main, p.noAcc))
	return p
}

// refresh follows the account list: new labels in the picker, another account when the one
// shown was removed.
func (p *profileView) refresh(st MenuState) {
	p.accounts = st.Accounts
	labels := make([]string, len(st.Accounts))
	found := false
	for i, a := range st.Accounts {
		labels[i] = accountLabel(a)
		found = found || a.ID == p.account
	}
	p.picker.SetOptions(labels)
	switch {
	case len(st.Accounts) == 0:
		p.account = ""
		p.main.Hide()
		p.noAcc.Show()
	case !found:
		p.main.Show()
		p.noAcc.Hide()
		id := st.Accounts[0].ID
		if a := st.ActiveAccount(); a != nil {
			id = a.ID
		}
		p.showAccount(id)
	default:
		p.main.Show()
		p.noAcc.Hide()
		p.render() // states and names may have changed
	}
}

func (p *profileView) current() *auth.Account {
	for _, a := range p.accounts {
		if a.ID == p.account {
			return &a
		}
	}
	return nil
}

// showAccount shows the account: what is cached at once, then the token's claims and, when
// nothing is cached, the Graph snapshot. For the account already shown it only reads the token
// again, unless a load is under way.
func (p *profileView) showAccount(id string) {
	if id == p.account {
		if !p.act.Busy() {
			p.load(false)
		}
		return
	}
	p.account = id
	p.snap, p.claims = nil, nil
	if p.u.d.Directory != nil {
		if s, ok := p.u.d.Directory.Cached(id); ok {
			p.snap = s
		}
	}
	p.render()
	p.load(p.snap == nil)
}

// load fetches the token (from memory, usually) and, when graph is set, reads Graph again.
func (p *profileView) load(graph bool) {
	acc := p.current()
	if acc == nil {
		return
	}
	id := acc.ID
	msg := "Reading the access token…"
	if graph && p.u.d.Directory != nil {
		msg = "Reading the profile from Microsoft Graph…"
	}
	p.act.Run(msg, true, acc, func(ctx context.Context) (func(), error) {
		var claims *tokenClaims
		tok, terr := p.u.d.Accounts.Token(ctx, auth.TokenRequest{Account: id})
		if terr == nil {
			t, err := jwt.Decode(tok.Value)
			if err != nil {
				terr = fmt.Errorf("reading the access token: %w", err)
			} else {
				claims = &tokenClaims{claims: t.Claims, json: t.ClaimsJSON}
			}
		}
		var snap *profile.Snapshot
		var gerr error
		if graph && p.u.d.Directory != nil && !errors.Is(terr, auth.ErrNeedsSignIn) {
			snap, gerr = p.u.d.Directory.Refresh(ctx, id)
		}
		apply := func() {
			if p.account != id {
				return
			}
			if claims != nil {
				p.claims = claims
			}
			if snap != nil {
				p.snap = snap
			}
			p.render()
			if terr == nil && gerr == nil && snap != nil {
				p.act.Say("Read from Microsoft Graph at " + snap.ReadAt.Local().Format("15:04:05") + ".")
			}
			p.u.kick() // tenant names for the menu
		}
		return apply, errors.Join(terr, gerr)
	})
}

// render shows the account, the snapshot and the claims.
func (p *profileView) render() {
	acc := p.current()
	if acc == nil {
		return
	}
	p.picker.Selected = accountLabel(*acc)
	p.picker.Refresh()
	var prof profile.Profile
	if p.snap != nil && p.snap.Profile != nil {
		prof = *p.snap.Profile
	}
	name := firstNonEmpty(prof.DisplayName, acc.Name, acc.Username)
	p.name.SetText(name)
	p.upn.SetText(firstNonEmpty(prof.UserPrincipalName, acc.Username))
	p.where.SetText(p.whereText(*acc))

	p.avatar.Objects = []fyne.CanvasObject{p.avatarImage(prof, *acc)}
	p.avatar.Refresh()

	p.details.Objects = nil
	p.copyRows(p.details, [][2]string{
		{"Display name", prof.DisplayName},
		{"Given name", prof.GivenName},
		{"Surname", prof.Surname},
		{"Mail", prof.Mail},
		{"User principal name", firstNonEmpty(prof.UserPrincipalName, acc.Username)},
		{"Job title", prof.JobTitle},
		{"Department", prof.Department},
		{"Office", prof.OfficeLocation},
		{"Mobile phone", prof.MobilePhone},
		{"Business phones", strings.Join(prof.BusinessPhones, ", ")},
		{"Preferred language", prof.PreferredLanguage},
		{"User type", prof.UserType},
		{"Object id", firstNonEmpty(prof.ID, objectIDOf(acc.ID))},
		{"Account id", acc.ID},
	})
	p.details.Refresh()

	p.org.Objects = nil
	var org profile.Organization
	if p.snap != nil && p.snap.Organization != nil {
		org = *p.snap.Organization
	}
	var domains []string
	for _, d := range org.VerifiedDomains {
		s := d.Name
		if d.IsDefault {
			s += " (default)"
		}
		if d.IsInitial {
			s += " (initial)"
		}
		domains = append(domains, s)
	}
	rows := [][2]string{
		{"Tenant name", org.DisplayName},
		{"Tenant id", firstNonEmpty(org.TenantID, acc.TenantID)},
		{"Domains", strings.Join(domains, "\n")},
	}
	if home := p.homeTenant(*acc); home != "" {
		rows = append(rows, [2]string{"Home tenant id", home})
	}
	rows = append(rows, [2]string{"Authority", acc.Authority}, [2]string{"Client id", acc.ClientID})
	p.copyRows(p.org, rows)
	p.org.Refresh()

	var groups []profile.Group
	var gerr error
	if p.snap != nil {
		groups, gerr = p.snap.Groups, p.snap.GroupsErr
	}
	p.groups.set(groups, gerr, p.snap != nil)
	p.renderClaims()
}

func (p *profileView) homeTenant(a auth.Account) string {
	home := a.HomeTenantID
	if p.snap != nil && p.snap.HomeTenantID != "" {
		home = p.snap.HomeTenantID
	}
	tenant := a.TenantID
	if p.snap != nil && p.snap.Organization != nil && p.snap.Organization.TenantID != "" {
		tenant = p.snap.Organization.TenantID
	}
	if home == "" || strings.EqualFold(home, tenant) {
		return ""
	}
	return home
}

// whereText is the header's last line: tenant, guest status and state.
func (p *profileView) whereText(a auth.Account) string {
	tenant := ""
	if p.snap != nil && p.snap.Organization != nil {
		tenant = p.snap.Organization.DisplayName
	}
	if tenant == "" {
		tenant = "tenant " + firstNonEmpty(a.TenantID, "unknown")
	}
	s := tenant
	if home := p.homeTenant(a); home != "" {
		s = "Guest in " + tenant + " (home tenant " + home + ")"
	}
	switch a.State {
	case auth.StateNeedsSignIn:
		s += " · must sign in again"
	case auth.StateOffline:
		s += " · offline"
	}
	if a.Active {
		s += " · active account"
	}
	return s
}

// avatarImage is the photo, or a circle with the initials.
func (p *profileView) avatarImage(prof profile.Profile, a auth.Account) fyne.CanvasObject {
	if p.snap != nil && p.snap.Photo != nil && len(p.snap.Photo.Data) > 0 {
		img := canvas.NewImageFromResource(fyne.NewStaticResource("photo-"+a.ID, p.snap.Photo.Data))
		img.FillMode = canvas.ImageFillContain
		img.ScaleMode = canvas.ImageScaleSmooth
		return img
	}
	circle := canvas.NewCircle(theme.Color(theme.ColorNamePrimary))
	text := canvas.NewText(initials(prof, a), color.White)
	text.TextSize = 28
	text.TextStyle.Bold = true
	text.Alignment = fyne.TextAlignCenter
	return container.NewStack(circle, container.NewCenter(text))
}

// initials are the first letters of the given name and surname, else of the first two words
// of the display name, else the username's first letter.
func initials(prof profile.Profile, a auth.Account) string {
	first := func(s string) string {
		for _, r := range s {
			return strings.ToUpper(string(r))
		}
		return ""
	}
	if prof.GivenName != "" && prof.Surname != "" {
		return first(prof.GivenName) + first(prof.Surname)
	}
	words := strings.Fields(firstNonEmpty(prof.DisplayName, a.Name))
	switch {
	case len(words) >= 2:
		return first(words[0]) + first(words[len(words)-1])
	case len(words) == 1:
		return first(words[0])
	}
	return first(a.Username)
}

// copyRows adds label/value rows with a copy button each to a form-layout container. Empty
// values show "—" and have no copy button.
func (p *profileView) copyRows(c *fyne.Container, rows [][2]string) {
	for _, r := range rows {
		label, value := r[0], r[1]
		c.Add(widget.NewLabelWithStyle(label, fyne.TextAlignTrailing, fyne.TextStyle{Bold: true}))
		c.Add(p.copyValue(label, value))
	}
}

// copyValue is a selectable value with a copy button.
func (p *profileView) copyValue(label, value string) fyne.CanvasObject {
	if value == "" {
		return widget.NewLabel("—")
	}
	v := widget.NewLabel(value)
	v.Selectable = true
	v.Wrapping = fyne.TextWrapBreak
	b := widget.NewButtonWithIcon("", theme.ContentCopyIcon(), func() {
		p.u.clipboard().SetContent(value)
		p.act.Say(label + " copied.")
	})
	b.Importance = widget.LowImportance
	return container.NewBorder(nil, nil, nil, b, v)
}

// renderClaims shows the token's claims like jwt.ms: the ones that matter first, then all.
func (p *profileView) renderClaims() {
	p.token.Objects = nil
	if p.claims == nil {
		p.token.Add(widget.NewLabel("No access token read yet."))
		p.token.Refresh()
		return
	}
	c := p.claims.claims
	note := widget.NewLabel("The current Microsoft Graph access token, decoded on this computer. The token itself is not shown; copy it from the tray menu.")
	note.Wrapping = fyne.TextWrapWord
	p.token.Add(note)
	form := container.New(layout.NewFormLayout())
	rows := [][2]string{
		{"Audience (aud)", strings.Join(c.Audience(), " ")},
		{"Scopes (scp)", strings.Join(c.Scopes(), " ")},
	}
	if roles := c.Roles(); len(roles) > 0 {
		rows = append(rows, [2]string{"Roles (roles)", strings.Join(roles, " ")})
	}
	rows = append(rows,
		[2]string{"Tenant (tid)", c.TenantID()},
		[2]string{"Object (oid)", c.ObjectID()},
		[2]string{"User", c.PreferredUsername()},
		[2]string{"Issuer (iss)", c.Issuer()},
		[2]string{"Expires (exp)", p.expiry(c)},
	)
	p.copyRows(form, rows)
	p.token.Add(form)
	if len(p.claims.json) > 0 {
		p.token.Add(widget.NewLabelWithStyle("All claims", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}))
		all := widget.NewLabel(prettyClaims(c))
		all.TextStyle.Monospace = true
		all.Wrapping = fyne.TextWrapBreak
		all.Selectable = true
		p.token.Add(all)
	}
	p.token.Refresh()
}

// expiry is "14:32:05 (in 52 minutes)" or "14:32:05 (expired 3 minutes ago)".
func (p *profileView) expiry(c jwt.Claims) string {
	exp, ok := c.ExpiresAt()
	if !ok {
		return ""
	}
	left := exp.Sub(p.u.now())
	s := exp.Local().Format("2006-01-02 15:04:05")
	if left >= 0 {
		return s + " (in " + humanDuration(left) + ")"
	}
	return s + " (expired " + humanDuration(left) + " ago)"
}

// prettyClaims lists every claim, one per line, sorted by name.
func prettyClaims(c jwt.Claims) string {
	names := make([]string, 0, len(c))
	for k := range c {
		names = append(names, k)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, "%-20s %s\n", k, claimValue(c, k))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func claimValue(c jwt.Claims, k string) string {
	switch v := c[k].(type) {
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = fmt.Sprint(e)
		}
		return strings.Join(parts, ", ")
	case nil:
		return "null"
	default:
		if t, ok := c.Time(k); ok && (k == "exp" || k == "nbf" || k == "iat" || k == "auth_time") {
			return fmt.Sprintf("%v (%s)", v, t.UTC().Format("2006-01-02 15:04:05 UTC"))
		}
		return fmt.Sprint(v)
	}
}

// objectIDOf takes the oid out of an MSAL home account id "<oid>.<tid>".
func objectIDOf(id string) string {
	if i := strings.IndexByte(id, '.'); i > 0 && !strings.HasPrefix(id, "app:") {
		return id[:i]
	}
	return ""
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// groupsView is the Groups tab: a filter, a count, a hint when the list may be incomplete, and
// the groups and roles with their kind and id.
type groupsView struct {
	u      *UI
	all    []profile.Group
	shown  []profile.Group
	filter *widget.Entry
	count  *widget.Label
	hint   *widget.Label
	list   *widget.List
	box    *fyne.Container
	loaded bool
}

func newGroupsView(u *UI) *groupsView {
	g := &groupsView{u: u}
	g.filter = widget.NewEntry()
	g.filter.SetPlaceHolder("Filter by name, kind or id")
	g.filter.OnChanged = func(string) { g.apply() }
	g.count = widget.NewLabel("")
	g.hint = widget.NewLabel("")
	g.hint.Wrapping = fyne.TextWrapWord
	g.hint.Importance = widget.WarningImportance
	g.hint.Hide()
	g.list = widget.NewList(
		func() int { return len(g.shown) },
		func() fyne.CanvasObject {
			name := widget.NewLabelWithStyle("group", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
			name.Truncation = fyne.TextTruncateEllipsis
			kind := widget.NewLabel("kind")
			id := widget.NewLabel("id")
			id.SizeName = theme.SizeNameCaptionText
			copyB := widget.NewButtonWithIcon("", theme.ContentCopyIcon(), nil)
			copyB.Importance = widget.LowImportance
			return container.NewBorder(nil, nil, nil, container.NewHBox(kind, copyB),
				container.New(layout.NewCustomPaddedVBoxLayout(-8), name, id))
		},
		func(i widget.ListItemID, o fyne.CanvasObject) {
			if i >= len(g.shown) {
				return
			}
			grp := g.shown[i]
			row := o.(*fyne.Container)
			texts := row.Objects[0].(*fyne.Container)
			right := row.Objects[1].(*fyne.Container)
			texts.Objects[0].(*widget.Label).SetText(firstNonEmpty(grp.DisplayName, "(name not readable)"))
			texts.Objects[1].(*widget.Label).SetText(grp.ID)
			right.Objects[0].(*widget.Label).SetText(kindLabel(grp.Kind))
			right.Objects[1].(*widget.Button).OnTapped = func() {
				g.u.clipboard().SetContent(grp.ID)
			}
			row.Refresh() // lay the row out for the new kind's width
		})
	g.list.HideSeparators = false
	g.box = container.NewBorder(container.NewVBox(g.hint, g.filter, g.count), nil, nil, nil, g.list)
	return g
}

// set shows a snapshot's groups; err says why they may be incomplete.
func (g *groupsView) set(groups []profile.Group, err error, loaded bool) {
	g.all = groups
	g.loaded = loaded
	var consent *profile.ConsentError
	switch {
	case errors.As(err, &consent):
		g.hint.SetText("⚠ Groups may be incomplete: missing " + consent.Permission + ". An admin can grant consent for it, " +
			"or sign in again with that scope. Until then only the group ids in the ID token's groups claim are shown.")
		g.hint.Show()
	case err != nil:
		g.hint.SetText("⚠ Groups may be incomplete: " + sentence(err.Error()))
		g.hint.Show()
	default:
		g.hint.Hide()
	}
	g.apply()
}

// apply filters the groups by the filter text (name, kind or id, case-insensitively).
func (g *groupsView) apply() {
	q := strings.ToLower(strings.TrimSpace(g.filter.Text))
	g.shown = g.shown[:0]
	for _, grp := range g.all {
		if q == "" || strings.Contains(strings.ToLower(grp.DisplayName), q) || strings.Contains(strings.ToLower(grp.ID), q) ||
			strings.Contains(strings.ToLower(kindLabel(grp.Kind)), q) {
			g.shown = append(g.shown, grp)
		}
	}
	switch {
	case !g.loaded:
		g.count.SetText("Groups are read from Microsoft Graph…")
	case len(g.all) == 0:
		g.count.SetText("No groups or directory roles.")
	case q == "":
		g.count.SetText(fmt.Sprintf("%d groups and roles", len(g.all)))
	default:
		g.count.SetText(fmt.Sprintf("%d of %d groups and roles", len(g.shown), len(g.all)))
	}
	g.list.Refresh()
}

// kindLabel words a group kind.
func kindLabel(k profile.GroupKind) string {
	switch k {
	case profile.KindSecurity:
		return "Security group"
	case profile.KindMicrosoft365:
		return "Microsoft 365 group"
	case profile.KindDistribution:
		return "Distribution list"
	case profile.KindMailSecurity:
		return "Mail-enabled security group"
	case profile.KindRole:
		return "Directory role"
	}
	return "Group"
}
