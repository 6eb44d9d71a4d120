package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/entra-companion/entra-companion/sim"
)

func (e *env) simCmd() *cobra.Command {
	var (
		listen string
		asJSON bool
		caFile string
	)
	cmd := &cobra.Command{
		Use:   "sim",
		Short: "Run the simulated Microsoft cloud (Entra ID, Graph, a CMS) on loopback",
		Long: `Run the simulated Microsoft cloud that the tests and the demo use: an Entra ID v2.0
authority with two tenants and five users, Microsoft Graph v1.0 and a Strapi-like CMS, over
HTTPS with a CA of its own, until interrupted.

Its CA is written to a file (--ca-file, default a temporary file) so other programs can trust
it, e.g. SSL_CERT_FILE=<ca_file> entra-companion login --authority <authority_host>/organizations.
With --json it prints one JSON object once ready: authority_host, tenants, users, clients,
graph_url, cms_url, pages_url and ca_file.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := sim.New(sim.Options{Addr: listen, PagesOnHTTP: true})
			if err != nil {
				return fmt.Errorf("starting the simulated cloud: %w", err)
			}
			defer s.Close()
			if caFile == "" {
				dir, err := os.MkdirTemp("", "entra-sim-")
				if err != nil {
					return fmt.Errorf("writing the CA certificate: %w", err)
				}
				defer os.RemoveAll(dir)
				caFile = filepath.Join(dir, "ca.pem")
			}
			if err := os.WriteFile(caFile, s.CAPEM(), 0o644); err != nil {
				return fmt.Errorf("writing the CA certificate: %w", err)
			}
			info := s.Info()
			info.CAFile = caFile
			if asJSON {
				if err := writeJSON(e.stdout, info); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(e.stdout, "Simulated Microsoft cloud running (Ctrl-C stops it).\n")
				fmt.Fprintf(e.stdout, "  authority:  %s/<tenant>/  (tenants:", info.AuthorityHost)
				for _, t := range info.Tenants {
					fmt.Fprintf(e.stdout, " %s", t.Domain)
				}
				fmt.Fprintf(e.stdout, ")\n  graph:      %s\n  cms:        %s\n  CA file:    %s\n  users:", info.GraphURL, info.CMSURL, caFile)
				for _, u := range info.Users {
					fmt.Fprintf(e.stdout, " %s", u.UPN)
				}
				fmt.Fprintf(e.stdout, "\n  sign in:    SSL_CERT_FILE=%s entra-companion login --authority %s/organizations --config <a config with client_id = %s>\n", caFile, info.AuthorityHost, sim.PublicClientID)
			}
			<-cmd.Context().Done()
			return nil
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:0", "loopback address of the authority (Graph, CMS and pages get free ports on the same IP)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the URLs as one JSON object")
	cmd.Flags().StringVar(&caFile, "ca-file", "", "where to write the CA certificate (default: a temporary file removed on exit)")
	return cmd
}
