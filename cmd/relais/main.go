// Command relais is the Relais teleradiology DICOM router: `relais serve`
// runs a node; the other verbs are DICOM and admin clients.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// exitError carries a process exit status without printing usage.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := &cobra.Command{
		Use:           "relais",
		Short:         "Relais: teleradiology DICOM router and image-sharing hub",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(serveCmd(), echoCmd(), sendCmd(), journalCmd())
	root.AddCommand(moveCmd(), getCmd())
	root.AddCommand(findCmd())
	root.AddCommand(tokenCmd())
	root.AddCommand(queueCmd())
	root.AddCommand(routeCmd())
	root.AddCommand(directoryCmd())
	root.AddCommand(kosCmd())
	root.AddCommand(reportCmd())
	root.AddCommand(requestCmd())
	root.AddCommand(worklistCmd())
	root.AddCommand(userCmd())
	err := root.ExecuteContext(ctx)
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		os.Exit(ee.code)
	default:
		fmt.Fprintln(os.Stderr, "relais:", err)
		os.Exit(1)
	}
}
