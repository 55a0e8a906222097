package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/node"
	"github.com/spf13/cobra"
)

func serveCmd() *cobra.Command {
	var cfgFile, dataDir, ae, dicomAddr, httpAddr string
	var pprof bool
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a Relais node (DICOM C-ECHO/C-STORE SCP, HTTP health and metrics)",
		Long: `Run a Relais node. With no configuration file it runs on embedded defaults:
AE title RELAIS, DICOM on :11112, HTTP on :8080, data under ./relais-data,
and any calling AE may C-ECHO and C-STORE (a warning says so).
Flags override the configuration file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := config.Default()
			if cfgFile != "" {
				var err error
				if cfg, err = config.Load(cfgFile); err != nil {
					return err
				}
			}
			f := cmd.Flags()
			if f.Changed("data") {
				cfg.DataDir = dataDir
			}
			if f.Changed("ae") {
				cfg.AETitle = ae
			}
			if f.Changed("dicom-addr") {
				cfg.Listen.DICOM = dicomAddr
			}
			if f.Changed("http-addr") {
				cfg.Listen.HTTP = httpAddr
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			log := newLogger(cfg.Log)
			n, err := node.Open(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			defer closeWithin(n, 30*time.Second, log)
			n.Pprof = pprof
			if err := n.Listen(); err != nil {
				return err
			}
			return n.Serve(cmd.Context())
		},
	}
	d := config.Default()
	cmd.Flags().StringVar(&cfgFile, "config", "", "YAML configuration file")
	cmd.Flags().StringVar(&dataDir, "data", d.DataDir, "data directory (index, journal, blobs)")
	cmd.Flags().StringVar(&ae, "ae", d.AETitle, "AE title")
	cmd.Flags().StringVar(&dicomAddr, "dicom-addr", d.Listen.DICOM, "DICOM listen address")
	cmd.Flags().StringVar(&httpAddr, "http-addr", d.Listen.HTTP, "HTTP listen address (health, metrics)")
	cmd.Flags().BoolVar(&pprof, "pprof", false, "serve /debug/pprof on the HTTP listener (profiling)")
	cmd.Flags().MarkHidden("pprof")
	return cmd
}

// closeWithin closes the node's storage but never hangs the process: the
// journal is the index's write-ahead log, so exiting without a clean index
// close loses nothing.
func closeWithin(n *node.Node, d time.Duration, log *slog.Logger) {
	done := make(chan error, 1)
	go func() { done <- n.Close() }()
	select {
	case err := <-done:
		if err != nil {
			log.Error("close storage", "err", err)
		}
	case <-time.After(d):
		log.Error("storage did not close in time; exiting (the journal replays at next start)", "waited", d)
	}
}

func newLogger(c config.Log) *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.Level)); err != nil {
		fmt.Fprintln(os.Stderr, "relais: log level:", err)
	}
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if c.Format == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	l := slog.New(h)
	slog.SetDefault(l)
	return l
}
