package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/relais-health/relais/report"
)

// reportFields are the content flags of create, edit and correct.
type reportFields struct {
	file                                                                        string
	clinical, reason, technique, comparison, findings, conclusion, exposureText string
	dlp                                                                         float64
	birthPlace                                                                  string
}

func (f *reportFields) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVarP(&f.file, "file", "f", "", "JSON object with the fields (clinical_information, request_reason, technique, comparison, findings, conclusion, radiation_exposure); - for stdin")
	fl.StringVar(&f.clinical, "clinical-information", "", "renseignements cliniques")
	fl.StringVar(&f.reason, "request-reason", "", "motif / indication")
	fl.StringVar(&f.technique, "technique", "", "technique")
	fl.StringVar(&f.comparison, "comparison", "", "comparison with prior studies")
	fl.StringVar(&f.findings, "findings", "", "résultats")
	fl.StringVar(&f.conclusion, "conclusion", "", "conclusion (required to sign)")
	fl.StringVar(&f.exposureText, "exposure", "", "radiation exposure, free text")
	fl.Float64Var(&f.dlp, "dlp", 0, "total dose-length product, mGy.cm")
	fl.StringVar(&f.birthPlace, "patient-birth-place", "", "the patient's birth place (INSEE code), the INS trait images do not carry")
}

// body returns the JSON fields: the file's, then the flags given.
func (f *reportFields) body(cmd *cobra.Command) (map[string]any, error) {
	m := map[string]any{}
	if f.file != "" {
		var rd io.Reader = os.Stdin
		if f.file != "-" {
			fh, err := os.Open(f.file)
			if err != nil {
				return nil, err
			}
			defer fh.Close()
			rd = fh
		}
		if err := json.NewDecoder(rd).Decode(&m); err != nil {
			return nil, fmt.Errorf("%s: %w", f.file, err)
		}
	}
	for flag, key := range map[string]string{"clinical-information": "clinical_information", "request-reason": "request_reason",
		"technique": "technique", "comparison": "comparison", "findings": "findings", "conclusion": "conclusion",
		"patient-birth-place": "patient_birth_place"} {
		if cmd.Flags().Changed(flag) {
			v, _ := cmd.Flags().GetString(flag)
			m[key] = v
		}
	}
	if cmd.Flags().Changed("exposure") || cmd.Flags().Changed("dlp") {
		m["radiation_exposure"] = report.Exposure{Text: f.exposureText, DLP: f.dlp}
	}
	return m, nil
}

func reportCmd() *cobra.Command {
	var df directoryFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Write, sign and correct radiology reports; get their CDA and PDF",
		Long: `Operate the reports of a running relais serve through its API
(http://<listen.http>/api/reports, or --server URL) with the token of --token
or RELAIS_TOKEN.

A report is created as a draft for a stored study, edited, then signed by a
radiologist listed in the directory of professionals (RPPS): signing makes the
CI-SIS CDA R2 document (level 3, and level 1 with a PDF body for sites that take
it), stores it in the study as an Encapsulated CDA instance and queues it to the
study's site. A signed report is never edited: a correction signs a new version
that replaces it (same setId, next versionNumber, relatedDocument RPLC).

  relais report create --study 1.2.3 --findings "..." --conclusion "..."
  relais report edit r-0123 --conclusion "..."
  relais report sign r-0123
  relais report correct r-0123 --conclusion "..."
  relais report get r-0123 --format pdf -o report.pdf`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&df.cfgFile, "config", "", "configuration file (for listen.http)")
	pf.StringVar(&df.server, "server", "", "server URL (default: from the configuration's listen.http)")
	pf.StringVar(&df.token, "token", "", "API token (default $RELAIS_TOKEN)")
	pf.BoolVar(&asJSON, "json", false, "print the report as JSON")

	call := func(cmd *cobra.Command, method, path string, body any) error {
		c, err := df.client()
		if err != nil {
			return err
		}
		var raw []byte
		if body != nil {
			raw, _ = json.Marshal(body)
		}
		b, _, err := c.do(cmd.Context(), method, path, raw)
		if err != nil {
			return err
		}
		return printReportAnswer(cmd.OutOrStdout(), b, asJSON)
	}

	var study string
	var create reportFields
	createCmd := &cobra.Command{
		Use:   "create --study UID",
		Short: "Start a draft report for a study",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := create.body(cmd)
			if err != nil {
				return err
			}
			if study != "" {
				m["study_instance_uid"] = study
			}
			return call(cmd, "POST", "/api/reports", m)
		},
	}
	createCmd.Flags().StringVar(&study, "study", "", "Study Instance UID")
	create.register(createCmd)

	var rev int
	var edit, correct reportFields
	editCmd := &cobra.Command{
		Use:   "edit ID",
		Short: "Change fields of a draft",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := edit.body(cmd)
			if err != nil {
				return err
			}
			if rev > 0 {
				m["revision"] = rev
			}
			return call(cmd, "PATCH", "/api/reports/"+url.PathEscape(args[0]), m)
		},
	}
	edit.register(editCmd)
	editCmd.Flags().IntVar(&rev, "revision", 0, "refuse if the report changed since this revision")
	signCmd := &cobra.Command{
		Use:   "sign ID",
		Short: "Sign a draft (version 1) and publish it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m := map[string]any{}
			if rev > 0 {
				m["revision"] = rev
			}
			return call(cmd, "POST", "/api/reports/"+url.PathEscape(args[0])+"/sign", m)
		},
	}
	signCmd.Flags().IntVar(&rev, "revision", 0, "refuse if the report changed since this revision")
	correctCmd := &cobra.Command{
		Use:   "correct ID",
		Short: "Sign a corrected version replacing the last one",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := correct.body(cmd)
			if err != nil {
				return err
			}
			if rev > 0 {
				m["revision"] = rev
			}
			return call(cmd, "POST", "/api/reports/"+url.PathEscape(args[0])+"/correct", m)
		},
	}
	correct.register(correctCmd)
	correctCmd.Flags().IntVar(&rev, "revision", 0, "refuse if the report changed since this revision")
	showCmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show a report, its versions and documents",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return call(cmd, "GET", "/api/reports/"+url.PathEscape(args[0]), nil)
		},
	}
	listCmd := &cobra.Command{
		Use:   "list [--study UID]",
		Short: "List reports, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := df.client()
			if err != nil {
				return err
			}
			path := "/api/reports"
			if study != "" {
				path += "?study=" + url.QueryEscape(study)
			}
			b, _, err := c.do(cmd.Context(), "GET", path, nil)
			if err != nil {
				return err
			}
			if asJSON {
				_, err := cmd.OutOrStdout().Write(b)
				return err
			}
			var l struct {
				Reports []report.Report `json:"reports"`
			}
			if err := json.Unmarshal(b, &l); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSTATE\tVERSION\tSTUDY\tUPDATED")
			for _, r := range l.Reports {
				v := "-"
				if last := r.Last(); last != nil {
					v = strconv.Itoa(last.Number)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, v, r.StudyUID, r.Updated.Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		},
	}
	listCmd.Flags().StringVar(&study, "study", "", "only this study's reports")

	var format, out string
	var version int
	getCmd := &cobra.Command{
		Use:   "get ID",
		Short: "Get a signed version's document: CDA level 3 (default), level 1 or PDF",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := df.client()
			if err != nil {
				return err
			}
			q := url.Values{"format": {format}}
			if version > 0 {
				q.Set("version", strconv.Itoa(version))
			}
			b, _, err := c.do(cmd.Context(), "GET", "/reports/"+url.PathEscape(args[0])+"?"+q.Encode(), nil)
			if err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(b)
				return err
			}
			return os.WriteFile(out, b, 0o600)
		},
	}
	getCmd.Flags().StringVar(&format, "format", "level3", "level3, level1 or pdf")
	getCmd.Flags().IntVar(&version, "version", 0, "version (default: the last)")
	getCmd.Flags().StringVarP(&out, "output", "o", "", "write to this file (default stdout)")
	cmd.AddCommand(createCmd, editCmd, signCmd, correctCmd, showCmd, listCmd, getCmd)
	return cmd
}

// printReportAnswer prints a report answer: JSON as it came, or a summary.
func printReportAnswer(w io.Writer, b []byte, asJSON bool) error {
	if asJSON {
		_, err := w.Write(b)
		return err
	}
	var r report.Report
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	fmt.Fprintf(w, "report %s (%s) study %s revision %d\n", r.ID, r.State, r.StudyUID, r.Revision)
	for _, v := range r.Versions {
		ins := "the local id only"
		if v.UsesINS {
			ins = "the INS"
		}
		pub := "published"
		if !v.Published {
			pub = "not published yet"
			if v.PublishErr != "" {
				pub += ": " + v.PublishErr
			}
		}
		fmt.Fprintf(w, "  version %d signed by %s (RPPS %s) at %s, patient identified by %s, %s\n", v.Number, v.SignedBy, v.RPPS,
			v.SignedAt.Format("2006-01-02 15:04:05Z07:00"), ins, pub)
		fmt.Fprintf(w, "    document %s (setId %s)\n", v.DocumentID, v.SetID)
		for _, d := range v.Documents {
			fmt.Fprintf(w, "    %s: SOP Instance %s → %s\n", d.Format, d.SOPInstanceUID, orDash(strings.Join(d.Destinations, ", ")))
		}
		for _, n := range v.Notices {
			fmt.Fprintf(w, "    notice: %s\n", n)
		}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
