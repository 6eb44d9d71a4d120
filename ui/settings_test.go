package ui

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"fyne.io/fyne/v2/test"

	"github.com/entra-companion/entra-companion/config"
)

func settingsHarness(t *testing.T) (*harness, string) {
	t.Helper()
	xdg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", xdg)
	h := newHarness(t, adele)
	h.u.ShowSettings()
	return h, filepath.Join(xdg, "autostart", "entra-companion.desktop")
}

func TestSettingsWindowRenders(t *testing.T) {
	h, _ := settingsHarness(t)
	v := h.u.settings
	if v.clientID.Text != config.DefaultClientID || v.port.Text != "8631" || v.cloud.Selected != cloudLabels[0].label {
		t.Errorf("form: client %q port %q cloud %q", v.clientID.Text, v.port.Text, v.cloud.Selected)
	}
	if v.origins.Text != "http://localhost:*\nhttp://127.0.0.1:*\nhttp://[::1]:*" {
		t.Errorf("origins %q", v.origins.Text)
	}
	test.AssertImageMatches(t, "settings.png", v.win.Canvas().Capture())
}

func TestSettingsRefuseInvalidAndSayWhy(t *testing.T) {
	h, _ := settingsHarness(t)
	v := h.u.settings
	v.clientID.SetText("not-a-guid")
	v.port.SetText("70000")
	test.Tap(v.save)
	h.wait()
	if h.set.saves != 0 {
		t.Fatal("an invalid port was saved")
	}
	if got := v.act.status.Text; !strings.Contains(got, "Listen port: enter a number from 1 to 65535") {
		t.Errorf("status %q", got)
	}

	v.port.SetText("8632")
	test.Tap(v.save)
	h.wait()
	if h.set.saves != 0 {
		t.Fatal("an invalid client id was saved")
	}
	got := v.act.status.Text
	if !strings.HasPrefix(got, "These settings cannot be saved:\n• Client ID: ") || !strings.Contains(got, "not-a-guid") {
		t.Errorf("status %q", got)
	}
	v.origins.SetText("not an origin")
	test.Tap(v.save)
	h.wait()
	if got := v.act.status.Text; strings.Count(got, "•") != 2 || !strings.Contains(got, "• Allowed origins: ") {
		t.Errorf("want both problems listed; status %q", got)
	}
	test.AssertImageMatches(t, "settings_invalid.png", v.win.Canvas().Capture())
}

func TestSettingsSaveAndStartAtLogin(t *testing.T) {
	h, desktopFile := settingsHarness(t)
	v := h.u.settings
	v.port.SetText("8700")
	v.requireKey.SetChecked(true)
	v.startLogin.SetChecked(true)
	test.Tap(v.save)
	h.wait()
	if h.set.saves != 1 {
		t.Fatalf("saved %d times, want 1; status %q", h.set.saves, v.act.status.Text)
	}
	saved, _ := h.set.Load()
	if saved.Proxy.Listen != "127.0.0.1:8700" || !saved.Proxy.RequireKey || !saved.StartAtLogin {
		t.Errorf("saved listen %q key %v start %v", saved.Proxy.Listen, saved.Proxy.RequireKey, saved.StartAtLogin)
	}
	if len(saved.Proxy.Routes) != 2 {
		t.Errorf("the routes (not in the form) were lost: %v", saved.Proxy.Routes)
	}
	if !strings.HasPrefix(v.act.status.Text, "Saved.") {
		t.Errorf("status %q", v.act.status.Text)
	}
	data, err := os.ReadFile(desktopFile)
	if err != nil {
		t.Fatalf("start at login did not write the autostart entry: %v", err)
	}
	if !strings.Contains(string(data), `Exec="/opt/Entra Companion/entra-companion"`) {
		t.Errorf("autostart entry:\n%s", data)
	}

	v.startLogin.SetChecked(false)
	test.Tap(v.save)
	h.wait()
	if _, err := os.Stat(desktopFile); !os.IsNotExist(err) {
		t.Errorf("turning start at login off left the entry (stat: %v)", err)
	}
}

func TestSettingsStartAtLoginRefusesGoRunBuild(t *testing.T) {
	h, desktopFile := settingsHarness(t)
	h.u.exe = func() (string, error) {
		return filepath.Join(os.TempDir(), "go-build123", "b001", "exe", "entra-companion"), nil
	}
	v := h.u.settings
	v.startLogin.SetChecked(true)
	test.Tap(v.save)
	h.wait()
	if _, err := os.Stat(desktopFile); !os.IsNotExist(err) {
		t.Error("an autostart entry was written for a temporary go run build")
	}
	if !strings.Contains(v.act.status.Text, "temporary build") {
		t.Errorf("status %q", v.act.status.Text)
	}
}
