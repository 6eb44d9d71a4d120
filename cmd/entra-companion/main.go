// Command entra-companion is the Entra Companion tray app (run without arguments) and its
// command line: sign Microsoft Entra ID accounts in, print fresh tokens, show who an account
// is, run the loopback proxy, verify tokens, and run a simulated Microsoft cloud to try it all.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	_ "github.com/entra-companion/entra-companion/cmd/entra-companion/internal/plainlocale" // before Fyne
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
