package ui

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/entra-companion/entra-companion/config"
)

// ShowSettings opens the Settings window with the settings as saved. Call it on Fyne's
// goroutine.
func (u *UI) ShowSettings() {
	if u.d.Settings == nil {
		return
	}
	if u.settings == nil {
		u.settings = newSettingsView(u, u.newWindow("Settings", fyne.NewSize(600, 560)))
	}
	u.settings.load()
	u.settings.win.Show()
	u.settings.win.RequestFocus()
}

// cloudLabels are the Cloud select's options, in order, for the config values.
var cloudLabels = []struct{ value, label string }{
	{config.CloudGlobal, "Global (login.microsoftonline.com)"},
	{config.CloudUSGov, "US Government (login.microsoftonline.us)"},
	{config.CloudChina, "China, operated by 21Vianet (login.chinacloudapi.cn)"},
}

// fieldLabels name the form's fields for the config keys in validation messages.
var fieldLabels = map[string]string{
	"client_id":             "Client ID",
	"authority":             "Authority",
	"cloud":                 "Cloud",
	"graph_url":             "Graph URL",
	"proxy.listen":          "Listen port",
	"proxy.allowed_origins": "Allowed origins",
}

// settingsView is the Settings window: a form over the settings file's main keys. Save checks
// the whole config with Validate and says what is wrong before anything is written.
type settingsView struct {
	u    *UI
	win  fyne.Window
	base *config.Config // as loaded; keys the form does not show are kept

	clientID   *widget.Entry
	authority  *widget.Entry
	cloud      *widget.Select
	graphURL   *widget.Entry
	port       *widget.Entry
	origins    *widget.Entry
	requireKey *widget.Check
	startLogin *widget.Check
	save       *widget.Button
	revert     *widget.Button
	act        *activity
}

func newSettingsView(u *UI, w fyne.Window) *settingsView {
	v := &settingsView{u: u, win: w}
	v.clientID = widget.NewEntry()
	v.clientID.SetPlaceHolder(config.DefaultClientID)
	v.authority = widget.NewEntry()
	v.authority.SetPlaceHolder(config.DefaultAuthority)
	labels := make([]string, len(cloudLabels))
	for i, c := range cloudLabels {
		labels[i] = c.label
	}
	v.cloud = widget.NewSelect(labels, nil)
	v.graphURL = widget.NewEntry()
	v.port = widget.NewEntry()
	v.port.SetPlaceHolder("8631 (0 picks a free port)")
	v.origins = widget.NewMultiLineEntry()
	v.origins.SetMinRowsVisible(3)
	v.origins.SetPlaceHolder("one origin a line, e.g. http://localhost:*")
	v.requireKey = widget.NewCheck("Require the client key (X-Entra-Proxy-Key header)", nil)
	v.startLogin = widget.NewCheck("Start Entra Companion when I log in", nil)
	v.save = widget.NewButtonWithIcon("Save", theme.DocumentSaveIcon(), v.saveForm)
	v.save.Importance = widget.HighImportance
	v.revert = widget.NewButtonWithIcon("Revert", theme.ContentUndoIcon(), v.load)
	v.act = newActivity(u, w)
	v.act.onChange = func(busy bool) { enable(v.save, !busy) }

	form := widget.NewForm(
		widget.NewFormItem("Client ID", v.clientID),
		widget.NewFormItem("Authority", v.authority),
		widget.NewFormItem("Cloud", v.cloud),
		widget.NewFormItem("Graph URL", v.graphURL),
		widget.NewFormItem("Listen port", v.port),
		widget.NewFormItem("Allowed origins", v.origins),
		widget.NewFormItem("", v.requireKey),
		widget.NewFormItem("", v.startLogin),
	)
	form.Items[1].HintText = "Ends with the tenant: organizations, common, a domain or an id"
	form.Items[4].HintText = "The proxy listens on 127.0.0.1 at this port"
	buttons := container.NewHBox(v.revert, v.save)
	w.SetContent(container.NewBorder(nil, container.NewVBox(v.act.box, container.NewBorder(nil, nil, nil, buttons)), nil, nil,
		container.NewVScroll(form)))
	return v
}

// load fills the form from the settings file (defaults where it cannot be read).
func (v *settingsView) load() {
	cfg, err := v.u.d.Settings.Load()
	if err != nil || cfg == nil {
		v.base = config.Default()
		v.fill(v.base)
		if err == nil {
			err = errors.New("the settings could not be read")
		}
		v.act.Warn("The settings file could not be read, so defaults are shown; saving replaces the file.\n" + configProblems(err))
		return
	}
	v.base = cfg.Clone()
	v.fill(cfg)
	v.act.Say("")
}

func (v *settingsView) fill(cfg *config.Config) {
	v.clientID.SetText(cfg.ClientID)
	v.authority.SetText(cfg.Authority)
	v.cloud.ClearSelected()
	for _, c := range cloudLabels {
		if c.value == cfg.Cloud {
			v.cloud.SetSelected(c.label)
		}
	}
	v.graphURL.SetText(cfg.GraphURL)
	if _, port, err := net.SplitHostPort(cfg.Proxy.Listen); err == nil {
		v.port.SetText(port)
	} else {
		v.port.SetText(cfg.Proxy.Listen)
	}
	v.origins.SetText(strings.Join(cfg.Proxy.AllowedOrigins, "\n"))
	v.requireKey.SetChecked(cfg.Proxy.RequireKey)
	v.startLogin.SetChecked(cfg.StartAtLogin)
}

// form returns the config the form describes, or why it cannot.
func (v *settingsView) form() (*config.Config, error) {
	cfg := v.base.Clone()
	cfg.ClientID = strings.TrimSpace(v.clientID.Text)
	cfg.Authority = strings.TrimSpace(v.authority.Text)
	for _, c := range cloudLabels {
		if c.label == v.cloud.Selected {
			cfg.Cloud = c.value
		}
	}
	cfg.GraphURL = strings.TrimSpace(v.graphURL.Text)
	port := strings.TrimSpace(v.port.Text)
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return nil, formError("Listen port: enter a number from 1 to 65535, or 0 to pick a free port.")
	}
	host := "127.0.0.1"
	if h, _, err := net.SplitHostPort(cfg.Proxy.Listen); err == nil && h != "" {
		host = h
	}
	cfg.Proxy.Listen = net.JoinHostPort(host, port)
	cfg.Proxy.AllowedOrigins = nil
	for _, line := range strings.Split(v.origins.Text, "\n") {
		if o := strings.TrimSpace(line); o != "" {
			cfg.Proxy.AllowedOrigins = append(cfg.Proxy.AllowedOrigins, o)
		}
	}
	cfg.Proxy.RequireKey = v.requireKey.Checked
	cfg.StartAtLogin = v.startLogin.Checked
	return cfg, nil
}

// saveForm validates the form, saves it atomically (Settings.Save) and sets or removes start
// at login. Nothing is written when the config is not valid.
func (v *settingsView) saveForm() {
	cfg, err := v.form()
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		v.act.Warn("These settings cannot be saved:\n" + configProblems(err))
		return
	}
	exe, exeErr := v.u.exe()
	v.act.Run("Saving…", false, nil, func(context.Context) (func(), error) {
		if err := v.u.d.Settings.Save(cfg); err != nil {
			return nil, err
		}
		v.u.log.Info("settings saved")
		note := "Saved. Sign-in changes apply to new sign-ins; proxy changes apply when the proxy restarts."
		var autoErr error
		switch on, _ := StartAtLogin(); {
		case cfg.StartAtLogin && exeErr != nil:
			autoErr = exeErr
		case cfg.StartAtLogin && temporaryBuild(exe):
			note += " Start at login was not set: this copy of the app runs from a temporary build (go run); install it first."
		case cfg.StartAtLogin:
			autoErr = SetStartAtLogin(true, exe)
		case on:
			autoErr = SetStartAtLogin(false, "")
		}
		if autoErr != nil {
			v.u.log.Warn("start at login", "err", autoErr)
			note += " But start at login could not be changed: " + sentence(autoErr.Error())
		}
		return func() {
			v.base = cfg.Clone()
			v.act.Say(note)
		}, nil
	})
}

// configProblems lists the problems of a (joined) config error, one bullet each, naming the
// form's field where there is one.
func configProblems(err error) string {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	var b strings.Builder
	for i, e := range errs {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("• ")
		var ce *config.Error
		if errors.As(e, &ce) {
			key := ce.Key
			if k, _, ok := strings.Cut(key, "["); ok {
				key = k
			}
			if l, ok := fieldLabels[key]; ok {
				b.WriteString(l + ": " + strings.TrimSuffix(ce.Error(), ".") + ".")
			} else {
				b.WriteString(sentence(ce.Error()))
			}
		} else {
			b.WriteString(sentence(e.Error()))
		}
	}
	return b.String()
}

// formError is a problem with a field's text, worded for the user.
type formError string

// Error returns the message.
func (e formError) Error() string { return string(e) }
