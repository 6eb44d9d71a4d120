package ui

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// appID is the reverse-DNS id of FyneApp.toml: the LaunchAgent label and the icon name.
const appID = "io.github.entracompanion.EntraCompanion"

// StartAtLogin reports whether Entra Companion is set to start when the user logs in: an XDG
// autostart entry on Linux and BSD, a LaunchAgent on macOS, the HKCU Run key on Windows.
func StartAtLogin() (bool, error) { return autostartEnabled() }

// SetStartAtLogin makes the program exe (an absolute path, normally os.Executable()) start
// when the user logs in, or, with enabled false, stops that. Removing an entry that is not
// there is not an error.
func SetStartAtLogin(enabled bool, exe string) error {
	if !enabled {
		return autostartDisable()
	}
	if !filepath.IsAbs(exe) {
		return fmt.Errorf("start at login needs the program's absolute path, not %q", exe)
	}
	if strings.ContainsAny(exe, "\n\r\x00") {
		return errors.New("start at login: the program's path contains a line break")
	}
	return autostartEnable(exe)
}

// fileAutostart starts the program at login through a file the desktop reads then: an XDG
// autostart entry, or a macOS LaunchAgent.
type fileAutostart struct {
	path    func() (string, error) // where the file goes
	content func(exe string) string
}

func (f fileAutostart) enable(exe string) error {
	p, err := f.path()
	if err != nil {
		return fmt.Errorf("setting start at login: %w", err)
	}
	if err := writeFileAtomic(p, []byte(f.content(exe)), 0o644); err != nil {
		return fmt.Errorf("setting start at login: %w", err)
	}
	return nil
}

func (f fileAutostart) disable() error {
	p, err := f.path()
	if err != nil {
		return fmt.Errorf("removing start at login: %w", err)
	}
	if err := removeIfExists(p); err != nil {
		return fmt.Errorf("removing start at login: %w", err)
	}
	return nil
}

func (f fileAutostart) enabled() (bool, error) {
	p, err := f.path()
	if err != nil {
		return false, err
	}
	return fileExists(p)
}

// temporaryBuild reports whether exe looks like a `go run` or `go test` build, which is
// deleted afterwards: starting it at login would fail.
func temporaryBuild(exe string) bool {
	return strings.Contains(exe, string(filepath.Separator)+"go-build") ||
		strings.HasPrefix(exe, os.TempDir()+string(filepath.Separator)+"go-build")
}

// xdgAutostartPath is $XDG_CONFIG_HOME/autostart/entra-companion.desktop, with
// XDG_CONFIG_HOME defaulting to ~/.config (a relative value is ignored, as the spec says).
func xdgAutostartPath(getenv func(string) string, home string) (string, error) {
	dir := getenv("XDG_CONFIG_HOME")
	if dir == "" || !filepath.IsAbs(dir) {
		if home == "" {
			return "", errors.New("neither XDG_CONFIG_HOME nor a home directory is set")
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "autostart", "entra-companion.desktop"), nil
}

// desktopEntry is the XDG autostart entry that starts exe.
func desktopEntry(exe string) string {
	return "[Desktop Entry]\n" +
		"Type=Application\n" +
		"Version=1.0\n" +
		"Name=Entra Companion\n" +
		"GenericName=Microsoft Entra account companion\n" +
		"Comment=Keeps your Microsoft Entra accounts signed in, from the system tray\n" +
		"Exec=" + desktopExec(exe) + "\n" +
		"Icon=" + appID + "\n" +
		"Terminal=false\n" +
		"Categories=Development;Utility;\n" +
		"X-GNOME-Autostart-enabled=true\n"
}

// desktopExec quotes a program path for a desktop entry's Exec key: per the Desktop Entry
// Specification, an argument with reserved characters is enclosed in double quotes with ",
// `, $ and \ escaped by a backslash, "%" is doubled, and then — Exec being a string value —
// every backslash is escaped once more.
func desktopExec(arg string) string {
	arg = strings.ReplaceAll(arg, "%", "%%")
	if strings.ContainsAny(arg, " \t\"'\\><~|&;$*?#()`") {
		var b strings.Builder
		b.WriteByte('"')
		for _, r := range arg {
			if strings.ContainsRune("\"`$\\", r) {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteByte('"')
		arg = b.String()
	}
	return strings.ReplaceAll(arg, `\`, `\\`)
}

// launchAgentPath is ~/Library/LaunchAgents/<app id>.plist.
func launchAgentPath(home string) (string, error) {
	if home == "" {
		return "", errors.New("no home directory")
	}
	return filepath.Join(home, "Library", "LaunchAgents", appID+".plist"), nil
}

// launchAgentPlist is the LaunchAgent that starts exe at login, in the user's GUI session.
func launchAgentPlist(exe string) string {
	var path bytes.Buffer
	_ = xml.EscapeText(&path, []byte(exe))
	return `<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
	<key>Label</key>
	<string>` + appID + `</string>
	<key>ProgramArguments</key>
	<array>
		<string>` + path.String() + `</string>
	</array>
	<key>RunAtLoad</key>
	<true/>
	<key>ProcessType</key>
	<string>Interactive</string>
	<key>LimitLoadToSessionType</key>
	<string>Aqua</string>
</dict>
</plist>
`
}

// writeFileAtomic writes data to path through a temporary file in the same directory and a
// rename, so a crash never leaves half a file; it creates the directory if needed.
func writeFileAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// removeIfExists removes path; a missing file is not an error.
func removeIfExists(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// fileExists reports whether path exists.
func fileExists(path string) (bool, error) {
	_, err := os.Stat(path)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	}
	return false, err
}
