package ui

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/entra-companion/entra-companion/auth"
)

// ShowAccounts opens the Accounts window (creating it the first time). Call it on Fyne's
// goroutine (menu actions and button taps run there).
func (u *UI) ShowAccounts() {
	if u.accounts == nil {
		u.accounts = newAccountsView(u, u.newWindow("Accounts", fyne.NewSize(620, 480)))
		u.accounts.refresh(u.state)
	}
	u.accounts.win.Show()
	u.accounts.win.RequestFocus()
}

// accountsView is the Accounts window: the accounts with their state, and the buttons to add,
// switch, sign in again and remove.
type accountsView struct {
	u   *UI
	win fyne.Window

	accounts []auth.Account
	selected string // account ID

	list     *widget.List
	empty    *widget.Label
	tenant   *widget.Entry
	browser  *widget.Button
	device   *widget.Button
	activate *widget.Button
	again    *widget.Button
	remove   *widget.Button
	act      *activity

	code *deviceCodeView // the open device-code dialog, if any
}

func newAccountsView(u *UI, w fyne.Window) *accountsView {
	v := &accountsView{u: u, win: w}
	v.list = widget.NewList(
		func() int { return len(v.accounts) },
		func() fyne.CanvasObject {
			icon := widget.NewIcon(theme.AccountIcon())
			title := widget.NewLabelWithStyle("name", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
			title.Truncation = fyne.TextTruncateEllipsis
			detail := widget.NewLabel("detail")
			detail.Truncation = fyne.TextTruncateEllipsis
			detail.SizeName = theme.SizeNameCaptionText
			return container.NewBorder(nil, nil, icon, nil, container.New(layout.NewCustomPaddedVBoxLayout(-8), title, detail))
		},
		func(id widget.ListItemID, o fyne.CanvasObject) {
			if id >= len(v.accounts) {
				return
			}
			a := v.accounts[id]
			row := o.(*fyne.Container)
			texts := row.Objects[0].(*fyne.Container)
			icon := row.Objects[1].(*widget.Icon)
			title := accountLabel(a)
			if a.Active {
				title += " (active)"
			}
			texts.Objects[0].(*widget.Label).SetText(title)
			texts.Objects[1].(*widget.Label).SetText(accountDetail(a, v.u.state.TenantNames))
			switch {
			case a.State == auth.StateNeedsSignIn:
				icon.SetResource(theme.WarningIcon())
			case a.State == auth.StateOffline:
				icon.SetResource(theme.ErrorIcon())
			case a.Active:
				icon.SetResource(theme.ConfirmIcon())
			default:
				icon.SetResource(theme.AccountIcon())
			}
		})
	v.list.OnSelected = func(id widget.ListItemID) {
		if id < len(v.accounts) {
			v.selected = v.accounts[id].ID
		}
		v.updateButtons()
	}
	v.list.OnUnselected = func(widget.ListItemID) {
		v.selected = ""
		v.updateButtons()
	}
	v.empty = widget.NewLabel("No account is signed in yet. Add one with your browser, or with a code on another device.")
	v.empty.Wrapping = fyne.TextWrapWord

	v.tenant = widget.NewEntry()
	v.tenant.SetPlaceHolder("organizations, contoso.com or a tenant id (optional)")
	v.browser = widget.NewButtonWithIcon("Add with browser", theme.ContentAddIcon(), func() { v.signIn(nil) })
	v.browser.Importance = widget.HighImportance
	v.device = widget.NewButtonWithIcon("Add with a code…", theme.ComputerIcon(), v.signInWithCode)
	v.activate = widget.NewButtonWithIcon("Set active", theme.ConfirmIcon(), v.setActive)
	v.again = widget.NewButtonWithIcon("Sign in again", theme.LoginIcon(), func() {
		if a := v.selectedAccount(); a != nil {
			v.signIn(a)
		}
	})
	v.remove = widget.NewButtonWithIcon("Remove…", theme.DeleteIcon(), v.confirmRemove)
	v.act = newActivity(u, w)
	v.act.onChange = func(bool) { v.updateButtons() }

	add := container.NewBorder(nil, nil, widget.NewLabel("Tenant"), nil, v.tenant)
	buttons := container.NewHBox(v.activate, v.again, v.remove, layout.NewSpacer(), v.device, v.browser)
	bottom := container.NewVBox(widget.NewSeparator(), add, buttons, v.act.box)
	var top fyne.CanvasObject
	if kc, ok := u.d.Accounts.(interface{ KeychainError() error }); ok && kc.KeychainError() != nil {
		warn := widget.NewLabelWithStyle("No system keychain: accounts signed in now are kept in memory only and forgotten when Entra Companion quits. Nothing is written to disk.", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
		warn.Wrapping = fyne.TextWrapWord
		warn.Importance = widget.WarningImportance
		top = container.NewVBox(warn, widget.NewSeparator())
	}
	w.SetContent(container.NewBorder(top, bottom, nil, nil, container.NewStack(v.empty, v.list)))
	return v
}

// accountDetail is a row's second line: tenant, kind and state in words.
func accountDetail(a auth.Account, names map[string]string) string {
	t := names[a.TenantID]
	if t == "" {
		t = "tenant " + shortID(a.TenantID)
	}
	if a.Guest() {
		t = "guest in " + t
	}
	parts := []string{t}
	if a.Kind == auth.KindApp {
		parts = append(parts, "app-only identity")
	}
	switch a.State {
	case auth.StateReady:
		parts = append(parts, "ready")
	case auth.StateRefreshing:
		parts = append(parts, "refreshing tokens…")
	case auth.StateOffline:
		parts = append(parts, "offline — still-valid tokens are served")
	case auth.StateNeedsSignIn:
		s := "sign in again"
		if a.Detail != "" {
			s += ": " + strings.TrimSuffix(a.Detail, ".")
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " · ")
}

// refresh shows st's accounts, keeping the selection (or selecting the active account).
func (v *accountsView) refresh(st MenuState) {
	v.accounts = st.Accounts
	sel := -1
	for i, a := range v.accounts {
		if a.ID == v.selected {
			sel = i
		}
	}
	if sel < 0 {
		v.selected = ""
		for i, a := range v.accounts {
			if a.ID == st.Active || (st.Active == "" && a.Active) {
				sel = i
			}
		}
	}
	if len(v.accounts) == 0 {
		v.empty.Show()
		v.list.Hide()
	} else {
		v.empty.Hide()
		v.list.Show()
	}
	v.list.Refresh()
	if sel >= 0 {
		v.list.Select(sel) // sets v.selected through OnSelected
	} else {
		v.list.UnselectAll()
	}
	v.updateButtons()
}

func (v *accountsView) selectedAccount() *auth.Account {
	for _, a := range v.accounts {
		if a.ID == v.selected {
			return &a
		}
	}
	return nil
}

func (v *accountsView) updateButtons() {
	a := v.selectedAccount()
	busy := v.act.Busy()
	enable(v.activate, a != nil && !a.Active && a.State != auth.StateNeedsSignIn && !busy)
	enable(v.again, a != nil && a.Kind != auth.KindApp && !busy)
	enable(v.remove, a != nil && !busy)
	if a != nil && a.State == auth.StateNeedsSignIn {
		v.again.Importance = widget.HighImportance
	} else {
		v.again.Importance = widget.MediumImportance
	}
	v.again.Refresh()
}

func enable(b *widget.Button, on bool) {
	if on {
		b.Enable()
	} else {
		b.Disable()
	}
}

// signInOptions builds the options for a new sign-in (acc nil) or a sign-in again.
func (v *accountsView) signInOptions(acc *auth.Account) auth.SignInOptions {
	opts := auth.SignInOptions{OpenURL: v.u.d.OpenURL}
	if acc != nil {
		opts.LoginHint = acc.Username
		opts.Authority = acc.Authority
		return opts
	}
	if t := strings.TrimSpace(v.tenant.Text); t != "" {
		opts.Authority = v.u.authorityFor(t)
	}
	return opts
}

// authorityFor is the configured authority with its tenant replaced by t.
func (u *UI) authorityFor(tenant string) string {
	base := "https://login.microsoftonline.com/"
	if u.d.Settings != nil {
		if cfg, err := u.d.Settings.Load(); err == nil && cfg.Authority != "" {
			if p, err := url.Parse(cfg.Authority); err == nil && p.Host != "" {
				base = p.Scheme + "://" + p.Host + "/"
			}
		}
	}
	return base + url.PathEscape(tenant) + "/"
}

// signIn signs in with the browser: a new account (acc nil) or acc again, with its login hint.
func (v *accountsView) signIn(acc *auth.Account) {
	msg := "Waiting for you to sign in in your browser…"
	if acc != nil {
		msg = "Waiting for " + acc.Username + " to sign in in your browser…"
	}
	opts := v.signInOptions(acc)
	v.act.Run(msg, true, acc, func(ctx context.Context) (func(), error) {
		got, err := v.u.d.Accounts.SignIn(ctx, opts)
		if err != nil {
			return nil, err
		}
		v.u.log.Info("signed in", "account", got.Username, "tenant", got.TenantID)
		v.u.kick()
		return func() { v.signedIn(got) }, nil
	})
}

func (v *accountsView) signedIn(a auth.Account) {
	v.selected = a.ID
	v.tenant.SetText("")
	v.act.Say(fmt.Sprintf("Signed in as %s.", accountLabel(a)))
}

// signInWithCode signs in with a device code, showing the code in a dialog.
func (v *accountsView) signInWithCode() {
	opts := v.signInOptions(nil)
	opts.OpenURL = nil
	dv := newDeviceCodeView(v.u, v.act.Cancel)
	v.code = dv
	dlg := dialog.NewCustomWithoutButtons("Sign in with a code", dv.box, v.win)
	dv.dialog = dlg
	dlg.Show()
	dlg.Resize(deviceCodeSize)
	v.act.Run("Waiting for the sign-in on the other device…", true, nil, func(ctx context.Context) (func(), error) {
		got, err := v.u.d.Accounts.SignInDeviceCode(ctx, opts, func(dc auth.DeviceCode) {
			v.u.do(func() { dv.show(dc) })
		})
		v.u.do(func() {
			dlg.Hide()
			if v.code == dv {
				v.code = nil
			}
		})
		if err != nil {
			return nil, err
		}
		v.u.log.Info("signed in with a device code", "account", got.Username, "tenant", got.TenantID)
		v.u.kick()
		return func() { v.signedIn(got) }, nil
	})
}

func (v *accountsView) setActive() {
	a := v.selectedAccount()
	if a == nil {
		return
	}
	acc := *a
	v.act.Run("Switching to "+acc.Username+"…", false, &acc, func(ctx context.Context) (func(), error) {
		if err := v.u.d.Accounts.SetActive(ctx, acc.ID); err != nil {
			return nil, err
		}
		v.u.kick()
		return func() { v.act.Say(accountLabel(acc) + " is now the active account.") }, nil
	})
}

func (v *accountsView) confirmRemove() {
	a := v.selectedAccount()
	if a == nil {
		return
	}
	acc := *a
	msg := widget.NewLabel(fmt.Sprintf("Remove %s?\n\nIts tokens are deleted from this computer's keychain. "+
		"You can add the account again later.", accountLabel(acc)))
	msg.Wrapping = fyne.TextWrapWord
	d := dialog.NewCustomConfirm("Remove account", "Remove", "Keep", msg, func(ok bool) {
		if ok {
			v.remove1(acc)
		}
	}, v.win)
	d.SetConfirmImportance(widget.DangerImportance)
	d.Resize(fyne.NewSize(420, 220))
	d.Show()
}

func (v *accountsView) remove1(acc auth.Account) {
	v.act.Run("Removing "+acc.Username+"…", false, &acc, func(ctx context.Context) (func(), error) {
		if err := v.u.d.Accounts.SignOut(ctx, acc.ID); err != nil {
			return nil, err
		}
		v.u.log.Info("account removed", "account", acc.Username)
		v.u.kick()
		return func() {
			if v.selected == acc.ID {
				v.selected = ""
			}
			v.act.Say(accountLabel(acc) + " was removed.")
		}, nil
	})
}

// deviceCodeView is the device-code dialog's content: the page to open and the code, big, with
// Copy and Cancel, and progress while the sign-in waits.
type deviceCodeView struct {
	u      *UI
	dialog dialog.Dialog
	code   auth.DeviceCode
	intro  *widget.Label
	text   *canvas.Text
	link   *widget.Hyperlink
	copy   *widget.Button
	open   *widget.Button
	cancel *widget.Button
	bar    *widget.ProgressBarInfinite
	box    *fyne.Container
}

func newDeviceCodeView(u *UI, cancel func()) *deviceCodeView {
	d := &deviceCodeView{u: u}
	d.intro = widget.NewLabel("Asking Microsoft for a sign-in code…")
	d.intro.Wrapping = fyne.TextWrapWord
	d.text = canvas.NewText("", theme.Color(theme.ColorNameForeground))
	d.text.TextSize = 34
	d.text.TextStyle = fyne.TextStyle{Monospace: true}
	d.text.Alignment = fyne.TextAlignCenter
	d.text.Hide()
	d.link = widget.NewHyperlink("", nil)
	d.link.Alignment = fyne.TextAlignCenter
	d.link.OnTapped = d.openPage
	d.link.Hide()
	d.copy = widget.NewButtonWithIcon("Copy code", theme.ContentCopyIcon(), func() {
		d.u.clipboard().SetContent(d.code.UserCode)
		d.intro.SetText("Code copied. " + d.instructions())
	})
	d.copy.Importance = widget.HighImportance
	d.copy.Disable()
	d.open = widget.NewButtonWithIcon("Open page", theme.ComputerIcon(), d.openPage)
	d.open.Disable()
	d.cancel = widget.NewButtonWithIcon("Cancel", theme.CancelIcon(), cancel)
	d.bar = widget.NewProgressBarInfinite()
	d.box = container.NewVBox(
		d.intro,
		d.link,
		container.NewPadded(d.text),
		container.NewCenter(container.NewHBox(d.copy, d.open)),
		d.bar,
		container.NewCenter(d.cancel),
	)
	return d
}

func (d *deviceCodeView) instructions() string {
	s := "On any device, open the page below and enter the code."
	if d.code.ExpiresIn > 0 {
		s += " The code works for " + humanDuration(d.code.ExpiresIn) + "."
	}
	return s
}

// show displays the code once the authority gave it.
func (d *deviceCodeView) show(dc auth.DeviceCode) {
	d.code = dc
	d.intro.SetText(d.instructions())
	d.text.Text = dc.UserCode
	d.text.Show()
	d.text.Refresh()
	d.link.SetText(dc.VerificationURI)
	if p, err := url.Parse(dc.VerificationURI); err == nil {
		d.link.SetURL(p)
	}
	d.link.Show()
	d.copy.Enable()
	d.open.Enable()
	if d.dialog != nil {
		d.dialog.Resize(deviceCodeSize) // lays the grown content out again
	}
}

// deviceCodeSize fits the dialog with the code shown.
var deviceCodeSize = fyne.NewSize(460, 380)

func (d *deviceCodeView) openPage() {
	if d.code.VerificationURI == "" {
		return
	}
	if err := d.u.openURL(d.code.VerificationURI); err != nil {
		d.intro.SetText("The browser did not open (" + err.Error() + "). Open " + d.code.VerificationURI + " yourself.")
	}
}
