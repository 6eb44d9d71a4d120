package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/entra-companion/entra-companion/auth"
	"github.com/entra-companion/entra-companion/auth/jwt"
	"github.com/entra-companion/entra-companion/graph"
	"github.com/entra-companion/entra-companion/graph/profile"
)

// exitInvalid: verify found the token invalid (a documented exit code).
const exitInvalid = 9

// newGraph builds the Graph client the settings describe.
func (e *env) newGraph(b *auth.Broker) (*graph.Client, error) {
	cfg, err := e.config()
	if err != nil {
		return nil, err
	}
	return graph.New(graph.Options{
		BaseURL:     cfg.GraphURL,
		Cloud:       graph.Cloud(cfg.Cloud),
		Credentials: b,
		HTTPClient:  e.httpClient,
	})
}

// meJSON is `me --json`: who the account is, in which tenant, and its groups.
type meJSON struct {
	Account      auth.Account          `json:"account"`
	Profile      *profile.Profile      `json:"profile,omitempty"`
	Organization *profile.Organization `json:"tenant,omitempty"`
	HomeTenantID string                `json:"home_tenant_id,omitempty"`
	Guest        bool                  `json:"guest"`
	Groups       []profile.Group       `json:"groups"`
	GroupsError  string                `json:"groups_error,omitempty"`
	Photo        *photoJSON            `json:"photo"`
	ReadAt       time.Time             `json:"read_at"`
}

type photoJSON struct {
	ContentType string `json:"content_type"`
	Bytes       int    `json:"bytes"`
	File        string `json:"file,omitempty"`
}

func (e *env) meCmd() *cobra.Command {
	var (
		account   string
		asJSON    bool
		photoFile string
	)
	cmd := &cobra.Command{
		Use:   "me",
		Short: "Show who an account is: profile, tenant, groups and roles (from Microsoft Graph)",
		Long: `Show who an account is, read from Microsoft Graph: profile fields, phones, the tenant
(and, for a guest, its home tenant), groups and directory roles. --photo saves the profile
photo to a file. Reading groups needs GroupMember.Read.All; without it the groups of the id
token's groups claim are shown and the missing permission is named.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			b, err := e.broker(ctx, false)
			if err != nil {
				return err
			}
			defer b.Close()
			acct, err := b.Account(account)
			if err != nil {
				return err
			}
			if acct.Kind == auth.KindApp {
				return usageError{fmt.Errorf("%s is an app-only identity: it has no /me (use `token` for its tokens)", acct.Username)}
			}
			g, err := e.newGraph(b)
			if err != nil {
				return err
			}
			snap, err := g.Refresh(ctx, acct.ID)
			if err != nil {
				return graphError(err)
			}
			out := meJSON{
				Account: acct, Profile: snap.Profile, Organization: snap.Organization,
				HomeTenantID: firstNonEmpty(snap.HomeTenantID, acct.HomeTenantID),
				Groups:       snap.Groups, ReadAt: snap.ReadAt,
			}
			if out.Groups == nil {
				out.Groups = []profile.Group{}
			}
			if snap.Organization != nil {
				out.Guest = out.HomeTenantID != "" && !strings.EqualFold(out.HomeTenantID, snap.Organization.TenantID)
			}
			if snap.GroupsErr != nil {
				out.GroupsError = snap.GroupsErr.Error()
			}
			if snap.Photo != nil {
				out.Photo = &photoJSON{ContentType: snap.Photo.ContentType, Bytes: len(snap.Photo.Data)}
				if photoFile != "" {
					if err := os.WriteFile(photoFile, snap.Photo.Data, 0o644); err != nil {
						return fmt.Errorf("saving the photo: %w", err)
					}
					out.Photo.File = photoFile
				}
			} else if photoFile != "" {
				fmt.Fprintf(e.stderr, "%s has no profile photo; %s was not written.\n", acct.Username, photoFile)
			}
			if asJSON {
				return writeJSON(e.stdout, out)
			}
			printMe(e.stdout, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&account, "account", "", "account username or id (default: the active one)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&photoFile, "photo", "", "save the profile photo to this file")
	return cmd
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// graphError marks Graph failures that are about reaching it, for the exit code.
func graphError(err error) error {
	if errors.Is(err, graph.ErrUnavailable) || errors.Is(err, graph.ErrThrottled) {
		return fmt.Errorf("%w (%w)", err, errUnavailable)
	}
	return err
}

func printMe(w io.Writer, m meJSON) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if p := m.Profile; p != nil {
		fmt.Fprintf(tw, "Name\t%s\n", p.DisplayName)
		row := func(k, v string) {
			if v != "" {
				fmt.Fprintf(tw, "%s\t%s\n", k, v)
			}
		}
		row("User principal name", p.UserPrincipalName)
		row("Mail", p.Mail)
		row("Job title", p.JobTitle)
		row("Department", p.Department)
		row("Office", p.OfficeLocation)
		row("Mobile phone", p.MobilePhone)
		row("Business phones", strings.Join(p.BusinessPhones, ", "))
		row("Preferred language", p.PreferredLanguage)
		row("User type", p.UserType)
		row("Object id", p.ID)
	}
	if o := m.Organization; o != nil {
		var domains []string
		for _, d := range o.VerifiedDomains {
			domains = append(domains, d.Name)
		}
		fmt.Fprintf(tw, "Tenant\t%s (%s)\n", o.DisplayName, o.TenantID)
		if len(domains) > 0 {
			fmt.Fprintf(tw, "Domains\t%s\n", strings.Join(domains, ", "))
		}
	}
	if m.Guest {
		fmt.Fprintf(tw, "Home tenant\t%s (a guest in this tenant)\n", m.HomeTenantID)
	}
	if m.Photo != nil {
		fmt.Fprintf(tw, "Photo\t%s, %d bytes\n", m.Photo.ContentType, m.Photo.Bytes)
	} else {
		fmt.Fprintf(tw, "Photo\tnone\n")
	}
	_ = tw.Flush()
	groups := slices.Clone(m.Groups)
	slices.SortFunc(groups, func(a, b profile.Group) int {
		return strings.Compare(strings.ToLower(a.DisplayName), strings.ToLower(b.DisplayName))
	})
	fmt.Fprintf(w, "\nGroups and roles (%d)\n", len(groups))
	if m.GroupsError != "" {
		fmt.Fprintf(w, "  note: %s\n", m.GroupsError)
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, g := range groups {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", firstNonEmpty(g.DisplayName, "(name unknown)"), g.Kind, g.ID)
	}
	_ = tw.Flush()
}

func (e *env) verifyCmd() *cobra.Command {
	var (
		audience string
		issuer   string
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "verify TOKEN",
		Short: "Check an access or id token: signature, issuer, audience, expiry; print its claims",
		Long: `Check a JWT the way an API that accepts Entra tokens should: the signature against the
issuer's published keys (fetched from its discovery document, re-fetched on an unknown key
id), the issuer, the audience (with --audience), expiry and not-before. Every failed check is
explained in words; the claims are printed decoded. TOKEN "-" reads the token from stdin.

Exit code 0 when every check passes, 9 when one fails, 6 when the issuer's keys could not be
fetched.`,
		Args: exactArgs(1, "TOKEN (or - for stdin)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			raw := args[0]
			if raw == "-" {
				b, err := io.ReadAll(io.LimitReader(e.stdin, 64<<10))
				if err != nil {
					return fmt.Errorf("reading the token from stdin: %w", err)
				}
				raw = string(b)
			}
			raw = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(raw), "Bearer "))
			if _, err := jwt.Decode(raw); err != nil {
				return usageError{fmt.Errorf("reading the token: %w", err)}
			}
			v := &jwt.Verifier{HTTPClient: e.httpClient}
			res, err := v.Verify(cmd.Context(), raw, jwt.VerifyOptions{Audience: audience, Issuer: issuer})
			if err != nil {
				if res != nil && !asJSON {
					printVerify(e.stdout, res)
				}
				return fmt.Errorf("verifying the token: %w (%w)", err, errUnavailable)
			}
			if asJSON {
				if err := writeJSON(e.stdout, struct {
					Valid   bool        `json:"valid"`
					Checks  []jwt.Check `json:"checks"`
					Issuer  string      `json:"issuer,omitempty"`
					JWKSURI string      `json:"jwks_uri,omitempty"`
					Header  jwt.Header  `json:"header"`
					Claims  jwt.Claims  `json:"claims"`
				}{res.Valid, res.Checks, res.Issuer, res.JWKSURI, res.Token.Header, res.Token.Claims}); err != nil {
					return err
				}
			} else {
				printVerify(e.stdout, res)
			}
			if !res.Valid {
				return silentError{exitInvalid}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&audience, "audience", "", "expected audience (aud)")
	cmd.Flags().StringVar(&issuer, "issuer", "", "expected issuer (default: the token's own, checked against its discovery document)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printVerify(w io.Writer, res *jwt.Result) {
	if res.Valid {
		fmt.Fprintln(w, "Token is valid.")
	} else {
		fmt.Fprintln(w, "Token is NOT valid.")
	}
	for _, c := range res.Checks {
		mark := "ok  "
		if !c.OK {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s %-10s %s\n", mark, c.Name, c.Detail)
	}
	fmt.Fprintln(w, "\nClaims")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	keys := make([]string, 0, len(res.Token.Claims))
	for k := range res.Token.Claims {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := res.Token.Claims[k]
		s := fmt.Sprint(v)
		if t, ok := res.Token.Claims.Time(k); ok && (k == "exp" || k == "nbf" || k == "iat") {
			s = fmt.Sprintf("%v (%s)", v, t.Local().Format(time.RFC1123))
		}
		fmt.Fprintf(tw, "  %s\t%s\n", k, s)
	}
	_ = tw.Flush()
}
