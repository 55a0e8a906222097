package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/retrieve"
	"github.com/spf13/cobra"
)

// retrieveFlags are the flags move and get share.
type retrieveFlags struct {
	ae          aeFlags
	level       string
	keys        []string
	patientRoot bool
}

func (f *retrieveFlags) register(cmd *cobra.Command) {
	f.ae.register(cmd)
	cmd.Flags().StringVar(&f.level, "level", "STUDY", "query/retrieve level: PATIENT, STUDY, SERIES or IMAGE")
	cmd.Flags().StringArrayVarP(&f.keys, "key", "k", nil, "key Keyword=value (StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, PatientID; UIDs may be a backslash list)")
	cmd.Flags().BoolVar(&f.patientRoot, "patient-root", false, "use the Patient Root model (implied by --level PATIENT)")
}

func (f *retrieveFlags) parse() (retrieve.Keys, retrieve.ClientOptions, error) {
	k := retrieve.Keys{Level: strings.ToUpper(f.level)}
	for _, s := range f.keys {
		if err := k.ParseKey(s); err != nil {
			return k, retrieve.ClientOptions{}, err
		}
	}
	if len(f.keys) == 0 {
		return k, retrieve.ClientOptions{}, errors.New("at least one -k key is needed, e.g. -k StudyInstanceUID=1.2.3")
	}
	opts := retrieve.ClientOptions{CallingAE: f.ae.aet, CalledAE: f.ae.aec, PatientRoot: f.patientRoot || k.Level == retrieve.LevelPatient}
	return k, opts, nil
}

// printResult prints the final status and maps it to the exit status: 0
// for success, 2 for anything else.
func printResult(verb string, res retrieve.Result, err error) error {
	if err != nil && res.Status.Code == 0 && res.Status.Comment == "" {
		return err
	}
	fmt.Printf("%s: status %04X (%s): %d completed, %d failed, %d warning\n", verb, res.Status.Code,
		dimse.StatusName(res.Status.Code), res.Completed, res.Failed, res.Warning)
	if res.Status.Comment != "" {
		fmt.Printf("%s: %s\n", verb, res.Status.Comment)
	}
	for _, uid := range res.FailedUIDs {
		fmt.Fprintln(os.Stderr, "failed:", uid)
	}
	if res.Status.Code != dimse.StatusSuccess {
		return exitError{2}
	}
	return nil
}

func moveCmd() *cobra.Command {
	var f retrieveFlags
	var dest string
	cmd := &cobra.Command{
		Use:   "move HOST:PORT --dest AE -k Keyword=value...",
		Short: "C-MOVE studies, series or instances to a destination AE",
		Long: `Ask a DICOM node to send what the keys designate to the AE title --dest
(which the node must know). Prints the pending counts and the final status;
exits non-zero unless the status is 0000.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if dest == "" {
				return errors.New("--dest is required")
			}
			keys, opts, err := f.parse()
			if err != nil {
				return err
			}
			opts.Progress = func(c retrieve.Counts) {
				fmt.Printf("pending: %d remaining, %d completed, %d failed, %d warning\n", c.Remaining, c.Completed, c.Failed, c.Warning)
			}
			res, err := retrieve.Move(cmd.Context(), args[0], opts, dest, keys)
			return printResult("C-MOVE", res, err)
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&dest, "dest", "", "move destination AE title")
	return cmd
}
