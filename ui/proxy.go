package ui

import (
	"fmt"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/layout"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/entra-companion/entra-companion/config"
	"github.com/entra-companion/entra-companion/localproxy"
)

// ShowProxy opens the Proxy window. Call it on Fyne's goroutine.
func (u *UI) ShowProxy() {
	if u.d.Proxy == nil {
		return
	}
	if u.proxy == nil {
		u.proxy = newProxyView(u, u.newWindow("Proxy", fyne.NewSize(760, 560)))
	}
	u.proxy.refresh(u.state)
	u.proxy.refreshLog()
	u.proxy.win.Show()
	u.proxy.win.RequestFocus()
}

// proxyView is the Proxy window: the proxy's state and address, a curl example, the routes and
// a live log of the requests it served (without tokens: the log never has them).
type proxyView struct {
	u   *UI
	win fyne.Window

	status  *widget.Label
	toggle  *widget.Button
	base    *widget.Label
	curl    *widget.Label
	routes  *fyne.Container
	entries []localproxy.LogEntry
	log     *widget.List
	logInfo *widget.Label
	note    *widget.Label
}

func newProxyView(u *UI, w fyne.Window) *proxyView {
	v := &proxyView{u: u, win: w}
	v.status = widget.NewLabelWithStyle("", fyne.TextAlignLeading, fyne.TextStyle{Bold: true})
	v.toggle = widget.NewButton("", u.toggleProxy)
	v.base = widget.NewLabel("")
	v.base.Selectable = true
	v.curl = widget.NewLabel("")
	v.curl.Selectable = true
	v.curl.TextStyle.Monospace = true
	v.note = widget.NewLabel("")
	copyBase := v.copyButton(func() string { return v.base.Text }, "Base URL copied.")
	copyCurl := v.copyButton(func() string { return v.curl.Text }, "Command copied.")
	form := container.New(layout.NewFormLayout(),
		widget.NewLabelWithStyle("Base URL", fyne.TextAlignTrailing, fyne.TextStyle{Bold: true}),
		container.NewBorder(nil, nil, nil, copyBase, v.base),
		widget.NewLabelWithStyle("Try it", fyne.TextAlignTrailing, fyne.TextStyle{Bold: true}),
		container.NewBorder(nil, nil, nil, copyCurl, v.curl),
	)
	v.routes = container.NewVBox()
	v.log = widget.NewList(
		func() int { return len(v.entries) },
		func() fyne.CanvasObject {
			l := widget.NewLabel("")
			l.TextStyle.Monospace = true
			l.Truncation = fyne.TextTruncateEllipsis
			return l
		},
		func(i widget.ListItemID, o fyne.CanvasObject) {
			if i < len(v.entries) {
				l := o.(*widget.Label)
				e := v.entries[i]
				l.SetText(logLine(e))
				if e.Error != "" || e.Status >= 500 {
					l.Importance = widget.DangerImportance
				} else if e.Status >= 400 {
					l.Importance = widget.WarningImportance
				} else {
					l.Importance = widget.MediumImportance
				}
				l.Refresh()
			}
		})
	v.logInfo = widget.NewLabel("")
	clear := widget.NewButtonWithIcon("Clear", theme.ContentClearIcon(), func() {
		u.clearRequestLog()
		v.refreshLog()
	})
	top := container.NewVBox(
		container.NewBorder(nil, nil, nil, v.toggle, v.status),
		form,
		widget.NewLabelWithStyle("Routes", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		v.routes,
		widget.NewSeparator(),
		container.NewBorder(nil, nil, nil, clear, v.logInfo),
	)
	w.SetContent(container.NewBorder(top, v.note, nil, nil, v.log))
	return v
}

func (v *proxyView) copyButton(value func() string, done string) *widget.Button {
	b := widget.NewButtonWithIcon("", theme.ContentCopyIcon(), func() {
		if s := value(); s != "" {
			v.u.clipboard().SetContent(s)
			v.note.SetText(done)
		}
	})
	b.Importance = widget.LowImportance
	return b
}

// refresh shows the proxy's state and routes.
func (v *proxyView) refresh(st MenuState) {
	if st.ProxyRunning {
		v.status.SetText("The proxy is on at " + st.ProxyURL)
		v.toggle.SetText("Turn off")
		v.toggle.SetIcon(theme.MediaStopIcon())
	} else {
		v.status.SetText("The proxy is off")
		v.toggle.SetText("Turn on")
		v.toggle.SetIcon(theme.MediaPlayIcon())
	}
	v.base.SetText(st.ProxyURL)
	v.curl.SetText(CurlExample(st.ProxyURL, st.Routes))
	v.routes.Objects = nil
	if len(st.Routes) == 0 {
		v.routes.Add(widget.NewLabel("No routes: add [[proxy.routes]] to the settings file."))
	}
	for _, r := range st.Routes {
		head := widget.NewLabelWithStyle(r.Prefix+"  →  "+r.Upstream, fyne.TextAlignLeading, fyne.TextStyle{Monospace: true})
		head.Truncation = fyne.TextTruncateEllipsis
		detail := widget.NewLabel(routeDetail(r))
		detail.SizeName = theme.SizeNameCaptionText
		detail.Truncation = fyne.TextTruncateEllipsis
		v.routes.Add(container.New(layout.NewCustomPaddedVBoxLayout(-10), head, detail))
	}
	v.win.Content().Refresh() // the routes and labels changed size: lay the window out again
}

// routeDetail is "graph · bearer token for https://graph.microsoft.com/.default · active account".
func routeDetail(r localproxy.RouteInfo) string {
	parts := []string{r.Name}
	switch r.Auth {
	case config.AuthBearer:
		s := "Entra token"
		if len(r.Scopes) > 0 {
			s += " for " + strings.Join(r.Scopes, " ")
		}
		parts = append(parts, s)
	case config.AuthStrapi:
		parts = append(parts, "Strapi JWT (exchanged for a Microsoft token)")
	case config.AuthNone:
		parts = append(parts, "no token")
	default:
		parts = append(parts, r.Auth)
	}
	if r.Account != "" {
		parts = append(parts, "always "+r.Account)
	} else if r.Auth != config.AuthNone {
		parts = append(parts, "active account")
	}
	return strings.Join(parts, " · ")
}

// refreshLog shows the kept requests, newest first.
func (v *proxyView) refreshLog() {
	v.entries = v.u.requestLog()
	switch len(v.entries) {
	case 0:
		v.logInfo.SetText("Requests appear here as they are served (no tokens are shown or kept).")
	case 1:
		v.logInfo.SetText("1 request, newest first")
	default:
		v.logInfo.SetText(fmt.Sprintf("%d requests, newest first (the last %d are kept)", len(v.entries), maxLog))
	}
	v.log.Refresh()
}

// CurlExample is a command that calls the proxy: Graph's /me through the Graph route (named
// graph, on /graph/ or to graph.microsoft.*), else the first route's prefix.
func CurlExample(base string, routes []localproxy.RouteInfo) string {
	if base == "" {
		base = "http://" + config.DefaultListen
	}
	path := "/graph/v1.0/me"
	found := false
	for _, r := range routes {
		if r.Name == "graph" || r.Prefix == "/graph/" || strings.Contains(r.Upstream, "graph.microsoft") {
			path, found = strings.TrimSuffix(r.Prefix, "/")+"/v1.0/me", true
			break
		}
	}
	if !found && len(routes) > 0 {
		path = routes[0].Prefix
	}
	return "curl " + strings.TrimSuffix(base, "/") + path
}

// logLine is one request: time, method, path, status, duration, size, the proxy's error code
// (when it answered itself), route and account.
func logLine(e localproxy.LogEntry) string {
	line := fmt.Sprintf("%s %-6s %-30s %3d %5s %6s", e.Time.Local().Format("15:04:05"), e.Method, truncate(e.Path, 30),
		e.Status, shortDuration(e.Duration), byteSize(e.Bytes))
	if e.Error != "" {
		line += "  " + e.Error
	}
	if e.Route != "" {
		line += "  " + e.Route
	}
	if e.Account != "" {
		line += "  " + e.Account
	}
	return line
}

func shortDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return "<1ms"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

func byteSize(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%dB", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1fkB", float64(n)/1000)
	}
	return fmt.Sprintf("%.1fMB", float64(n)/1e6)
}
