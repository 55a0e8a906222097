package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/routing"
	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/storage/badgerindex"
	"github.com/spf13/cobra"
)

// adminClient reaches a running node's admin API.
type adminClient struct {
	server, token, tokenFile string
}

func (a *adminClient) flags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&a.server, "server", "", "base URL of the running node (default: http://127.0.0.1:PORT of the configuration's listen.http, else http://127.0.0.1:8080)")
	f.StringVar(&a.token, "token", "", "admin API token (default: $RELAIS_TOKEN)")
	f.StringVar(&a.tokenFile, "token-file", "", "file holding the admin API token")
}

func (a *adminClient) base(cfg *config.Config) string {
	if a.server != "" {
		return strings.TrimRight(a.server, "/")
	}
	addr := config.Default().Listen.HTTP
	if cfg != nil && cfg.Listen.HTTP != "" {
		addr = cfg.Listen.HTTP
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://127.0.0.1:8080"
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

func (a *adminClient) do(ctx context.Context, cfg *config.Config, method, path, ctype string, body []byte) ([]byte, int, error) {
	tok := a.token
	if tok == "" && a.tokenFile != "" {
		b, err := os.ReadFile(a.tokenFile)
		if err != nil {
			return nil, 0, err
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok == "" {
		tok = os.Getenv("RELAIS_TOKEN")
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base(cfg)+path, bytes.NewReader(body))
	if err != nil {
		return nil, 0, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := (&http.Client{Timeout: 2 * time.Minute}).Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	return b, resp.StatusCode, err
}

func apiError(b []byte, code int) error {
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	switch code {
	case http.StatusUnauthorized, http.StatusForbidden:
		return fmt.Errorf("HTTP %d: %s (the routing admin API needs an admin token: --token, --token-file or $RELAIS_TOKEN)", code, msg)
	case http.StatusUnprocessableEntity:
		return errors.New(msg)
	}
	return fmt.Errorf("HTTP %d: %s", code, msg)
}

func routeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "route",
		Short: "List, test (dry run) and reload the routing rules",
		Long: `Routing rules are the routes: of the configuration, evaluated in order for
every stored instance; the first that matches decides unless it says
continue: true.

  relais route list --config relais.yaml        the rules, as compiled from a file
  relais route list                             the rules in force on the running node
  relais route test --config relais.yaml FILE...            which rules match and why
  relais route test --config relais.yaml --data DIR STUDY   the same for a stored study
  relais route reload --config relais.yaml      put the file's routes in force on the running node`,
	}
	cmd.AddCommand(routeListCmd(), routeTestCmd(), routeReloadCmd())
	return cmd
}

func loadRules(cfgFile string) (*config.Config, *routing.Rules, error) {
	cfg, err := config.Load(cfgFile)
	if err != nil {
		return nil, nil, err
	}
	rs, err := routing.Compile(cfg, routing.Options{})
	if err != nil {
		return cfg, nil, err
	}
	return cfg, rs, nil
}

func routeListCmd() *cobra.Command {
	var cfgFile string
	var asJSON bool
	var ac adminClient
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the rules in order, with mode, priority and destinations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var infos []routing.RouteInfo
			var warnings []string
			if cfgFile != "" && ac.server == "" {
				_, rs, err := loadRules(cfgFile)
				if err != nil {
					return err
				}
				infos, warnings = rs.Describe(), rs.Warnings
			} else {
				b, code, err := ac.do(cmd.Context(), nil, http.MethodGet, "/api/routes", "", nil)
				if err != nil {
					return err
				}
				if code != http.StatusOK {
					return apiError(b, code)
				}
				var resp struct {
					Routes   []routing.RouteInfo `json:"routes"`
					Warnings []string            `json:"warnings"`
				}
				if err := json.Unmarshal(b, &resp); err != nil {
					return err
				}
				infos, warnings = resp.Routes, resp.Warnings
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(infos)
			}
			printRoutes(cmd.OutOrStdout(), infos)
			for _, w := range warnings {
				fmt.Fprintln(cmd.ErrOrStderr(), "warning:", w)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgFile, "config", "", "YAML configuration file (default: ask the running node)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "JSON output")
	ac.flags(cmd)
	return cmd
}

func printRoutes(w io.Writer, infos []routing.RouteInfo) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tROUTE\tMODE\tPRIORITY\tFORWARD\tFAILOVER\tACTIONS\tWHEN")
	for i, r := range infos {
		mode := r.Mode
		if r.StableAfter != "" {
			mode += " " + r.StableAfter
		}
		var acts []string
		if r.Continue {
			acts = append(acts, "continue")
		}
		if r.Coerce {
			acts = append(acts, "coerce")
		}
		if r.Webhook {
			acts = append(acts, "webhook")
		}
		if r.Ready {
			acts = append(acts, "ready")
		}
		if r.Priors != "" {
			acts = append(acts, "priors:"+r.Priors)
		}
		if r.Late != "" && r.Late != config.LateSend {
			acts = append(acts, "late:"+r.Late)
		}
		when := r.When
		if when == "" {
			when = "(always)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", i+1, r.Name, mode, r.Priority, dash(strings.Join(r.Forward, ",")),
			dash(strings.Join(r.Failover, ",")), dash(strings.Join(acts, ",")), when)
	}
	tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func routeTestCmd() *cobra.Command {
	var cfgFile, dataDir, at, callingAE, calledAE, sourceAddr string
	var asJSON, all bool
	var ac adminClient
	cmd := &cobra.Command{
		Use:   "test (--config FILE | --server URL) (DICOM_FILE... | --data DIR STUDY_UID)",
		Short: "Dry run: which rules match an instance, and why",
		Long: `Evaluates the rules of --config for DICOM files (their index record built as
ingest builds it; arrival channel "import" unless --calling-ae is given, time
--at or now) or for the instances of a study stored under --data (each with
its recorded arrival context and time unless --at; relais serve must not be
running on that data directory). With --server instead of --config, the
files are tested against the rules in force on the running node
(POST /api/routes/test, admin token). Nothing is sent.`,
		Example: `  relais route test --config relais.yaml ct0001.dcm
  relais route test --config relais.yaml --at "2026-12-25 03:00" --calling-ae CT_URG ct0001.dcm
  relais route test --config relais.yaml --data ./relais-data 1.2.840.113619.2.55.3.1234`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cfgFile == "" || ac.server != "" {
				if ac.server == "" {
					return errors.New("give --config FILE (its rules), or --server URL (the running node's rules)")
				}
				return remoteRouteTest(cmd, &ac, args, at, callingAE, calledAE, sourceAddr, asJSON)
			}
			_, rs, err := loadRules(cfgFile)
			if err != nil {
				return err
			}
			var when time.Time
			if at != "" {
				if when, err = routing.ParseTime(at, rs.Location()); err != nil {
					return err
				}
			}
			out := cmd.OutOrStdout()
			var reports []routing.TestReport
			byOutcome := map[string]int{}
			var outcomes []string
			quiet := 0
			report := func(label string, inst *storage.Instance) {
				t := when
				if t.IsZero() {
					t = inst.ReceivedAt
				}
				ds := rs.Test(inst, t)
				reports = append(reports, routing.TestReport{SOPInstanceUID: inst.SOPInstanceUID, StudyInstanceUID: inst.StudyInstanceUID, At: t, Decisions: ds})
				var applied []string
				for _, d := range ds {
					if d.Applies {
						applied = append(applied, d.Route)
					}
				}
				key := strings.Join(applied, ", ")
				if key == "" {
					key = "(no route)"
				}
				if byOutcome[key] == 0 {
					outcomes = append(outcomes, key)
				}
				byOutcome[key]++
				if asJSON {
					return
				}
				// A study: every instance with a new outcome in full, the others counted.
				if all || byOutcome[key] == 1 || !cmd.Flags().Changed("data") {
					printDecisions(out, label, inst, t.In(rs.Location()), ds)
				} else {
					quiet++
				}
			}
			if cmd.Flags().Changed("data") {
				if len(args) != 1 {
					return errors.New("with --data, give one Study Instance UID")
				}
				ix, err := badgerindex.Open(filepath.Join(dataDir, "index"), badgerindex.Options{})
				if err != nil {
					return fmt.Errorf("open the index of %s (is relais serve running on it? use POST /api/routes/test then): %w", dataDir, err)
				}
				defer ix.Close()
				n := 0
				err = ix.StudyInstances(cmd.Context(), args[0], func(inst *storage.Instance) error {
					n++
					if callingAE != "" {
						inst.Source.CallingAE = callingAE
					}
					report(fmt.Sprintf("instance %d", n), inst)
					return nil
				})
				if err != nil {
					return err
				}
				if n == 0 {
					return fmt.Errorf("study %s is not in the index of %s", args[0], dataDir)
				}
				if !asJSON {
					fmt.Fprintf(out, "study %s: %d instance(s)", args[0], n)
					if quiet > 0 {
						fmt.Fprintf(out, " (%d with an outcome already shown not printed: --all prints them)", quiet)
					}
					fmt.Fprintln(out)
					for _, k := range outcomes {
						fmt.Fprintf(out, "  %d → %s\n", byOutcome[k], k)
					}
				}
			} else {
				x, err := routing.NewExtractor()
				if err != nil {
					return err
				}
				defer x.Close()
				if when.IsZero() {
					when = time.Now()
				}
				src := storage.Source{Channel: "import", CallingAE: callingAE, CalledAE: calledAE, RemoteAddr: sourceAddr}
				if callingAE != "" {
					src.Channel = "dimse"
				}
				for _, f := range args {
					inst, err := x.InstanceFromFile(cmd.Context(), f, src, when)
					if err != nil {
						return err
					}
					report(f, inst)
				}
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(reports)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgFile, "config", "", "YAML configuration file whose routes are tested")
	f.StringVar(&dataDir, "data", config.Default().DataDir, "data directory to read a stored study from")
	f.StringVar(&at, "at", "", `arrival time to evaluate at ("2026-12-25 03:00" in the rules' time zone, or RFC 3339)`)
	f.StringVar(&callingAE, "calling-ae", "", "calling AE title of the arrival (sets the channel to dimse)")
	f.StringVar(&calledAE, "called-ae", "", "called AE title of the arrival")
	f.StringVar(&sourceAddr, "source-addr", "", "source address of the arrival (host:port)")
	f.BoolVar(&asJSON, "json", false, "JSON output")
	f.BoolVar(&all, "all", false, "with --data, print every instance (default: one per outcome, then counts)")
	ac.flags(cmd)
	return cmd
}

// remoteRouteTest posts files to the running node's dry run.
func remoteRouteTest(cmd *cobra.Command, ac *adminClient, files []string, at, callingAE, calledAE, sourceAddr string, asJSON bool) error {
	q := url.Values{}
	for k, v := range map[string]string{"at": at, "calling_ae": callingAE, "called_ae": calledAE, "source_addr": sourceAddr} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var reports []routing.TestReport
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		b, code, err := ac.do(cmd.Context(), nil, http.MethodPost, "/api/routes/test?"+q.Encode(), "application/dicom", body)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("%s: %w", f, apiError(b, code))
		}
		var rep routing.TestReport
		if err := json.Unmarshal(b, &rep); err != nil {
			return err
		}
		reports = append(reports, rep)
		if !asJSON {
			src := storage.Source{Channel: "import", CallingAE: callingAE}
			if callingAE != "" {
				src.Channel = "dimse"
			}
			printDecisions(cmd.OutOrStdout(), f, &storage.Instance{SOPInstanceUID: rep.SOPInstanceUID, StudyInstanceUID: rep.StudyInstanceUID, Source: src}, rep.At, rep.Decisions)
		}
	}
	if asJSON {
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		return enc.Encode(reports)
	}
	return nil
}

func printDecisions(w io.Writer, label string, inst *storage.Instance, at time.Time, ds []routing.Decision) {
	fmt.Fprintf(w, "%s\n  SOP %s, study %s, %s from %q, at %s\n", label, inst.SOPInstanceUID, inst.StudyInstanceUID,
		inst.Source.Channel, inst.Source.CallingAE, at.Format("Mon 2006-01-02 15:04:05 MST"))
	var applied []string
	for _, d := range ds {
		var verdict string
		switch {
		case d.Applies:
			verdict = "APPLIES"
			applied = append(applied, d.Route)
		case d.Matched:
			verdict = "matches, but an earlier route decided"
		case d.Err != "":
			verdict = "ERROR"
		default:
			verdict = "no match"
		}
		fmt.Fprintf(w, "  %-8s %s", d.Route, verdict)
		if d.Applies {
			mode := d.Mode
			if d.StableAfter > 0 {
				mode += " " + d.StableAfter.String()
			}
			fmt.Fprintf(w, ": %s, %s", mode, d.Priority)
			if len(d.Destinations) > 0 {
				fmt.Fprintf(w, " → %s", strings.Join(d.Destinations, ", "))
			}
			if len(d.Failover) > 0 {
				fmt.Fprintf(w, " (failover %s)", strings.Join(d.Failover, ", "))
			}
			if d.Continue {
				fmt.Fprint(w, "; continue")
			}
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "           why: %s\n", d.Why)
		if d.Err != "" {
			fmt.Fprintf(w, "           error: %s\n", d.Err)
		}
	}
	if len(applied) == 0 {
		fmt.Fprintln(w, "  => no route applies: the instance is stored, not forwarded")
	} else {
		fmt.Fprintf(w, "  => %s\n", strings.Join(applied, ", "))
	}
}

func routeReloadCmd() *cobra.Command {
	var cfgFile string
	var ac adminClient
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Put new routes in force on the running node, without restart",
		Long: `Sends the routes, calendars and holidays of --config to the running node
(POST /api/routes/reload, admin token), which compiles them and puts them in
force, or refuses them with a message naming the rule (the running rules then
stay in force). Without --config, the node recompiles its own configuration
(re-reading the calendars). Destinations change only at restart.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var body []byte
			var cfg *config.Config
			if cfgFile != "" {
				var err error
				if body, err = os.ReadFile(cfgFile); err != nil {
					return err
				}
				// The file must at least parse; the node compiles the rules.
				if cfg, err = config.Parse(body); err != nil {
					return err
				}
			}
			b, code, err := ac.do(cmd.Context(), cfg, http.MethodPost, "/api/routes/reload", "application/yaml", body)
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return apiError(b, code)
			}
			var resp struct {
				Routes []routing.RouteInfo `json:"routes"`
			}
			json.Unmarshal(b, &resp)
			fmt.Fprintf(cmd.OutOrStdout(), "reloaded: %d route(s) in force\n", len(resp.Routes))
			printRoutes(cmd.OutOrStdout(), resp.Routes)
			return nil
		},
	}
	cmd.Flags().StringVar(&cfgFile, "config", "", "YAML configuration file whose routes are put in force")
	ac.flags(cmd)
	return cmd
}
