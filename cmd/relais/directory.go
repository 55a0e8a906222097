package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/directory"
	"github.com/spf13/cobra"
)

// directoryFlags locate the running server's directory API.
type directoryFlags struct {
	cfgFile, server, token string
}

func directoryCmd() *cobra.Command {
	var df directoryFlags
	cmd := &cobra.Command{
		Use:   "directory",
		Short: "List and change organisations, professionals and sites",
		Long: `Operate the directory of a running relais serve: organisations (by FINESS),
professionals (by RPPS) and requesting sites. Entries come from the
configuration file (source "config") plus those added or overridden through
the API (source "api", kept in DATA/directory/directory.json). Deleting an API
entry reverts to the configuration's entry of the same id, if any; an entry
of the configuration file is changed by editing it.

KIND is organisations, professionals or sites (the singular works too). The
verbs go through the server's API (http://<listen.http>/api/directory, or
--server URL) with the token of --token or RELAIS_TOKEN: reading needs a role
that reads reports, changing an admin token.

An entry is a JSON object with the configuration's key names, e.g.
  {"rpps": "10001234567", "prefix": "Dr", "given": "Jeanne",
   "family": "Martin", "organisation": "telerad", "user": "jmartin"}`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&df.cfgFile, "config", "", "YAML configuration file (its listen.http locates the server)")
	pf.StringVar(&df.server, "server", "", "API base URL of the running server (default: from listen.http)")
	pf.StringVar(&df.token, "token", "", "API token (default $RELAIS_TOKEN)")

	var asJSON bool
	list := &cobra.Command{
		Use:   "list [KIND]",
		Short: "List the entries (of one kind)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := df.client()
			if err != nil {
				return err
			}
			path := directory.PathPrefix
			var kind directory.Kind
			if len(args) == 1 {
				if kind, err = directory.ParseKind(args[0]); err != nil {
					return err
				}
				path += "/" + string(kind)
			}
			body, _, err := c.do(cmd.Context(), http.MethodGet, path, nil)
			if err != nil {
				return err
			}
			if asJSON {
				_, err := cmd.OutOrStdout().Write(body)
				return err
			}
			var e directory.Entries
			switch kind {
			case "":
				err = json.Unmarshal(body, &e)
			case directory.Organisations:
				err = json.Unmarshal(body, &e.Organisations)
			case directory.Professionals:
				err = json.Unmarshal(body, &e.Professionals)
			case directory.Sites:
				err = json.Unmarshal(body, &e.Sites)
			}
			if err != nil {
				return fmt.Errorf("the server's answer: %w", err)
			}
			printDirectory(cmd.OutOrStdout(), e)
			return nil
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "JSON output (the API's)")

	show := &cobra.Command{
		Use:   "show KIND ID",
		Short: "Show one entry (JSON)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, path, err := df.entry(args)
			if err != nil {
				return err
			}
			body, _, err := c.do(cmd.Context(), http.MethodGet, path, nil)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(body)
			return err
		},
	}

	var file string
	put := &cobra.Command{
		Use:   "put KIND ID -f FILE.json",
		Short: "Add or replace an entry (an API entry; overrides the configuration's)",
		Long: `Add or replace an entry from a JSON file ("-" for standard input). The output
of "show" can be edited and put back ("id" must then be ID, "source" is
ignored). The server validates the result as it validates the configuration
file and refuses it, naming the key, if anything is wrong.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return errors.New("-f FILE.json is required (- for standard input)")
			}
			var body []byte
			var err error
			if file == "-" {
				body, err = io.ReadAll(cmd.InOrStdin())
			} else {
				body, err = os.ReadFile(file)
			}
			if err != nil {
				return err
			}
			if !json.Valid(body) {
				return fmt.Errorf("%s is not valid JSON", file)
			}
			c, path, err := df.entry(args)
			if err != nil {
				return err
			}
			_, status, err := c.do(cmd.Context(), http.MethodPut, path, body)
			if err != nil {
				return err
			}
			what := "updated"
			if status == http.StatusCreated {
				what = "created"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s\n", what, strings.TrimPrefix(path, directory.PathPrefix+"/"))
			return nil
		},
	}
	put.Flags().StringVarP(&file, "file", "f", "", "JSON file of the entry (- for standard input)")

	del := &cobra.Command{
		Use:   "delete KIND ID",
		Short: "Delete an API entry (the configuration's entry, if any, is back)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, path, err := df.entry(args)
			if err != nil {
				return err
			}
			_, status, err := c.do(cmd.Context(), http.MethodDelete, path, nil)
			if err != nil {
				return err
			}
			name := strings.TrimPrefix(path, directory.PathPrefix+"/")
			if status == http.StatusOK {
				fmt.Fprintf(cmd.OutOrStdout(), "reverted %s to the configuration's entry\n", name)
			} else {
				fmt.Fprintf(cmd.OutOrStdout(), "deleted %s\n", name)
			}
			return nil
		},
	}
	cmd.AddCommand(list, show, put, del)
	return cmd
}

// client returns the API client of the flags.
func (df directoryFlags) client() (*directoryClient, error) {
	base := df.server
	if base == "" {
		cfg := config.Default()
		if df.cfgFile != "" {
			var err error
			if cfg, err = config.Load(df.cfgFile); err != nil {
				return nil, err
			}
		}
		base = serverURL(cfg.Listen.HTTP)
	}
	token := df.token
	if token == "" {
		token = os.Getenv("RELAIS_TOKEN")
	}
	if token == "" {
		fmt.Fprintln(os.Stderr, "relais: warning: no token (--token or RELAIS_TOKEN)")
	}
	return &directoryClient{base: strings.TrimRight(base, "/"), token: token, c: &http.Client{Timeout: 30 * time.Second}}, nil
}

// entry returns the client and the API path of KIND ID.
func (df directoryFlags) entry(args []string) (*directoryClient, string, error) {
	k, err := directory.ParseKind(args[0])
	if err != nil {
		return nil, "", err
	}
	if args[1] == "" {
		return nil, "", errors.New("empty ID")
	}
	c, err := df.client()
	if err != nil {
		return nil, "", err
	}
	return c, directory.PathPrefix + "/" + string(k) + "/" + url.PathEscape(args[1]), nil
}

type directoryClient struct {
	base, token string
	c           *http.Client
}

// do sends the request and returns the body of a 2xx answer and its
// status; any other answer is an error saying why (and which key).
func (c *directoryClient) do(ctx context.Context, method, path string, body []byte) ([]byte, int, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	rq, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, 0, err
	}
	if body != nil {
		rq.Header.Set("Content-Type", "application/json")
	}
	rq.Header.Set("Accept", "application/json")
	if c.token != "" {
		rq.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.c.Do(rq)
	if err != nil {
		return nil, 0, fmt.Errorf("the server's API is unreachable (is relais serve running? --server, --config): %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode/100 == 2 {
		return b, resp.StatusCode, nil
	}
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg := e.Error
		if e.Description != "" {
			msg += ": " + e.Description
		}
		return nil, resp.StatusCode, fmt.Errorf("%s (HTTP %d)", msg, resp.StatusCode)
	}
	return nil, resp.StatusCode, fmt.Errorf("%s %s: HTTP %s: %s", method, rq.URL, resp.Status, strings.TrimSpace(string(b)))
}

func printDirectory(w io.Writer, e directory.Entries) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KIND\tID\tSOURCE\tDETAILS")
	for _, x := range e.Organisations {
		o := x.Value
		fmt.Fprintf(tw, "organisation\t%s\t%s\tFINESS %s, %s\n", x.ID, x.Source, o.FINESS, o.Name)
	}
	for _, x := range e.Professionals {
		p := x.Value
		name := strings.TrimSpace(strings.Join([]string{p.Prefix, p.Given, p.Family}, " "))
		user := p.User
		if user == "" {
			user = x.ID
		}
		fmt.Fprintf(tw, "professional\t%s\t%s\tRPPS %s, %s, %s, user %s\n", x.ID, x.Source, p.RPPS, name, p.Organisation, user)
	}
	for _, x := range e.Sites {
		s := x.Value
		d := "site of " + s.Organisation
		if len(s.CallingAEs) > 0 {
			d += ", AEs " + strings.Join(s.CallingAEs, " ")
		}
		if len(s.Users) > 0 {
			d += ", users " + strings.Join(s.Users, " ")
		}
		if len(s.ReportDestinations) > 0 {
			d += ", reports to " + strings.Join(s.ReportDestinations, " ")
		}
		fmt.Fprintf(tw, "site\t%s\t%s\t%s\n", x.ID, x.Source, d)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d organisation(s), %d professional(s), %d site(s)\n", len(e.Organisations), len(e.Professionals), len(e.Sites))
}
