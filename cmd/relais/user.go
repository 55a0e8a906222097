package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/config"
	"github.com/spf13/cobra"
)

// userCmd manages the web app's accounts (DATA/auth/users). Passwords are
// read from a file or an environment variable, never from the command
// line (which other users see in ps and which shells keep in history).
func userCmd() *cobra.Command {
	var cfgFile, dataDir string
	cmd := &cobra.Command{
		Use:   "user",
		Short: "Add, list, change and disable web app users (works while relais serve runs)",
		Long: `Manage the accounts that log in to the web app (/app). Passwords are stored
as bcrypt hashes in DATA/auth/users (mode 0600); a running relais serve
sees changes within a second. A disabled user, or one whose password
changed, is logged out at its next request.

The password is read from --password-file (first line) or from the
environment variable named by --password-env, never from the command line.

Roles: admin, radiologist (reads, writes and signs reports), requester.`,
		Example: `  printf '%s\n' "$PW" > /run/pw && relais user add cmartin --role radiologist --password-file /run/pw
  RELAIS_PASSWORD=... relais user passwd cmartin --password-env RELAIS_PASSWORD
  relais user list
  relais user disable cmartin`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&cfgFile, "config", "", "YAML configuration file (its data_dir is used unless --data is given)")
	pf.StringVar(&dataDir, "data", config.Default().DataDir, "data directory of the node")
	open := func(c *cobra.Command, mayCreate bool) (*auth.Users, error) {
		d := dataDir
		if cfgFile != "" && !c.Flags().Changed("data") {
			cfg, err := config.Load(cfgFile)
			if err != nil {
				return nil, err
			}
			d = cfg.DataDir
		}
		if !mayCreate {
			if _, err := os.Stat(d); err != nil {
				return nil, fmt.Errorf("no data directory %s (use --data or --config)", d)
			}
		}
		return auth.OpenUsers(d)
	}
	var pwFile, pwEnv string
	password := func() (string, error) {
		switch {
		case pwFile != "" && pwEnv != "":
			return "", errors.New("give --password-file or --password-env, not both")
		case pwFile != "":
			b, err := os.ReadFile(pwFile)
			if err != nil {
				return "", err
			}
			pw, _, _ := strings.Cut(string(b), "\n")
			return strings.TrimRight(pw, "\r"), nil
		case pwEnv != "":
			pw, ok := os.LookupEnv(pwEnv)
			if !ok || pw == "" {
				return "", fmt.Errorf("$%s is not set", pwEnv)
			}
			return pw, nil
		}
		return "", errors.New("the password comes from --password-file F or --password-env VAR (never the command line)")
	}
	pwFlags := func(c *cobra.Command) {
		c.Flags().StringVar(&pwFile, "password-file", "", "read the password from the first line of this file")
		c.Flags().StringVar(&pwEnv, "password-env", "", "read the password from this environment variable")
	}

	var role string
	add := &cobra.Command{
		Use:   "add NAME --role ROLE (--password-file F | --password-env VAR)",
		Short: "Create a user",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if role == "" {
				return errors.New("--role is required (admin, radiologist, requester)")
			}
			r, err := auth.ParseRole(role)
			if err != nil {
				return err
			}
			pw, err := password()
			if err != nil {
				return err
			}
			u, err := open(c, true)
			if err != nil {
				return err
			}
			usr, err := u.Add(args[0], r, pw)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "relais: user %s (%s) created\n", usr.Name, usr.Role)
			return nil
		},
	}
	add.Flags().StringVar(&role, "role", "", "role: admin, radiologist, requester")
	pwFlags(add)

	passwd := &cobra.Command{
		Use:   "passwd NAME (--password-file F | --password-env VAR)",
		Short: "Change a user's password (ends the user's sessions)",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			pw, err := password()
			if err != nil {
				return err
			}
			u, err := open(c, false)
			if err != nil {
				return err
			}
			if err := u.SetPassword(args[0], pw); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "relais: password of %s changed\n", args[0])
			return nil
		},
	}
	pwFlags(passwd)

	var enable bool
	disable := &cobra.Command{
		Use:   "disable NAME [--enable]",
		Short: "Disable a user (ends its sessions); --enable enables it again",
		Args:  cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			u, err := open(c, false)
			if err != nil {
				return err
			}
			if err := u.SetDisabled(args[0], !enable); err != nil {
				return err
			}
			state := "disabled"
			if enable {
				state = "enabled"
			}
			fmt.Fprintf(os.Stderr, "relais: user %s %s\n", args[0], state)
			return nil
		},
	}
	disable.Flags().BoolVar(&enable, "enable", false, "enable the user again")

	var asJSON bool
	list := &cobra.Command{
		Use:   "list [--json]",
		Short: "List users (name, role, dates, state; never passwords)",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			u, err := open(c, false)
			if err != nil {
				return err
			}
			users, err := u.List()
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(os.Stdout)
				for _, x := range users {
					if err := enc.Encode(x); err != nil {
						return err
					}
				}
				return nil
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tROLE\tCREATED\tPASSWORD CHANGED\tSTATE")
			day := func(t time.Time) string { return t.Local().Format("2006-01-02 15:04") }
			for _, x := range users {
				state := "active"
				if !x.Disabled.IsZero() {
					state = "disabled " + day(x.Disabled)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", x.Name, x.Role, day(x.Created), day(x.PasswordChanged), state)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "%d user(s)\n", len(users))
			return nil
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line")
	cmd.AddCommand(add, passwd, disable, list)
	return cmd
}
