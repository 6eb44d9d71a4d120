package ui

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/entra-companion/entra-companion/auth"
)

func TestAccountsWindowRenders(t *testing.T) {
	h := newHarness(t, adele, alex, adeleGuest)
	h.state()
	h.u.ShowAccounts()
	v := h.u.accounts
	if v.selected != adele.ID {
		t.Errorf("selected %q, want the active account", v.selected)
	}
	if !v.activate.Disabled() || v.again.Disabled() || v.remove.Disabled() {
		t.Error("for the active account: Set active must be off, Sign in again and Remove on")
	}
	test.AssertImageMatches(t, "accounts.png", v.win.Canvas().Capture())

	v.list.Select(2) // the guest that needs sign-in
	if !v.activate.Disabled() || v.again.Importance != widget.HighImportance {
		t.Error("for an account that needs sign-in: Set active off, Sign in again highlighted")
	}
}

func TestAccountsWindowEmpty(t *testing.T) {
	h := newHarness(t)
	h.state()
	h.u.ShowAccounts()
	v := h.u.accounts
	if v.empty.Hidden || !v.list.Hidden {
		t.Error("without accounts the window must say how to add one instead of an empty list")
	}
	if !v.remove.Disabled() || !v.activate.Disabled() {
		t.Error("Remove and Set active must be off without a selection")
	}
}

func TestDeviceCodeFlowShowsCodeAndCancelCancels(t *testing.T) {
	h := newHarness(t, adele)
	shown := make(chan struct{})
	ended := make(chan error, 1)
	h.acc.signInCode = func(ctx context.Context, _ auth.SignInOptions, show func(auth.DeviceCode)) (auth.Account, error) {
		show(auth.DeviceCode{VerificationURI: "https://microsoft.com/devicelogin", UserCode: "FZ7-K3QP", ExpiresIn: 15 * time.Minute})
		close(shown)
		<-ctx.Done()
		ended <- ctx.Err()
		return auth.Account{}, ctx.Err()
	}
	h.state()
	h.u.ShowAccounts()
	v := h.u.accounts
	test.Tap(v.device)
	select {
	case <-shown:
	case <-time.After(5 * time.Second):
		t.Fatal("the device code was never shown")
	}
	h.pump() // the code reaches the dialog through Fyne's goroutine
	dv := v.code
	if dv == nil {
		t.Fatal("no device-code dialog")
	}
	if dv.text.Text != "FZ7-K3QP" || dv.text.Hidden || dv.link.Text != "https://microsoft.com/devicelogin" || dv.copy.Disabled() {
		t.Errorf("dialog shows code %q (hidden %v), link %q, copy disabled %v", dv.text.Text, dv.text.Hidden, dv.link.Text, dv.copy.Disabled())
	}
	if !v.act.Busy() || v.act.cancel.Hidden || v.act.bar.Hidden {
		t.Error("the window does not show progress with a Cancel button while the sign-in waits")
	}
	test.AssertImageMatches(t, "devicecode.png", v.win.Canvas().Capture())

	test.Tap(dv.copy)
	if got := h.clip.Content(); got != "FZ7-K3QP" {
		t.Errorf("clipboard = %q, want the code", got)
	}

	test.Tap(dv.cancel)
	h.wait()
	if err := <-ended; !errors.Is(err, context.Canceled) {
		t.Errorf("sign-in context ended with %v, want context.Canceled", err)
	}
	if v.act.Busy() || !v.act.cancel.Hidden || v.act.status.Text != "Cancelled." {
		t.Errorf("after Cancel: busy %v, status %q", v.act.Busy(), v.act.status.Text)
	}
	if v.code != nil {
		t.Error("the device-code dialog is still open after Cancel")
	}
}

func TestDeviceCodeSuccess(t *testing.T) {
	h := newHarness(t, adele)
	h.acc.signInCode = func(_ context.Context, _ auth.SignInOptions, show func(auth.DeviceCode)) (auth.Account, error) {
		show(auth.DeviceCode{VerificationURI: "https://microsoft.com/devicelogin", UserCode: "ABC"})
		h.acc.mu.Lock()
		h.acc.accounts = append(h.acc.accounts, alex)
		h.acc.mu.Unlock()
		return alex, nil
	}
	h.state()
	h.u.ShowAccounts()
	v := h.u.accounts
	test.Tap(v.device)
	h.wait()
	if got := v.act.status.Text; got != "Signed in as Alex Wilber — alex@contoso.com." {
		t.Errorf("status = %q", got)
	}
}

func TestBrowserSignInUsesTenantAndCancels(t *testing.T) {
	h := newHarness(t, adele)
	h.state()
	h.u.ShowAccounts()
	v := h.u.accounts
	test.Type(v.tenant, "fabrikam.com")
	test.Tap(v.browser)
	if !v.act.Busy() || v.act.status.Text != "Waiting for you to sign in in your browser…" {
		t.Errorf("status while waiting = %q", v.act.status.Text)
	}
	test.Tap(v.act.cancel)
	h.wait()
	if v.act.status.Text != "Cancelled." {
		t.Errorf("status after Cancel = %q", v.act.status.Text)
	}
	want := "SignIn hint= authority=https://login.microsoftonline.com/fabrikam.com/"
	if calls := h.acc.Calls(); !slices.Contains(calls, want) {
		t.Errorf("calls %q, want %q", calls, want)
	}
}

func TestSignInAgainFromTrayUsesLoginHint(t *testing.T) {
	h := newHarness(t, adele, adeleGuest)
	h.acc.signIn = func(_ context.Context, opts auth.SignInOptions) (auth.Account, error) {
		return adeleGuest, nil
	}
	h.state()
	m := MenuFor(h.u.state, h.u.actions())
	item(t, m, "Accounts").ChildMenu.Items[1].Action()
	h.wait()
	want := "SignIn hint=adele@contoso.com authority=https://login.microsoftonline.com/fabrikam.com/"
	if calls := h.acc.Calls(); !slices.Contains(calls, want) {
		t.Errorf("calls %q, want %q", calls, want)
	}
	if h.u.accounts == nil || !strings.HasPrefix(h.u.accounts.act.status.Text, "Signed in as") {
		t.Error("the Accounts window does not show the sign-in's outcome")
	}
}

func TestExpiredSignInOffersSignInAgain(t *testing.T) {
	h := newHarness(t, adele, alex)
	h.state()
	h.u.ShowAccounts()
	v := h.u.accounts
	v.act.Problem(&auth.AccountError{Account: adele.Username, Op: "refreshing token", Err: auth.ErrNeedsSignIn}, &adele)
	if v.act.status.Text != "Adele's sign-in has expired. Sign in again." || v.act.fix.Hidden {
		t.Fatalf("problem shown as %q (button hidden %v)", v.act.status.Text, v.act.fix.Hidden)
	}
	test.Tap(v.act.fix)
	if !v.act.Busy() {
		t.Fatal("Sign in again did not start a sign-in")
	}
	v.act.Cancel()
	h.wait()
	if calls := h.acc.Calls(); !slices.Contains(calls, "SignIn hint=adele@contoso.com authority="+adele.Authority) {
		t.Errorf("calls %q", calls)
	}
}

func TestRemoveAsksFirst(t *testing.T) {
	h := newHarness(t, adele, alex)
	h.state()
	h.u.ShowAccounts()
	v := h.u.accounts
	v.list.Select(1)
	test.Tap(v.remove)
	if calls := h.acc.Calls(); len(calls) != 0 {
		t.Fatalf("Remove acted before the confirmation: %q", calls)
	}
	overlay := v.win.Canvas().Overlays().Top()
	if overlay == nil {
		t.Fatal("no confirmation dialog")
	}
	test.AssertImageMatches(t, "accounts_remove.png", v.win.Canvas().Capture())
	tapButton(t, overlay, "Remove")
	h.wait()
	if calls := h.acc.Calls(); !slices.Equal(calls, []string{"SignOut " + alex.ID}) {
		t.Errorf("calls %q", calls)
	}
	h.state()
	if len(v.accounts) != 1 || v.act.status.Text != "Alex Wilber — alex@contoso.com was removed." {
		t.Errorf("after removal: %d accounts, status %q", len(v.accounts), v.act.status.Text)
	}
}

func TestSetActiveButton(t *testing.T) {
	h := newHarness(t, adele, alex)
	h.state()
	h.u.ShowAccounts()
	v := h.u.accounts
	v.list.Select(1)
	test.Tap(v.activate)
	h.wait()
	if calls := h.acc.Calls(); !slices.Equal(calls, []string{"SetActive " + alex.ID}) {
		t.Errorf("calls %q", calls)
	}
	if v.act.status.Text != "Alex Wilber — alex@contoso.com is now the active account." {
		t.Errorf("status %q", v.act.status.Text)
	}
}

// tapButton taps the button with this text inside o.
func tapButton(t *testing.T, o fyne.CanvasObject, text string) {
	t.Helper()
	for _, obj := range test.LaidOutObjects(o) {
		if b, ok := obj.(*widget.Button); ok && b.Text == text {
			test.Tap(b)
			return
		}
	}
	t.Fatalf("no button %q", text)
}

// memoryOnlyAccounts is a broker that runs without a keychain.
type memoryOnlyAccounts struct{ *fakeAccounts }

func (memoryOnlyAccounts) KeychainError() error {
	return errors.New("opening the keychain: no Secret Service on the D-Bus session")
}

// Without a keychain the Accounts window says that nothing will be kept, and a notification
// says it once at start; with one, neither appears.
func TestNoKeychainIsSaid(t *testing.T) {
	for _, memoryOnly := range []bool{false, true} {
		h := newHarness(t, adele)
		if memoryOnly {
			h.wrap = func(a Accounts) Accounts { return memoryOnlyAccounts{a.(*fakeAccounts)} }
			h.u = h.build(h.app)
		}
		h.u.Start()
		h.wait()
		h.u.ShowAccounts()
		banner := findLabel(h.u.accounts.win.Content(), "No system keychain")
		noted := false
		for _, n := range h.notes.all() {
			noted = noted || strings.Contains(n[0], "No keychain")
		}
		if (banner != nil) != memoryOnly || noted != memoryOnly {
			t.Errorf("memory only %v: banner shown %v, notified %v", memoryOnly, banner != nil, noted)
		}
	}
}

// findLabel finds a label whose text starts with prefix anywhere under o.
func findLabel(o fyne.CanvasObject, prefix string) *widget.Label {
	switch v := o.(type) {
	case *widget.Label:
		if strings.HasPrefix(v.Text, prefix) {
			return v
		}
	case *fyne.Container:
		for _, c := range v.Objects {
			if l := findLabel(c, prefix); l != nil {
				return l
			}
		}
	}
	return nil
}
