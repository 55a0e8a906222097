package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/journal"
	"github.com/spf13/cobra"
)

func journalCmd() *cobra.Command {
	var dataDir, since, until, ae, user, study, sop string
	var kinds []string
	var limit int
	var asJSON, reverse bool
	cmd := &cobra.Command{
		Use:   "journal",
		Short: "Query the event journal (works while relais serve runs on the same data)",
		Long: `Query the append-only event journal: associations accepted and rejected,
instances stored, refused and duplicated, failures.
--since and --until take RFC 3339 times, dates (2026-11-23) or durations
back from now (90m, 24h).`,
		Example: `  relais journal --since 1h --kind association.rejected
  relais journal --study 1.2.3 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f := journal.Filter{Kinds: kinds, AE: ae, User: user, StudyUID: study, SOPInstanceUID: sop, Limit: limit, Reverse: reverse}
			var err error
			if f.Since, err = journal.ParseWhen(since, time.Now()); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			if f.Until, err = journal.ParseWhen(until, time.Now()); err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			dir := filepath.Join(dataDir, "journal")
			if _, err := os.Stat(dir); err != nil {
				return fmt.Errorf("no journal under %s: %w", dataDir, err)
			}
			enc := json.NewEncoder(os.Stdout)
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			if !asJSON {
				fmt.Fprintln(tw, "SEQ\tTIME\tKIND\tAE/USER\tADDR\tSTUDY/SOP\tSTATUS\tREASON")
			}
			n := 0
			err = journal.Query(cmd.Context(), dir, f, func(ev *journal.Event) error {
				n++
				if asJSON {
					return enc.Encode(ev)
				}
				who := ev.AE
				if ev.User != "" {
					who = strings.TrimPrefix(who+" user:"+ev.User, " ")
				}
				obj := ev.SOPInstanceUID
				if obj == "" {
					obj = ev.StudyUID
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ev.Seq, ev.Time.Local().Format("2006-01-02 15:04:05.000"),
					ev.Kind, who, ev.Addr, obj, ev.Status, oneLine(ev.Reason))
				return nil
			})
			if !asJSON {
				tw.Flush()
				fmt.Fprintf(os.Stderr, "%d event(s)\n", n)
			}
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dataDir, "data", config.Default().DataDir, "data directory of the node")
	fl.StringVar(&since, "since", "", "only events at or after this time")
	fl.StringVar(&until, "until", "", "only events before this time")
	fl.StringSliceVar(&kinds, "kind", nil, "event kinds or prefixes (association, instance.stored, ...)")
	fl.StringVar(&ae, "ae", "", "calling AE title")
	fl.StringVar(&user, "user", "", "authenticated user of HTTP requests (DICOMweb)")
	fl.StringVar(&study, "study", "", "Study Instance UID")
	fl.StringVar(&sop, "sop", "", "SOP Instance UID")
	fl.IntVar(&limit, "limit", 0, "at most this many events (0: all)")
	fl.BoolVar(&reverse, "reverse", false, "newest first")
	fl.BoolVar(&asJSON, "json", false, "one JSON object per line")
	return cmd
}

func oneLine(s string) string { return strings.ReplaceAll(s, "\n", " ") }
