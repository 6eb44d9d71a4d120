package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/godbus/dbus/v5"

	"github.com/entra-companion/entra-companion/sim"
)

// desktop is a real X display (Xvfb under scripts/test) with a system-tray host, as a person's
// desktop has. Outside scripts/test (no ENTRA_E2E) the tests that need it are skipped; inside
// it, a missing piece fails them.
type desktop struct {
	t         *testing.T
	bus       *dbus.Conn
	w, h      int
	artifacts string
}

func needDesktop(t *testing.T) *desktop {
	t.Helper()
	missing := []string{}
	for _, bin := range []string{"gtk-sni-tray-standalone", "xdotool", "/usr/bin/import", "chromium"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if os.Getenv("DISPLAY") == "" {
		missing = append(missing, "$DISPLAY (an X server)")
	}
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
		missing = append(missing, "a D-Bus session")
	}
	if len(missing) > 0 {
		if os.Getenv("ENTRA_E2E") != "" {
			t.Fatalf("the end-to-end environment lacks %s", strings.Join(missing, ", "))
		}
		t.Skipf("needs %s: run the tests with scripts/test", strings.Join(missing, ", "))
	}
	requireKeychain(t)
	bus, err := dbus.ConnectSessionBus()
	if err != nil {
		t.Fatalf("connecting to the session bus: %v", err)
	}
	t.Cleanup(func() { bus.Close() })
	d := &desktop{t: t, bus: bus, artifacts: os.Getenv("ENTRA_TEST_ARTIFACTS")}
	if d.artifacts == "" {
		d.artifacts = t.TempDir()
	}
	out, err := exec.Command("xdotool", "getdisplaygeometry").Output()
	if f := strings.Fields(string(out)); err == nil && len(f) == 2 {
		d.w, _ = strconv.Atoi(f[0])
		d.h, _ = strconv.Atoi(f[1])
	}
	if d.w == 0 {
		t.Fatalf("reading the display size: %v", err)
	}
	if !d.hasName("org.kde.StatusNotifierWatcher") {
		host := exec.Command("gtk-sni-tray-standalone", "--watcher", "--bottom", "--size", "40")
		host.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := host.Start(); err != nil {
			t.Fatalf("starting the tray host: %v", err)
		}
		t.Cleanup(func() { _ = syscall.Kill(-host.Process.Pid, syscall.SIGKILL); _ = host.Wait() })
		d.waitFor("the tray host", 20*time.Second, func() bool { return d.hasName("org.kde.StatusNotifierWatcher") })
	}
	return d
}

func (d *desktop) hasName(name string) bool {
	var has bool
	err := d.bus.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, name).Store(&has)
	return err == nil && has
}

func (d *desktop) waitFor(what string, limit time.Duration, cond func() bool) {
	d.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			d.t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// trayItems lists the registered StatusNotifierItems ("service/path" or "service").
func (d *desktop) trayItems() []string {
	v, err := d.bus.Object("org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher").
		GetProperty("org.kde.StatusNotifierWatcher.RegisteredStatusNotifierItems")
	if err != nil {
		return nil
	}
	items, _ := v.Value().([]string)
	return items
}

// menuItem is one entry of a tray menu as the tray host sees it (com.canonical.dbusmenu).
type menuItem struct {
	ID       int32
	Label    string
	Enabled  bool
	Visible  bool
	Sep      bool
	Children []menuItem
}

// trayMenu reads the tray item's menu over D-Bus: what the tray host renders.
func (d *desktop) trayMenu(item string) []menuItem {
	d.t.Helper()
	service, path := item, dbus.ObjectPath("/StatusNotifierItem")
	if i := strings.Index(item, "/"); i > 0 {
		service, path = item[:i], dbus.ObjectPath(item[i:])
	}
	v, err := d.bus.Object(service, path).GetProperty("org.kde.StatusNotifierItem.Menu")
	if err != nil {
		d.t.Fatalf("reading the tray item's menu path: %v", err)
	}
	menu := d.bus.Object(service, v.Value().(dbus.ObjectPath))
	var rev uint32
	var layout struct {
		ID       int32
		Props    map[string]dbus.Variant
		Children []dbus.Variant
	}
	if err := menu.Call("com.canonical.dbusmenu.GetLayout", 0, int32(0), int32(-1), []string{}).Store(&rev, &layout); err != nil {
		d.t.Fatalf("reading the tray menu: %v", err)
	}
	return convertMenu(layout.Children)
}

func convertMenu(children []dbus.Variant) []menuItem {
	var out []menuItem
	for _, c := range children {
		fields, ok := c.Value().([]any)
		if !ok || len(fields) != 3 {
			continue
		}
		id, _ := fields[0].(int32)
		props, _ := fields[1].(map[string]dbus.Variant)
		it := menuItem{ID: id, Enabled: true, Visible: true}
		if l, ok := props["label"]; ok {
			it.Label, _ = l.Value().(string)
		}
		if e, ok := props["enabled"]; ok {
			it.Enabled, _ = e.Value().(bool)
		}
		if v, ok := props["visible"]; ok {
			it.Visible, _ = v.Value().(bool)
		}
		if t, ok := props["type"]; ok {
			it.Sep = t.Value() == "separator"
		}
		if sub, ok := fields[2].([]dbus.Variant); ok {
			it.Children = convertMenu(sub)
		}
		out = append(out, it)
	}
	return out
}

func labels(items []menuItem) []string {
	var out []string
	for _, it := range items {
		if !it.Sep && it.Visible {
			out = append(out, it.Label)
		}
	}
	return out
}

// screenshot saves the root window (or one window) to the artifacts and returns the image.
func (d *desktop) screenshot(name, window string) image.Image {
	d.t.Helper()
	if window == "" {
		window = "root"
	}
	path := filepath.Join(d.artifacts, name+".png")
	if out, err := exec.Command("/usr/bin/import", "-window", window, path).CombinedOutput(); err != nil {
		d.t.Fatalf("screenshot %s: %v %s", name, err, out)
	}
	f, err := os.Open(path)
	if err != nil {
		d.t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		d.t.Fatalf("reading screenshot %s: %v", name, err)
	}
	if os.Getenv("ENTRA_UPDATE_SCREENSHOTS") != "" {
		dst := filepath.Join("..", "..", "docs", "screenshots", name+".png")
		_ = os.MkdirAll(filepath.Dir(dst), 0o755)
		b, _ := os.ReadFile(path)
		_ = os.WriteFile(dst, b, 0o644)
	}
	return img
}

// shot takes a screenshot of one window without keeping it.
func (d *desktop) shot(window string) image.Image {
	d.t.Helper()
	out, err := exec.Command("/usr/bin/import", "-window", window, "png:-").Output()
	if err != nil {
		return image.NewRGBA(image.Rect(0, 0, 1, 1)) // not mapped yet
	}
	img, err := png.Decode(bytes.NewReader(out))
	if err != nil {
		return image.NewRGBA(image.Rect(0, 0, 1, 1))
	}
	return img
}

// saveCrop saves part of a screenshot (like the menu next to the tray) for the docs.
func (d *desktop) saveCrop(name string, img image.Image, r image.Rectangle) {
	d.t.Helper()
	sub, ok := img.(interface {
		SubImage(image.Rectangle) image.Image
	})
	if !ok {
		return
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, sub.SubImage(r)); err != nil {
		d.t.Fatal(err)
	}
	_ = os.WriteFile(filepath.Join(d.artifacts, name+".png"), buf.Bytes(), 0o644)
	if os.Getenv("ENTRA_UPDATE_SCREENSHOTS") != "" {
		_ = os.WriteFile(filepath.Join("..", "..", "docs", "screenshots", name+".png"), buf.Bytes(), 0o644)
	}
}

// findWindow waits for a visible window whose title matches and returns its id.
func (d *desktop) findWindow(title string) string {
	d.t.Helper()
	var id string
	d.waitFor("window "+title, 30*time.Second, func() bool {
		out, _ := exec.Command("xdotool", "search", "--onlyvisible", "--name", title).Output()
		f := strings.Fields(string(out))
		if len(f) > 0 {
			id = f[len(f)-1]
		}
		return id != ""
	})
	return id
}

func (d *desktop) xdo(args ...string) {
	d.t.Helper()
	if out, err := exec.Command("xdotool", args...).CombinedOutput(); err != nil {
		d.t.Fatalf("xdotool %v: %v %s", args, err, out)
	}
}

// putAway moves a window off the screen, so the next screenshots show only their window. (There
// is no window manager to close it politely, and destroying it from outside is not what a
// person does.)
func (d *desktop) putAway(id string) {
	d.xdo("windowmove", id, strconv.Itoa(d.w+100), "0")
}

// chooseFromTray right-clicks the tray icon and picks an entry with the keyboard, as a person
// would; the entry's position comes from the menu the tray host renders.
func (d *desktop) chooseFromTray(item, label string) {
	d.t.Helper()
	menu := d.trayMenu(item)
	downs := 0
	found := false
	for _, it := range menu {
		if it.Sep || !it.Visible || !it.Enabled {
			continue
		}
		downs++
		if it.Label == label {
			found = true
			break
		}
	}
	if !found {
		d.t.Fatalf("the tray menu has no enabled %q: %q", label, labels(menu))
	}
	d.openTrayMenu()
	keys := []string{"key", "--delay", "80"}
	for range downs {
		keys = append(keys, "Down")
	}
	d.xdo(append(keys, "Return")...)
}

// openTrayMenu right-clicks the tray icon and waits until the menu is drawn.
func (d *desktop) openTrayMenu() image.Image {
	d.t.Helper()
	d.xdo("mousemove", "20", strconv.Itoa(d.h-20), "click", "3")
	var img image.Image
	d.waitFor("the tray menu to open", 15*time.Second, func() bool {
		img = d.grab()
		return countNear(img, image.Rect(0, d.h/3, 300, d.h-45), [3]uint32{0xFF, 0xFF, 0xFF}, 30) >= 5000
	})
	time.Sleep(200 * time.Millisecond) // the menu takes the keyboard
	return img
}

// grab takes a screenshot of the whole display without keeping it.
func (d *desktop) grab() image.Image {
	d.t.Helper()
	out, err := exec.Command("/usr/bin/import", "-window", "root", "png:-").Output()
	if err != nil {
		d.t.Fatalf("screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(out))
	if err != nil {
		d.t.Fatalf("reading a screenshot: %v", err)
	}
	return img
}

// countNear counts the pixels of a rectangle close to a colour.
func countNear(img image.Image, r image.Rectangle, want [3]uint32, tol uint32) int {
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			if absDiff(cr>>8, want[0]) <= tol && absDiff(cg>>8, want[1]) <= tol && absDiff(cb>>8, want[2]) <= tol {
				n++
			}
		}
	}
	return n
}

// countBlue counts clearly blue pixels (the app icon's Entra blue, however the host shades it).
func countBlue(img image.Image, r image.Rectangle) int {
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			if cb>>8 > 150 && cb>>8 > cr>>8+60 && cb>>8 > cg>>8+20 {
				n++
			}
		}
	}
	return n
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}

// photoColour is the mean colour of a simulated user's photo, read from a simulated cloud of
// our own (the photos are deterministic).
func photoColour(t *testing.T, upn string) [3]uint32 {
	t.Helper()
	s := sim.Start(t)
	tok, err := s.IssueAccessToken(upn, "https://graph.microsoft.com/User.Read")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", s.GraphURL()+"/me/photo/$value", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	img, err := jpeg.Decode(resp.Body)
	if err != nil {
		t.Fatalf("decoding %s's photo: %v", upn, err)
	}
	b := img.Bounds()
	// The centre of the photo (the avatar may be clipped to a circle).
	var r, g, bl, n uint32
	for y := b.Min.Y + b.Dy()*2/5; y < b.Min.Y+b.Dy()*3/5; y++ {
		for x := b.Min.X + b.Dx()*2/5; x < b.Min.X+b.Dx()*3/5; x++ {
			cr, cg, cb, _ := img.At(x, y).RGBA()
			r, g, bl, n = r+cr>>8, g+cg>>8, bl+cb>>8, n+1
		}
	}
	return [3]uint32{r / n, g / n, bl / n}
}

// The tray app as a person meets it: `demo` starts, its icon appears in the tray, a right
// click opens the menu, Profile… opens the window with the user's photo and groups; the other
// windows open from the menu; a sign-in through the simulated cloud's page in a real (headless)
// Chromium adds an account that then appears in the menu. Screenshots of the menu and each
// window go to $ENTRA_TEST_ARTIFACTS (and to docs/screenshots with ENTRA_UPDATE_SCREENSHOTS=1).
func TestTrayEndToEnd(t *testing.T) {
	d := needDesktop(t)
	home := t.TempDir()
	urls := filepath.Join(home, "urls.txt")
	browser := filepath.Join(home, "browser.sh")
	if err := os.WriteFile(browser, []byte("#!/bin/sh\necho \"$1\" >> "+urls+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	before := d.trayItems()

	app := exec.Command(os.Args[0], "demo", "--sign-in", "adele", "--sign-in", "grady", "--sign-in", "guest")
	app.Env = append(os.Environ(), "ENTRA_RUN_AS_CLI=1", "XDG_CONFIG_HOME="+filepath.Join(home, "config"),
		"BROWSER="+browser, "LANG=en_US.UTF-8")
	var appErr syncBuffer
	app.Stdout, app.Stderr = io.Discard, &appErr
	started := time.Now()
	if err := app.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- app.Wait() }()
	t.Cleanup(func() {
		_ = app.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = app.Process.Kill()
		}
		if t.Failed() {
			t.Logf("app stderr:\n%s", appErr.String())
		}
	})

	// The icon appears.
	var item string
	d.waitFor("the tray icon", 60*time.Second, func() bool {
		for _, it := range d.trayItems() {
			if !contains(before, it) {
				item = it
			}
		}
		return item != ""
	})
	t.Logf("tray icon registered %.1f s after start (three accounts signed in at start)", time.Since(started).Seconds())
	var got []string
	d.waitFor("the full tray menu", 30*time.Second, func() bool {
		got = labels(d.trayMenu(item))
		return len(got) >= 8 && strings.Contains(got[0], "adele@contoso.onmicrosoft.com") && contains(got, "Quit")
	})
	if len(got) < 8 || !strings.Contains(got[0], "adele@contoso.onmicrosoft.com") || !contains(got, "Profile…") || !contains(got, "Quit") {
		t.Fatalf("tray menu: %q", got)
	}
	time.Sleep(time.Second) // the host draws the icon
	root := d.screenshot("tray", "")
	if n := countBlue(root, image.Rect(0, d.h-40, 40, d.h)); n < 200 {
		t.Errorf("the tray icon (Entra blue) is not visible at the bottom left: %d blue pixels", n)
	}

	// Right click: the menu opens (openTrayMenu fails the test if it does not).
	d.openTrayMenu()
	opened := d.screenshot("menu", "")
	d.saveCrop("tray-menu", opened, image.Rect(0, d.h/3, 420, d.h))
	d.xdo("key", "Escape")
	time.Sleep(500 * time.Millisecond)

	// Profile…: the user's photo and groups.
	d.chooseFromTray(item, "Profile…")
	win := d.findWindow("Profile")
	want := photoColour(t, sim.UserAdele)
	var prof image.Image
	var photoPixels int
	d.waitFor("Adele's photo in the profile window", 30*time.Second, func() bool {
		prof = d.shot(win)
		photoPixels = countNear(prof, image.Rect(0, 0, 140, 140), want, 12)
		return photoPixels >= 400
	})
	time.Sleep(500 * time.Millisecond)
	prof = d.screenshot("profile", win)
	// The Groups tab.
	d.xdo("mousemove", "--window", win, "214", "185", "click", "1")
	time.Sleep(time.Second)
	groups := d.screenshot("profile-groups", win)
	if sameImage(prof, groups) {
		t.Error("choosing the Groups tab changed nothing in the window")
	}
	d.xdo("mousemove", "--window", win, "280", "185", "click", "1")
	time.Sleep(time.Second)
	d.screenshot("profile-token", win)
	d.putAway(win)

	// The other windows.
	for _, w := range []struct{ entry, title, shot string }{
		{"Proxy…", "Proxy", "proxy"},
		{"Settings…", "Settings", "settings"},
		{"Add account…", "Accounts", "accounts"},
	} {
		d.chooseFromTray(item, w.entry)
		id := d.findWindow(w.title)
		time.Sleep(1500 * time.Millisecond)
		d.screenshot(w.shot, id)
		if w.title != "Accounts" {
			d.putAway(id)
		}
	}

	// A sign-in through the simulated cloud's page in headless Chromium adds Megan.
	acc := d.findWindow("Accounts")
	out, _ := exec.Command("xdotool", "getwindowgeometry", "--shell", acc).Output()
	geo := map[string]int{}
	for _, l := range strings.Split(string(out), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			geo[k], _ = strconv.Atoi(v)
		}
	}
	// "Add with browser" is the last button at the bottom right.
	d.xdo("mousemove", "--window", acc, strconv.Itoa(geo["WIDTH"]-70), strconv.Itoa(geo["HEIGHT"]-22), "click", "1")
	var signInURL string
	d.waitFor("the app to open the sign-in page", 30*time.Second, func() bool {
		b, _ := os.ReadFile(urls)
		signInURL = strings.TrimSpace(string(b))
		return signInURL != ""
	})
	signInWithChromium(t, signInURL, sim.UserMegan)
	d.waitFor("Megan in the tray menu", 30*time.Second, func() bool {
		for _, it := range d.trayMenu(item) {
			if it.Label == "Accounts" {
				for _, sub := range it.Children {
					if strings.Contains(sub.Label, sim.UserMegan) {
						return true
					}
				}
			}
		}
		return false
	})
	time.Sleep(time.Second)
	d.screenshot("accounts-after-sign-in", acc)

	// Quit from the menu: the app ends cleanly and its icon goes away.
	d.chooseFromTray(item, "Quit")
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("the app did not exit cleanly after Quit: %v\n%s", err, appErr.String())
		}
		exited <- err
	case <-time.After(20 * time.Second):
		t.Fatal("the app did not quit")
	}
	if strings.Contains(appErr.String(), "panic") {
		t.Errorf("the app panicked:\n%s", appErr.String())
	}
}

// signInWithChromium opens the sign-in page in headless Chromium and signs in as a person
// would: pick the user, press Sign in; the page posts the code to the app's loopback listener.
func signInWithChromium(t *testing.T, url, upn string) {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath("chromium"), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err := chromedp.Do(ctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible(`#loginForm`),
		chromedp.Click(fmt.Sprintf(`tr.pick[data-login=%q]`, upn)),
		chromedp.Click(`#idSIButton9`),
		chromedp.Sleep(time.Second),
	)
	if err != nil {
		t.Fatalf("signing in with Chromium: %v", err)
	}
	done, err := chromedp.Run(ctx, chromedp.Text(`body`))
	if err != nil {
		t.Fatalf("reading the page after sign-in: %v", err)
	}
	t.Logf("the browser's last page says: %.80q", done)
}

func sameImage(a, b image.Image) bool {
	if a.Bounds() != b.Bounds() {
		return false
	}
	var ab, bb bytes.Buffer
	_ = png.Encode(&ab, a)
	_ = png.Encode(&bb, b)
	return bytes.Equal(ab.Bytes(), bb.Bytes())
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Without a tray host, and without any D-Bus session at all, the app says so in words, makes
// the Accounts window its main window, and still ends cleanly (no panic in the tray library).
func TestTrayAppWithoutTrayHostOrDBus(t *testing.T) {
	d := needDesktop(t)
	for _, tc := range []struct {
		name, want string
		cmd        func(home string) *exec.Cmd
	}{
		{"no tray host", "no system tray host found", func(home string) *exec.Cmd {
			// A private session bus of its own: no tray host and no keychain in it.
			return exec.Command("dbus-run-session", "--", os.Args[0], "demo", "--sign-in", "adele")
		}},
		{"no D-Bus session", "no D-Bus session: running without a tray icon", func(home string) *exec.Cmd {
			return exec.Command(os.Args[0], "demo", "--sign-in", "adele")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			app := tc.cmd(home)
			var env []string
			for _, kv := range os.Environ() {
				if !strings.HasPrefix(kv, "DBUS_SESSION_BUS_ADDRESS=") {
					env = append(env, kv)
				}
			}
			app.Env = append(env, "ENTRA_RUN_AS_CLI=1", "XDG_CONFIG_HOME="+filepath.Join(home, "config"), "LANG=en_US.UTF-8")
			var errb syncBuffer
			app.Stdout, app.Stderr = io.Discard, &errb
			app.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := app.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- app.Wait() }()
			t.Cleanup(func() { _ = syscall.Kill(-app.Process.Pid, syscall.SIGKILL) })
			d.waitFor("the clear message", 60*time.Second, func() bool { return strings.Contains(errb.String(), tc.want) })
			win := d.findWindow("Accounts")
			time.Sleep(time.Second)
			d.screenshot("main-window-"+strings.ReplaceAll(tc.name, " ", "-"), win)
			if !strings.Contains(errb.String(), "keychain") {
				t.Errorf("without a Secret Service the app should say it keeps tokens in memory only:\n%s", errb.String())
			}
			d.putAway(win)
			_ = syscall.Kill(-app.Process.Pid, syscall.SIGTERM) // the app (and dbus-run-session)
			select {
			case err := <-exited:
				// dbus-run-session itself dies of the signal; the app under it must end cleanly.
				if err != nil && tc.name != "no tray host" {
					t.Errorf("exit: %v\n%s", err, errb.String())
				}
			case <-time.After(20 * time.Second):
				_ = app.Process.Kill()
				t.Fatalf("the app did not end on SIGTERM\n%s", errb.String())
			}
			if strings.Contains(errb.String(), "panic") {
				t.Errorf("the app panicked:\n%s", errb.String())
			}
		})
	}
}
