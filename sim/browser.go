package sim

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Browser returns a stand-in for a person's browser, for public.WithOpenURL: it opens the
// authorize URL, signs in as upn on the login page (typing the user's password), receives
// the form_post page and posts its hidden fields to the redirect URI (MSAL's loopback
// listener). Any failure, including an error sent back to the redirect URI, is returned.
func (s *Server) Browser(upn string) func(authURL string) error {
	return func(authURL string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := s.browse(ctx, upn, authURL); err != nil {
			return fmt.Errorf("browser signing in as %s: %w", upn, err)
		}
		return nil
	}
}

func (s *Server) browse(ctx context.Context, upn, authURL string) error {
	client := s.Client()
	defer client.CloseIdleConnections()
	password := ""
	if u := s.dir.userByUPN(upn); u != nil {
		password = s.dir.home(u).Password
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return fmt.Errorf("opening the authorize url: %w", err)
	}
	resp, body, err := fetch(client, req)
	if err != nil {
		return fmt.Errorf("opening the authorize url: %w", err)
	}
	for range 4 {
		forms := parseForms(body)
		if f := findForm(forms, "name", "hiddenform"); f != nil {
			return postFormPost(ctx, client, f)
		}
		if m := pageMessage(body, "loginError"); m != "" {
			return fmt.Errorf("login page: %s", m)
		}
		if m := pageMessage(body, "error"); m != "" {
			return fmt.Errorf("authority error page (%d): %s", resp.StatusCode, m)
		}
		f := findForm(forms, "id", "loginForm")
		if f == nil {
			if resp.StatusCode >= 400 {
				return fmt.Errorf("page %s answered %s", resp.Request.URL.Redacted(), resp.Status)
			}
			return fmt.Errorf("unexpected page at %s (%s)", resp.Request.URL.Redacted(), resp.Status)
		}
		target, err := resp.Request.URL.Parse(f.attrs["action"])
		if err != nil {
			return fmt.Errorf("reading the login form: %w", err)
		}
		v := f.values()
		v.Set("login", upn)
		v.Set("passwd", password)
		v.Set("action", "signin")
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), strings.NewReader(v.Encode()))
		if err != nil {
			return fmt.Errorf("submitting the login form: %w", err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if resp, body, err = fetch(client, req); err != nil {
			return fmt.Errorf("submitting the login form: %w", err)
		}
	}
	return errors.New("the sign-in did not reach the redirect uri")
}

func fetch(client *http.Client, req *http.Request) (*http.Response, string, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, "", err
	}
	return resp, string(b), nil
}

// postFormPost does what the form_post page's script does.
func postFormPost(ctx context.Context, client *http.Client, f *htmlForm) error {
	v := f.values()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.attrs["action"], strings.NewReader(v.Encode()))
	if err != nil {
		return fmt.Errorf("posting to the redirect uri: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, _, err := fetch(client, req)
	if err != nil {
		return fmt.Errorf("posting to the redirect uri: %w", err)
	}
	if e := v.Get("error"); e != "" {
		desc, _, _ := strings.Cut(v.Get("error_description"), "\r\n")
		return fmt.Errorf("the authority sent %s to the redirect uri: %s", e, desc)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the redirect uri answered %s", resp.Status)
	}
	return nil
}

// htmlForm is a form of one of the sim's own pages.
type htmlForm struct {
	attrs  map[string]string
	inputs []map[string]string
}

func (f *htmlForm) values() url.Values {
	v := url.Values{}
	for _, in := range f.inputs {
		if in["name"] != "" && (in["type"] == "hidden" || in["type"] == "text" || in["type"] == "") {
			v.Set(in["name"], in["value"])
		}
	}
	return v
}

var (
	tagRE  = regexp.MustCompile(`(?is)<(/?form|input)\b([^>]*)>`)
	attrRE = regexp.MustCompile(`([a-zA-Z_:][-a-zA-Z0-9_:.]*)\s*=\s*"([^"]*)"`)
)

// parseForms reads the forms of the sim's own pages (double-quoted attributes).
func parseForms(body string) []*htmlForm {
	var forms []*htmlForm
	var cur *htmlForm
	for _, m := range tagRE.FindAllStringSubmatch(body, -1) {
		attrs := map[string]string{}
		for _, a := range attrRE.FindAllStringSubmatch(m[2], -1) {
			attrs[strings.ToLower(a[1])] = html.UnescapeString(a[2])
		}
		switch strings.ToLower(m[1]) {
		case "form":
			cur = &htmlForm{attrs: attrs}
			forms = append(forms, cur)
		case "/form":
			cur = nil
		case "input":
			if cur != nil {
				cur.inputs = append(cur.inputs, attrs)
			}
		}
	}
	return forms
}

func findForm(forms []*htmlForm, attr, value string) *htmlForm {
	for _, f := range forms {
		if f.attrs[attr] == value {
			return f
		}
	}
	return nil
}

// pageMessage returns the text of the element with this id.
func pageMessage(body, id string) string {
	re := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*>([^<]*)<`)
	if m := re.FindStringSubmatch(body); m != nil {
		return html.UnescapeString(strings.TrimSpace(m[1]))
	}
	return ""
}
