// Package plainlocale names English as the language when the process runs in the C or POSIX
// locale (LANG=C, LANG=C.UTF-8, nothing set: servers, containers, CI). Fyne reads the locale
// while its packages initialise and logs "Error parsing user locale C" to stderr on every run
// of every command otherwise. Import it from main for its side effect, before anything that
// imports Fyne; it has no dependencies of its own, so it is initialised before Fyne's lang
// package.
package plainlocale

import (
	"os"
	"strings"
)

func init() {
	if os.Getenv("LANGUAGE") != "" {
		return
	}
	loc := ""
	for _, k := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if v := os.Getenv(k); v != "" {
			loc = v
			break
		}
	}
	base, _, _ := strings.Cut(loc, ".")
	if base == "" || base == "C" || base == "POSIX" {
		_ = os.Setenv("LANGUAGE", "en")
	}
}
