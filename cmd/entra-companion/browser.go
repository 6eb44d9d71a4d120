package main

import (
	"fmt"
	"os"
	"os/exec"

	"github.com/pkg/browser"
)

// openBrowser opens a URL in the user's browser: the command in $BROWSER if set (as many
// command-line tools do), else the system's default browser.
func openBrowser(url string) error {
	if cmd := os.Getenv("BROWSER"); cmd != "" {
		c := exec.Command(cmd, url)
		c.Stdout, c.Stderr = os.Stderr, os.Stderr
		if err := c.Start(); err != nil {
			return fmt.Errorf("opening the browser with $BROWSER (%s): %w", cmd, err)
		}
		go func() { _ = c.Wait() }()
		return nil
	}
	return browser.OpenURL(url)
}
