package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/relais-health/relais/worklist"
)

func worklistCmd() *cobra.Command {
	var df directoryFlags
	cmd := &cobra.Command{
		Use:   "worklist",
		Short: "List, claim, release and cancel reading worklist items",
		Long: `Operate the reading worklist of a running relais serve through its API
(http://<listen.http>/api/worklist, or --server URL) with the token of
--token or RELAIS_TOKEN: listing needs a role that reads reports; claim,
renew and release a radiologist's token; cancel an administrator's or the
assigned radiologist's; assign an administrator's.

Items are listed in reading order: STAT first, then by due time. Late
items (escalated before their deadline) are marked LATE, overdue ones
OVERDUE.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&df.cfgFile, "config", "", "YAML configuration file (its listen.http locates the server)")
	pf.StringVar(&df.server, "server", "", "API base URL of the running server (default: from listen.http)")
	pf.StringVar(&df.token, "token", "", "API token (default $RELAIS_TOKEN)")

	var state, priority, reader string
	var late, asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the items (default: the open ones, scheduled and in progress)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := df.client()
			if err != nil {
				return err
			}
			q := url.Values{}
			for k, v := range map[string]string{"state": state, "priority": priority, "reader": reader} {
				if v != "" {
					q.Set(k, v)
				}
			}
			if late {
				q.Set("late", "true")
			}
			path := worklist.PathPrefix
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			b, _, err := c.do(cmd.Context(), http.MethodGet, path, nil)
			if err != nil {
				return err
			}
			if asJSON {
				_, err := os.Stdout.Write(b)
				return err
			}
			var lr worklist.ListResponse
			if err := json.Unmarshal(b, &lr); err != nil {
				return fmt.Errorf("unexpected answer: %w", err)
			}
			printWorklist(os.Stdout, lr)
			return nil
		},
	}
	list.Flags().StringVar(&state, "state", "", "states, comma-separated (scheduled, in-progress, reported, returned, cancelled) or all")
	list.Flags().StringVar(&priority, "priority", "", "STAT, URGENT or ROUTINE")
	list.Flags().StringVar(&reader, "reader", "", "me (mine and the pools' unassigned), a user, or none (unassigned)")
	list.Flags().BoolVar(&late, "late", false, "only late or overdue items")
	list.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON")

	action := func(name, short string, body func() (map[string]string, error)) *cobra.Command {
		var asJSON bool
		c := &cobra.Command{
			Use:   name + " ID",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var payload []byte
				if body != nil {
					m, err := body()
					if err != nil {
						return err
					}
					payload, _ = json.Marshal(m)
				}
				c, err := df.client()
				if err != nil {
					return err
				}
				b, _, err := c.do(cmd.Context(), http.MethodPost, worklist.PathPrefix+"/"+url.PathEscape(args[0])+"/"+name, payload)
				if err != nil {
					return err
				}
				if asJSON {
					_, err := os.Stdout.Write(b)
					return err
				}
				var it worklist.Item
				if err := json.Unmarshal(b, &it); err != nil {
					return fmt.Errorf("unexpected answer: %w", err)
				}
				fmt.Printf("%s %s: %s", it.ID, it.StudyUID, it.State)
				if it.ClaimedBy != "" {
					fmt.Printf(" (claimed by %s until %s)", it.ClaimedBy, it.LockExpires.Local().Format("15:04:05"))
				}
				if it.Reader != "" {
					fmt.Printf(", reader %s", it.Reader)
				}
				fmt.Println()
				return nil
			},
		}
		c.Flags().BoolVar(&asJSON, "json", false, "print the API's JSON")
		return c
	}
	var reason, to string
	cancel := action("cancel", "Cancel an item, with a reason (it is kept, never deleted)", func() (map[string]string, error) {
		if strings.TrimSpace(reason) == "" {
			return nil, errors.New("--reason is required")
		}
		return map[string]string{"reason": reason}, nil
	})
	cancel.Flags().StringVar(&reason, "reason", "", "why (journaled)")
	assign := action("assign", "Give an item to a reader (administrators)", func() (map[string]string, error) {
		if strings.TrimSpace(to) == "" {
			return nil, errors.New("--reader is required")
		}
		return map[string]string{"reader": to}, nil
	})
	assign.Flags().StringVar(&to, "reader", "", "the reader's user")
	cmd.AddCommand(list,
		action("claim", "Claim an item (take it for reading, with a lock that expires)", nil),
		action("renew", "Renew your claim's lock", nil),
		action("release", "Release your claim (back to scheduled)", nil),
		cancel, assign)
	return cmd
}

// printWorklist prints the items with the deadline each works against
// (the claim's until claimed, then the report's), in the server's clock.
func printWorklist(w io.Writer, lr worklist.ListResponse) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPRIORITY\tSTATE\tREADER\tSTUDY\tPATIENT\tDESCRIPTION\tDUE\tFLAGS")
	for _, it := range lr.Items {
		due := it.ReportDue
		if it.State == worklist.Scheduled && it.ClaimedAt.IsZero() {
			due = it.ClaimDue
		}
		var flags []string
		if it.Overdue {
			flags = append(flags, "OVERDUE")
		} else if it.Late {
			flags = append(flags, "LATE")
		}
		if it.ClaimedBy != "" {
			flags = append(flags, "claimed by "+it.ClaimedBy)
		}
		reader := it.Reader
		if reader == "" {
			reader = "(pool " + it.Pool + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", it.ID, it.Priority, it.State, reader, it.StudyUID,
			strings.TrimSpace(it.PatientID+" "+it.PatientName), it.Description, due.Local().Format("2006-01-02 15:04:05"), strings.Join(flags, ", "))
	}
	tw.Flush()
	var counts []string
	for _, s := range worklist.States {
		counts = append(counts, fmt.Sprintf("%s %d", s, lr.Counts[s]))
	}
	fmt.Fprintln(w, strings.Join(counts, ", "))
}
