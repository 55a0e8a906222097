package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/relais-health/relais/telerequest"
)

// requestFields are the flags of create and edit, by JSON path.
var requestFields = []struct{ flag, path, help string }{
	{"site", "site", "requesting site (directory id; a requester's own site by default)"},
	{"physician", "requester.name", "requesting physician (médecin requérant)"},
	{"rpps", "requester.rpps", "the requesting physician's RPPS number (11 digits)"},
	{"patient-name", "patient.name", "patient's used family name"},
	{"birth-name", "patient.birth_name", "patient's birth name"},
	{"first-names", "patient.first_names", "patient's first names (space separated)"},
	{"sex", "patient.sex", "patient's sex: M, F or U"},
	{"birth-date", "patient.birth_date", "patient's birth date (YYYY-MM-DD)"},
	{"birth-place", "patient.birth_place", "patient's birth place (INSEE code)"},
	{"ipp", "patient.local_id", "the site's patient id (IPP)"},
	{"ins", "patient.ins", "matricule INS (15 characters, key checked)"},
	{"ins-status", "patient.ins_status", "identity status declared: PROV, RECUP, VALI or QUAL"},
	{"ins-evidence", "patient.ins_status_evidence", "evidence of the identity status (INSi call, identity document checked)"},
	{"clinical-information", "clinical_information", "renseignements cliniques"},
	{"question", "question", "the question asked (motif)"},
	{"urgency", "urgency", "STAT, URGENT or ROUTINE"},
	{"accession", "accession_number", "accession number of the study"},
	{"study", "study_instance_uid", "Study Instance UID of the study"},
}

// requestBody builds the JSON object of create or edit: the file's, then
// the flags given.
func requestBody(cmd *cobra.Command, file string, create bool) (map[string]any, error) {
	m := map[string]any{}
	if file != "" {
		var rd io.Reader = cmd.InOrStdin()
		if file != "-" {
			fh, err := os.Open(file)
			if err != nil {
				return nil, err
			}
			defer fh.Close()
			rd = fh
		}
		if err := json.NewDecoder(rd).Decode(&m); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
	}
	for _, f := range requestFields {
		if !cmd.Flags().Changed(f.flag) {
			continue
		}
		v, _ := cmd.Flags().GetString(f.flag)
		obj, key := m, f.path
		if parent, k, ok := strings.Cut(f.path, "."); ok {
			sub, _ := m[parent].(map[string]any)
			if sub == nil {
				sub = map[string]any{}
				m[parent] = sub
			}
			obj, key = sub, k
		}
		obj[key] = v
	}
	if create && cmd.Flags().Changed("consent") {
		c := map[string]any{}
		for _, k := range []string{"consent", "consent-method", "consent-text"} {
			v, _ := cmd.Flags().GetString(k)
			c[map[string]string{"consent": "status", "consent-method": "method", "consent-text": "text"}[k]] = v
		}
		m["consent"] = c
	}
	return m, nil
}

func requestCmd() *cobra.Command {
	var df directoryFlags
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "request",
		Short: "Record telemedicine requests and the patient's consent; link them to studies",
		Long: `Operate the telemedicine requests of a running relais serve through its API
(http://<listen.http>/api/requests, or --server URL) with the token of --token
or RELAIS_TOKEN.

A request says who asks (requesting physician, site), for which patient (with
the identity status of its INS, as the requester declares it), why (clinical
information, question) and how urgently (STAT, URGENT, ROUTINE). It needs the
patient's consent before it is read: without consent given it is "awaiting
consent". It is linked to its study by accession number or Study Instance UID,
whichever arrives first; a study whose patient or site clearly differs is not
linked automatically ("reconciliation needed"): link or unlink it by hand with
a reason. A request is never deleted: it is cancelled with a reason.

Requesters record and change their site's requests (their token user is in the
site's users); admins any site's; radiologists read them and link studies.

  relais request create --physician "Dr Durand" --patient-name DUPONT --first-names Jeanne \
      --birth-date 1980-01-15 --ipp IPP123 --question "AVC ?" --urgency STAT \
      --accession ACC-001 --consent given --consent-method oral
  relais request list --state awaiting-consent
  relais request consent rq-0123 --status given --method written
  relais request link rq-0123 --study 1.2.3 --reason "identité provisoire corrigée"
  relais request cancel rq-0123 --reason "patient transféré"`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&df.cfgFile, "config", "", "configuration file (for listen.http)")
	pf.StringVar(&df.server, "server", "", "server URL (default: from the configuration's listen.http)")
	pf.StringVar(&df.token, "token", "", "API token (default $RELAIS_TOKEN)")
	pf.BoolVar(&asJSON, "json", false, "print the API's JSON")

	call := func(cmd *cobra.Command, method, path string, body any, list bool) error {
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
		if asJSON {
			_, err := cmd.OutOrStdout().Write(b)
			return err
		}
		if list {
			var l struct {
				Requests []*telerequest.Request `json:"requests"`
			}
			if err := json.Unmarshal(b, &l); err != nil {
				return fmt.Errorf("the server's answer: %w", err)
			}
			printRequests(cmd.OutOrStdout(), l.Requests)
			return nil
		}
		var r telerequest.Request
		if err := json.Unmarshal(b, &r); err != nil {
			return fmt.Errorf("the server's answer: %w", err)
		}
		printRequest(cmd.OutOrStdout(), &r)
		return nil
	}
	idPath := func(id string, suffix string) (string, error) {
		if strings.TrimSpace(id) == "" {
			return "", errors.New("empty request id")
		}
		return telerequest.PathPrefix + "/" + url.PathEscape(id) + suffix, nil
	}

	var createFile string
	create := &cobra.Command{
		Use:   "create",
		Short: "Record a request (with the patient's consent if known)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := requestBody(cmd, createFile, true)
			if err != nil {
				return err
			}
			return call(cmd, http.MethodPost, telerequest.PathPrefix, m, false)
		},
	}
	for _, f := range requestFields {
		create.Flags().String(f.flag, "", f.help)
	}
	create.Flags().String("consent", "", "the patient's consent: given or refused (leave out when not obtained yet)")
	create.Flags().String("consent-method", "", "how consent was obtained: oral, written or other")
	create.Flags().String("consent-text", "", "how, when the method is other")
	create.Flags().StringVarP(&createFile, "file", "f", "", "JSON object of the request (the API's fields); - for stdin; flags override")

	var editFile string
	var revision int
	edit := &cobra.Command{
		Use:   "edit ID",
		Short: "Change fields of a request (refused once cancelled)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := requestBody(cmd, editFile, false)
			if err != nil {
				return err
			}
			if _, ok := m["site"]; ok {
				return errors.New("the site of a request does not change: cancel it and record it for the right site")
			}
			if revision > 0 {
				m["revision"] = revision
			}
			p, err := idPath(args[0], "")
			if err != nil {
				return err
			}
			return call(cmd, http.MethodPatch, p, m, false)
		},
	}
	for _, f := range requestFields {
		edit.Flags().String(f.flag, "", f.help)
	}
	edit.Flags().StringVarP(&editFile, "file", "f", "", "JSON object of the fields to change; - for stdin; flags override")
	edit.Flags().IntVar(&revision, "revision", 0, "the revision you changed (refused with 409 if the request changed meanwhile)")

	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show a request with its consent, link and history",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := idPath(args[0], "")
			if err != nil {
				return err
			}
			return call(cmd, http.MethodGet, p, nil, false)
		},
	}

	var lf struct{ study, accession, state, site string }
	list := &cobra.Command{
		Use:   "list",
		Short: "List requests (a requester sees its site's)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"study": lf.study, "accession": lf.accession, "state": lf.state, "site": lf.site} {
				if v != "" {
					q.Set(k, v)
				}
			}
			p := telerequest.PathPrefix
			if len(q) > 0 {
				p += "?" + q.Encode()
			}
			return call(cmd, http.MethodGet, p, nil, true)
		},
	}
	list.Flags().StringVar(&lf.study, "study", "", "Study Instance UID")
	list.Flags().StringVar(&lf.accession, "accession", "", "accession number")
	list.Flags().StringVar(&lf.state, "state", "", "awaiting-consent, open, linked, reported or cancelled")
	list.Flags().StringVar(&lf.site, "site", "", "site id")

	var cf telerequest.ConsentInput
	consent := &cobra.Command{
		Use:   "consent ID --status given|refused --method oral|written|other [--text ...]",
		Short: "Record the patient's consent",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := idPath(args[0], "/consent")
			if err != nil {
				return err
			}
			return call(cmd, http.MethodPost, p, cf, false)
		},
	}
	consent.Flags().StringVar(&cf.Status, "status", "", "given or refused")
	consent.Flags().StringVar(&cf.Method, "method", "", "oral, written or other")
	consent.Flags().StringVar(&cf.Text, "text", "", "how consent was obtained (required with other)")

	var lk telerequest.LinkInput
	link := &cobra.Command{
		Use:   "link ID (--study UID | --accession ACC) --reason TEXT",
		Short: "Link a stored study to the request by hand (reconciliation)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := idPath(args[0], "/link")
			if err != nil {
				return err
			}
			return call(cmd, http.MethodPost, p, lk, false)
		},
	}
	link.Flags().StringVar(&lk.StudyUID, "study", "", "Study Instance UID of a stored study")
	link.Flags().StringVar(&lk.Accession, "accession", "", "accession number of a stored study")
	link.Flags().StringVar(&lk.Reason, "reason", "", "why this study belongs to the request (required)")

	reasoned := func(use, short, suffix string) *cobra.Command {
		var reason string
		c := &cobra.Command{
			Use:   use + " ID --reason TEXT",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				p, err := idPath(args[0], suffix)
				if err != nil {
					return err
				}
				return call(cmd, http.MethodPost, p, map[string]string{"reason": reason}, false)
			},
		}
		c.Flags().StringVar(&reason, "reason", "", "why (required)")
		return c
	}
	cmd.AddCommand(create, edit, show, list, consent, link,
		reasoned("unlink", "Unlink the study, or reject the candidate of a reconciliation", "/unlink"),
		reasoned("cancel", "Cancel a request (final; the request is kept)", "/cancel"))
	return cmd
}

func printRequest(w io.Writer, r *telerequest.Request) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	line := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	line("id", r.ID)
	line("state", string(r.State)+map[bool]string{true: " (ready for reading)"}[r.ReadyForReading])
	line("site", r.Site)
	line("urgency", string(r.Urgency))
	req := r.Requester.Name
	if r.Requester.RPPS != "" {
		req += " (RPPS " + r.Requester.RPPS + ")"
	}
	line("requester", req+", recorded by "+r.Requester.User)
	p := r.Patient
	line("patient", strings.TrimSpace(fmt.Sprintf("%s %s (born %s) %s, sex %s", p.Name, orDash(p.BirthName), orDash(p.BirthDate), p.FirstNames, orDash(p.Sex))))
	line("patient ids", strings.TrimSpace("IPP "+orDash(p.LocalID)+", INS "+orDash(p.INS)+", identity "+p.INSStatus.String()))
	switch c := r.Consent; {
	case c == nil:
		line("consent", "AWAITING CONSENT (not recorded)")
	default:
		s := c.Status + " (" + c.Method
		if c.Text != "" {
			s += ": " + c.Text
		}
		s += ") recorded by " + c.RecordedBy + " at " + c.RecordedAt.Format("2006-01-02 15:04:05Z07:00")
		if c.Status != telerequest.ConsentGiven {
			s = "AWAITING CONSENT: " + s
		}
		line("consent", s)
	}
	line("accession", r.AccessionNumber)
	study := r.StudyUID
	if r.StudyLinked {
		study += " (linked by " + r.LinkedBy + ")"
	} else if study != "" {
		study += " (expected, not here yet)"
	}
	line("study", study)
	if x := r.Reconciliation; x != nil {
		line("RECONCILIATION NEEDED", "study "+x.StudyUID+": "+strings.Join(x.Reasons, "; "))
	}
	if r.Cancelled {
		line("cancelled", r.CancelReason)
	}
	line("question", r.Question)
	line("clinical", r.ClinicalInformation)
	line("revision", strconv.Itoa(r.Revision))
	tw.Flush()
	fmt.Fprintln(w, "history:")
	for _, h := range r.History {
		reason := h.Reason
		if h.Note != "" {
			reason += ": " + h.Note
		}
		fmt.Fprintf(w, "  %s  %-22s %-10s %s\n", h.At.Format("2006-01-02 15:04:05"), h.Kind, h.User, reason)
	}
}

func printRequests(w io.Writer, list []*telerequest.Request) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tURGENCY\tSITE\tACCESSION\tSTUDY\tCREATED\tFLAGS")
	for _, r := range list {
		var flags []string
		if r.AwaitingConsent {
			flags = append(flags, "awaiting-consent")
		}
		if r.ReconciliationNeeded {
			flags = append(flags, "reconciliation-needed")
		}
		if r.ReadyForReading {
			flags = append(flags, "ready")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.State, r.Urgency, r.Site, orDash(r.AccessionNumber), orDash(r.StudyUID),
			r.Created.Format("2006-01-02 15:04"), strings.Join(flags, ","))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d request(s)\n", len(list))
}
