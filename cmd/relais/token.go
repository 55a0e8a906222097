package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/config"
	"github.com/spf13/cobra"
)

func tokenCmd() *cobra.Command {
	var cfgFile, dataDir string
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke API tokens for the HTTP services (works while relais serve runs)",
		Long: `Manage the API tokens of the HTTP services (DICOMweb). A client sends its
token as "Authorization: Bearer TOKEN". Tokens are kept hashed in
DATA/auth/tokens; a running relais serve sees new and revoked tokens within
a second.

Roles: admin (everything), radiologist and requester (search, retrieve and
store images), modality (store images only).`,
		Example: `  TOKEN=$(relais token create --user ct-scanner-1 --role modality)
  relais token create --user dr.martin --role radiologist --expires 90d
  relais token list
  relais token revoke 7xq3mplk2v4r6sta`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&cfgFile, "config", "", "YAML configuration file (its data_dir is used unless --data is given)")
	pf.StringVar(&dataDir, "data", config.Default().DataDir, "data directory of the node")
	dir := func(c *cobra.Command) (string, error) {
		if cfgFile != "" && !c.Flags().Changed("data") {
			cfg, err := config.Load(cfgFile)
			if err != nil {
				return "", err
			}
			return cfg.DataDir, nil
		}
		return dataDir, nil
	}
	// open opens the store; unless mayCreate, of an existing data
	// directory only (a mistyped --data must not look like "no tokens").
	open := func(c *cobra.Command, mayCreate bool) (*auth.Store, error) {
		d, err := dir(c)
		if err != nil {
			return nil, err
		}
		if !mayCreate {
			if _, err := os.Stat(filepath.Join(d, auth.DirName, auth.FileName)); err != nil {
				if _, derr := os.Stat(d); derr != nil {
					return nil, fmt.Errorf("no data directory %s (use --data or --config)", d)
				}
				if errors.Is(err, os.ErrNotExist) {
					return nil, nil // no token yet
				}
				return nil, err
			}
		}
		return auth.Open(d)
	}
	cmd.AddCommand(tokenCreateCmd(open), tokenListCmd(open), tokenRevokeCmd(open))
	return cmd
}

type openStore func(c *cobra.Command, mayCreate bool) (*auth.Store, error)

func tokenCreateCmd(open openStore) *cobra.Command {
	var user, role, expires string
	cmd := &cobra.Command{
		Use:   "create --user NAME --role ROLE [--expires 90d]",
		Short: "Create a token and print it, alone, on stdout (it cannot be shown again)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if strings.TrimSpace(user) == "" {
				return errors.New("--user is required")
			}
			if role == "" {
				return fmt.Errorf("--role is required (%s)", roleNames())
			}
			r, err := auth.ParseRole(role)
			if err != nil {
				return err
			}
			ttl, err := parseTTL(expires)
			if err != nil {
				return fmt.Errorf("--expires: %w", err)
			}
			s, err := open(c, true)
			if err != nil {
				return err
			}
			tok, rec, err := s.Create(user, r, auth.CreateOptions{TTL: ttl})
			if err != nil {
				return err
			}
			if _, err := fmt.Fprintln(os.Stdout, tok); err != nil {
				return err
			}
			exp := "never expires"
			if !rec.Expires.IsZero() {
				exp = "expires " + rec.Expires.Local().Format("2006-01-02 15:04 MST")
			}
			fmt.Fprintf(os.Stderr, "relais: token %s for %s (%s), %s; store it now, it cannot be shown again\n", rec.ID, rec.User, rec.Role, exp)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&user, "user", "", "who the token is for (a person, a site, a device)")
	f.StringVar(&role, "role", "", "role: "+roleNames())
	f.StringVar(&expires, "expires", "", "expire after this duration (90d, 2w, 12h); default never")
	return cmd
}

func tokenListCmd(open openStore) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tokens (ID, user, role, dates, status; never the tokens)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			s, err := open(c, false)
			if err != nil {
				return err
			}
			var recs []auth.Record
			if s != nil {
				if recs, err = s.List(); err != nil {
					return err
				}
			}
			now := time.Now()
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				for _, r := range recs {
					if err := enc.Encode(struct {
						auth.Record
						Status string `json:"status"`
					}{r, r.Status(now)}); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tUSER\tROLE\tCREATED\tEXPIRES\tSTATUS")
			day := func(t time.Time) string {
				if t.IsZero() {
					return "-"
				}
				return t.Local().Format("2006-01-02 15:04")
			}
			for _, r := range recs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.User, r.Role, day(r.Created), day(r.Expires), r.Status(now))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "%d token(s)\n", len(recs))
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line")
	return cmd
}

func tokenRevokeCmd(open openStore) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token (a running relais serve refuses it within a second)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			s, err := open(c, false)
			if err != nil {
				return err
			}
			id := args[0]
			if tid := auth.TokenID(id); tid != "" {
				id = tid
			}
			if s == nil {
				return fmt.Errorf("%w: %s", auth.ErrUnknownToken, id)
			}
			if err := s.Revoke(id); err != nil {
				return err
			}
			if rec, ok, _ := s.Get(id); ok {
				fmt.Fprintf(os.Stderr, "relais: token %s of %s (%s) revoked\n", rec.ID, rec.User, rec.Role)
			}
			return nil
		},
	}
}

func roleNames() string {
	var n []string
	for _, r := range auth.Roles() {
		n = append(n, string(r))
	}
	return strings.Join(n, ", ")
}

// parseTTL parses a token lifetime: a Go duration (12h, 90m) or a whole
// number of days (90d) or weeks (2w). "" and "never" mean no expiry.
func parseTTL(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "never" {
		return 0, nil
	}
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		v, err := strconv.ParseUint(n, 10, 32)
		if err != nil || v > 100*366 {
			return 0, fmt.Errorf("%q: want a number of days such as 90d", s)
		}
		d = time.Duration(v) * 24 * time.Hour
	} else if n, ok := strings.CutSuffix(s, "w"); ok {
		v, err := strconv.ParseUint(n, 10, 32)
		if err != nil || v > 100*53 {
			return 0, fmt.Errorf("%q: want a number of weeks such as 2w", s)
		}
		d = time.Duration(v) * 7 * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a duration (90d, 2w, 12h)", s)
		}
	}
	if d <= 0 {
		return 0, fmt.Errorf("%q: must be positive", s)
	}
	return d, nil
}
