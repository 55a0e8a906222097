package main

import (
	"fmt"
	"time"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dimse"
	"github.com/spf13/cobra"
)

type aeFlags struct{ aec, aet string }

func (a *aeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&a.aec, "aec", "ANY-SCP", "called AE title (the peer)")
	cmd.Flags().StringVar(&a.aet, "aet", "RELAIS", "calling AE title (us)")
}

func echoCmd() *cobra.Command {
	var ae aeFlags
	cmd := &cobra.Command{
		Use:   "echo HOST:PORT",
		Short: "Send a C-ECHO (verification) to a DICOM node",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			start := time.Now()
			a, err := dimse.Dial(cmd.Context(), args[0], dimse.DialOptions{
				CallingAE: ae.aet, CalledAE: ae.aec,
				Contexts: []dimse.ProposedContext{{ID: 1, AbstractSyntax: dicom.VerificationSOPClass, TransferSyntaxes: []string{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian}}},
			})
			if err != nil {
				return fmt.Errorf("associate with %s (%s): %w", args[0], ae.aec, err)
			}
			st, err := a.Echo(cmd.Context())
			if err != nil {
				a.Abort()
				return fmt.Errorf("C-ECHO: %w", err)
			}
			rel := a.Release(cmd.Context())
			fmt.Printf("C-ECHO %s (%s): status %04X in %s\n", args[0], ae.aec, st.Code, time.Since(start).Round(time.Microsecond))
			if st.Code != dimse.StatusSuccess {
				return exitError{2}
			}
			return rel
		},
	}
	ae.register(cmd)
	return cmd
}
