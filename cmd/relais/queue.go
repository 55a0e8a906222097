package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/routing/queue"
	"github.com/spf13/cobra"
)

// queueFlags locate the queue: the data directory (opened directly when no
// server holds it) or the running server's admin API.
type queueFlags struct {
	cfgFile, dataDir, server, token string
}

// queueBackend is the queue seen by the CLI: the store itself or the
// running server's admin API.
type queueBackend interface {
	list(ctx context.Context, f queue.Filter) ([]*queue.Task, error)
	get(ctx context.Context, id string) (*queue.Task, error)
	retry(ctx context.Context, id string) (*queue.Task, error)
	cancel(ctx context.Context, id, reason string) (*queue.Task, error)
	reroute(ctx context.Context, id, dest string) (*queue.Task, error)
	close()
}

func queueCmd() *cobra.Command {
	var qf queueFlags
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "List, inspect, retry, cancel and reroute delivery tasks",
		Long: `Operate the delivery queues. The queue of --data is opened directly when no
relais serve holds it; while a server runs, the verbs go through its admin API
(http://<listen.http>/api/queue/..., or --server URL) with the admin token of
--token or RELAIS_TOKEN.`,
	}
	d := config.Default()
	pf := cmd.PersistentFlags()
	pf.StringVar(&qf.cfgFile, "config", "", "YAML configuration file (data directory, HTTP address, destinations)")
	pf.StringVar(&qf.dataDir, "data", d.DataDir, "data directory")
	pf.StringVar(&qf.server, "server", "", "admin API base URL of a running server (default: from listen.http when the data directory is in use)")
	pf.StringVar(&qf.token, "token", "", "admin token for the server's API (default $RELAIS_TOKEN)")

	var f queue.Filter
	var state string
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List tasks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f.State = queue.State(state)
			return withQueue(cmd, qf, func(b queueBackend) error {
				tasks, err := b.list(cmd.Context(), f)
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), tasks)
				}
				printTasks(cmd.OutOrStdout(), tasks)
				return nil
			})
		},
	}
	list.Flags().StringVar(&state, "state", "", "pending, done, dead or cancelled")
	list.Flags().StringVar(&f.Destination, "dest", "", "current destination")
	list.Flags().StringVar(&f.Study, "study", "", "Study Instance UID")
	list.Flags().StringVar(&f.Route, "route", "", "route name")
	list.Flags().IntVar(&f.Limit, "limit", 1000, "at most this many tasks (0: all)")
	list.Flags().BoolVar(&asJSON, "json", false, "JSON output")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one task (JSON)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withQueue(cmd, qf, func(b queueBackend) error {
				t, err := b.get(cmd.Context(), args[0])
				if err != nil {
					return err
				}
				return printJSON(cmd.OutOrStdout(), t)
			})
		},
	}
	retry := &cobra.Command{
		Use:   "retry ID",
		Short: "Make a dead or pending task due now (attempts reset)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withQueue(cmd, qf, func(b queueBackend) error {
				t, err := b.retry(cmd.Context(), args[0])
				return said(cmd, t, err, "retrying")
			})
		},
	}
	var reason string
	cancel := &cobra.Command{
		Use:   "cancel ID",
		Short: "Give up a pending or dead task",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withQueue(cmd, qf, func(b queueBackend) error {
				t, err := b.cancel(cmd.Context(), args[0], reason)
				return said(cmd, t, err, "cancelled")
			})
		},
	}
	cancel.Flags().StringVar(&reason, "reason", "", "why (kept as the task's last error and journaled)")
	var dest string
	reroute := &cobra.Command{
		Use:   "reroute ID --dest NAME",
		Short: "Send a task to another destination instead",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dest == "" {
				return errors.New("--dest is required")
			}
			return withQueue(cmd, qf, func(b queueBackend) error {
				t, err := b.reroute(cmd.Context(), args[0], dest)
				return said(cmd, t, err, "rerouted")
			})
		},
	}
	reroute.Flags().StringVar(&dest, "dest", "", "destination name (from the configuration)")
	cmd.AddCommand(list, show, retry, cancel, reroute)
	return cmd
}

func said(cmd *cobra.Command, t *queue.Task, err error, what string) error {
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s %s: %s on %s\n", what, t.ID, t.State, t.Destination())
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printTasks(w io.Writer, tasks []*queue.Task) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tPRIORITY\tDESTINATION\tATTEMPTS\tNEXT TRY\tLAST ERROR")
	for _, t := range tasks {
		next := "-"
		if t.State == queue.Pending {
			next = t.NextTry.Local().Format(time.DateTime)
		}
		le := t.LastError
		if len(le) > 60 {
			le = le[:60] + "…"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", t.ID, t.State, t.Priority, t.Destination(), t.Attempts, t.TotalAttempts, next, le)
	}
	tw.Flush()
	fmt.Fprintf(w, "%d task(s)\n", len(tasks))
}

// withQueue runs fn on the local store, or on the server's API when the
// store is held by a running server (or --server is given).
func withQueue(cmd *cobra.Command, qf queueFlags, fn func(queueBackend) error) error {
	cfg := config.Default()
	if qf.cfgFile != "" {
		var err error
		if cfg, err = config.Load(qf.cfgFile); err != nil {
			return err
		}
	}
	if cmd.Flags().Changed("data") || qf.cfgFile == "" {
		cfg.DataDir = qf.dataDir
	}
	token := qf.token
	if token == "" {
		token = os.Getenv("RELAIS_TOKEN")
	}
	if qf.server != "" {
		return runRemote(qf.server, token, fn)
	}
	dir := queue.DefaultDir(cfg.DataDir)
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("no delivery queue in %s (is --data right?)", cfg.DataDir)
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	st, err := queue.Open(dir, queue.Options{Logger: quiet})
	if queue.IsLocked(err) {
		return runRemote(serverURL(cfg.Listen.HTTP), token, fn)
	}
	if err != nil {
		return err
	}
	b := &localQueue{d: &queue.Dispatcher{Store: st, Destinations: cfg.Destinations, Logger: quiet}, checked: qf.cfgFile != ""}
	// Operator actions are journaled like the server's.
	if j, err := journal.Open(filepath.Join(cfg.DataDir, "journal"), journal.Options{}); err == nil {
		b.d.Journal = j
	} else {
		fmt.Fprintln(os.Stderr, "relais: warning: the action will not be journaled:", err)
	}
	defer b.close()
	return fn(b)
}

func runRemote(base, token string, fn func(queueBackend) error) error {
	if token == "" {
		fmt.Fprintln(os.Stderr, "relais: warning: no admin token (--token or RELAIS_TOKEN)")
	}
	return fn(&remoteQueue{base: strings.TrimRight(base, "/"), token: token, c: &http.Client{Timeout: 30 * time.Second}})
}

// serverURL turns listen.http (":8080", "0.0.0.0:8080") into a URL this
// machine can reach.
func serverURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://" + listen
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

type localQueue struct {
	d       *queue.Dispatcher
	checked bool // destinations come from a configuration file
}

func (l *localQueue) list(ctx context.Context, f queue.Filter) ([]*queue.Task, error) {
	return l.d.Store.List(ctx, f)
}
func (l *localQueue) get(_ context.Context, id string) (*queue.Task, error) { return l.d.Store.Get(id) }
func (l *localQueue) retry(_ context.Context, id string) (*queue.Task, error) {
	return l.d.RetryTask(id, os.Getenv("USER"))
}
func (l *localQueue) cancel(_ context.Context, id, reason string) (*queue.Task, error) {
	return l.d.CancelTask(id, reason, os.Getenv("USER"))
}
func (l *localQueue) reroute(_ context.Context, id, dest string) (*queue.Task, error) {
	if !l.checked {
		// Without --config the destination cannot be checked: accept it,
		// the server checks it again when it delivers.
		fmt.Fprintln(os.Stderr, "relais: warning: destination not checked (no --config)")
		l.d.Destinations = map[string]config.Destination{dest: {}}
	}
	return l.d.RerouteTask(id, dest, os.Getenv("USER"))
}
func (l *localQueue) close() {
	if l.d.Journal != nil {
		l.d.Journal.Close()
	}
	l.d.Store.Close()
}

type remoteQueue struct {
	base, token string
	c           *http.Client
}

func (r *remoteQueue) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	rq, err := http.NewRequestWithContext(ctx, method, r.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		rq.Header.Set("Content-Type", "application/json")
	}
	rq.Header.Set("Accept", "application/json")
	if r.token != "" {
		rq.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := r.c.Do(rq)
	if err != nil {
		return fmt.Errorf("the data directory is in use (relais serve?) and its admin API is unreachable: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s (HTTP %d)", e.Error, resp.StatusCode)
		}
		return fmt.Errorf("%s %s: HTTP %s: %s", method, rq.URL, resp.Status, strings.TrimSpace(string(b)))
	}
	return json.Unmarshal(b, out)
}

func (r *remoteQueue) list(ctx context.Context, f queue.Filter) ([]*queue.Task, error) {
	q := url.Values{}
	for k, v := range map[string]string{"state": string(f.State), "dest": f.Destination, "study": f.Study, "route": f.Route} {
		if v != "" {
			q.Set(k, v)
		}
	}
	q.Set("limit", fmt.Sprint(f.Limit))
	var out []*queue.Task
	return out, r.do(ctx, http.MethodGet, "/api/queue/tasks?"+q.Encode(), nil, &out)
}

func (r *remoteQueue) task(ctx context.Context, method, id, verb string, body any) (*queue.Task, error) {
	p := "/api/queue/tasks/" + url.PathEscape(id)
	if verb != "" {
		p += "/" + verb
	}
	var t queue.Task
	if err := r.do(ctx, method, p, body, &t); err != nil {
		return nil, err
	}
	return &t, nil
}

func (r *remoteQueue) get(ctx context.Context, id string) (*queue.Task, error) {
	return r.task(ctx, http.MethodGet, id, "", nil)
}
func (r *remoteQueue) retry(ctx context.Context, id string) (*queue.Task, error) {
	return r.task(ctx, http.MethodPost, id, "retry", struct{}{})
}
func (r *remoteQueue) cancel(ctx context.Context, id, reason string) (*queue.Task, error) {
	return r.task(ctx, http.MethodPost, id, "cancel", map[string]string{"reason": reason})
}
func (r *remoteQueue) reroute(ctx context.Context, id, dest string) (*queue.Task, error) {
	return r.task(ctx, http.MethodPost, id, "reroute", map[string]string{"destination": dest})
}
func (r *remoteQueue) close() {}
