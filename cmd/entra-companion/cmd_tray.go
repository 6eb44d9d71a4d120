package main

import (
	"context"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"

	"github.com/entra-companion/entra-companion/assets"
	"github.com/entra-companion/entra-companion/config"
	"github.com/entra-companion/entra-companion/ui"
)

// AppID is the application id (FyneApp.toml's Details.ID).
const AppID = "io.github.entracompanion.EntraCompanion"

type trayOptions struct {
	demo bool
}

// settingsFile loads and saves the settings file for the Settings window.
type settingsFile struct{ path string }

func (s settingsFile) Load() (*config.Config, error) { return config.Load(s.path) }
func (s settingsFile) Save(c *config.Config) error   { return config.Save(s.path, c) }

// runTray runs the tray app until Quit or ctx ends.
func (e *env) runTray(ctx context.Context, o trayOptions) error {
	cfg, err := e.config()
	if err != nil {
		return err
	}
	path, err := e.settingsPath()
	if err != nil {
		return err
	}
	if e.openURL == nil {
		e.openURL = openBrowser
	}
	b, err := e.broker(ctx, true)
	if err != nil {
		return err
	}
	defer b.Close()
	g, err := e.newGraph(b)
	if err != nil {
		return err
	}
	pc := e.newProxyControl(cfg, b)

	a := app.NewWithID(AppID)
	a.SetIcon(assets.AppIcon)
	u := ui.New(a, ui.Deps{
		Accounts:  b,
		Directory: g,
		Proxy:     pc,
		Settings:  settingsFile{path: path},
		Notify: func(title, body string) {
			a.SendNotification(fyne.NewNotification(title, body))
		},
		OpenURL: e.openURL,
		Logger:  e.log,
		Demo:    o.demo,
	})
	stop := context.AfterFunc(ctx, func() { fyne.Do(a.Quit) })
	defer stop()
	u.Run()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = pc.Stop(sctx)
	return nil
}
