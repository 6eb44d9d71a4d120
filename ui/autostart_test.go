package ui

import (
	"encoding/xml"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestXDGAutostartPath(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		env  map[string]string
		home string
		want string
	}{
		{map[string]string{"XDG_CONFIG_HOME": "/x/cfg"}, "/home/a", "/x/cfg/autostart/entra-companion.desktop"},
		{nil, "/home/a", "/home/a/.config/autostart/entra-companion.desktop"},
		{map[string]string{"XDG_CONFIG_HOME": "relative/cfg"}, "/home/a", "/home/a/.config/autostart/entra-companion.desktop"},
	} {
		got, err := xdgAutostartPath(env(tc.env), tc.home)
		if err != nil || got != tc.want {
			t.Errorf("xdgAutostartPath(%v, %q) = %q, %v; want %q", tc.env, tc.home, got, err, tc.want)
		}
	}
	if _, err := xdgAutostartPath(env(nil), ""); err == nil {
		t.Error("no XDG_CONFIG_HOME and no home: want an error")
	}
}

func TestDesktopEntry(t *testing.T) {
	want := "[Desktop Entry]\n" +
		"Type=Application\n" +
		"Version=1.0\n" +
		"Name=Entra Companion\n" +
		"GenericName=Microsoft Entra account companion\n" +
		"Comment=Keeps your Microsoft Entra accounts signed in, from the system tray\n" +
		"Exec=/usr/bin/entra-companion\n" +
		"Icon=io.github.entracompanion.EntraCompanion\n" +
		"Terminal=false\n" +
		"Categories=Development;Utility;\n" +
		"X-GNOME-Autostart-enabled=true\n"
	if got := desktopEntry("/usr/bin/entra-companion"); got != want {
		t.Errorf("desktop entry:\n%s\nwant:\n%s", got, want)
	}
}

func TestDesktopExecQuoting(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/entra-companion":             "/usr/bin/entra-companion",
		"/opt/Entra Companion/entra-companion": `"/opt/Entra Companion/entra-companion"`,
		`/opt/a$b/x`:                           `"/opt/a\\$b/x"`,
		`/opt/it's "here"/x`:                   `"/opt/it's \\"here\\"/x"`,
		`/opt/back\slash/x`:                    `"/opt/back\\\\slash/x"`,
		"/opt/100%/x":                          "/opt/100%%/x",
	} {
		if got := desktopExec(in); got != want {
			t.Errorf("desktopExec(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestLaunchAgentPlist(t *testing.T) {
	p, err := launchAgentPath("/Users/adele")
	if err != nil || p != "/Users/adele/Library/LaunchAgents/io.github.entracompanion.EntraCompanion.plist" {
		t.Errorf("launchAgentPath = %q, %v", p, err)
	}
	exe := "/Applications/Entra Companion & Co.app/Contents/MacOS/entra-companion"
	plist := launchAgentPlist(exe)
	// it is well-formed XML and holds the label, the program and RunAtLoad
	var doc struct {
		Dict struct {
			Keys    []string `xml:"key"`
			Strings []string `xml:"string"`
			Array   struct {
				Strings []string `xml:"string"`
			} `xml:"array"`
			True *struct{} `xml:"true"`
		} `xml:"dict"`
	}
	if err := xml.Unmarshal([]byte(plist), &doc); err != nil {
		t.Fatalf("plist is not XML: %v\n%s", err, plist)
	}
	if got := doc.Dict.Array.Strings; len(got) != 1 || got[0] != exe {
		t.Errorf("ProgramArguments = %q, want [%q]", got, exe)
	}
	if strings.Join(doc.Dict.Keys, ",") != "Label,ProgramArguments,RunAtLoad,ProcessType,LimitLoadToSessionType" || doc.Dict.True == nil {
		t.Errorf("keys %q, RunAtLoad true %v", doc.Dict.Keys, doc.Dict.True != nil)
	}
	if doc.Dict.Strings[0] != "io.github.entracompanion.EntraCompanion" {
		t.Errorf("Label = %q", doc.Dict.Strings[0])
	}
	if !strings.Contains(plist, "Entra Companion &amp; Co.app") {
		t.Errorf("the path is not XML-escaped:\n%s", plist)
	}
}

func TestSetStartAtLoginLinux(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the XDG autostart entry is Linux's")
	}
	xdg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", xdg)
	file := filepath.Join(xdg, "autostart", "entra-companion.desktop")

	if on, err := StartAtLogin(); on || err != nil {
		t.Fatalf("StartAtLogin before = %v, %v", on, err)
	}
	if err := SetStartAtLogin(true, "relative/exe"); err == nil {
		t.Error("a relative program path was accepted")
	}
	if err := SetStartAtLogin(true, "/usr/local/bin/entra-companion"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != desktopEntry("/usr/local/bin/entra-companion") {
		t.Errorf("file content:\n%s", data)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	if entries, _ := os.ReadDir(filepath.Dir(file)); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}
	if on, err := StartAtLogin(); !on || err != nil {
		t.Errorf("StartAtLogin after enabling = %v, %v", on, err)
	}
	if err := SetStartAtLogin(false, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("entry still there after disabling: %v", err)
	}
	if err := SetStartAtLogin(false, ""); err != nil {
		t.Errorf("disabling twice: %v", err)
	}
}
