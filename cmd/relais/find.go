package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/query"
	"github.com/relais-health/relais/query/findscu"
)

func findCmd() *cobra.Command {
	var (
		ae      aeFlags
		level   string
		model   string
		keyArgs []string
		asJSON  bool
		limit   int
	)
	cmd := &cobra.Command{
		Use:   "find HOST:PORT -k KEY[=VALUE]...",
		Short: "Query a DICOM node (C-FIND)",
		Long: `Query a DICOM node with C-FIND. Keys are DICOM keywords or tags, with a value
to match on (wildcards *, ?; ranges 20260101-, -20260131, 20260101-20260131;
UID lists separated by \) or without one to have it returned:

  relais find pacs:104 --aec PACS --level STUDY -k PatientName='SMITH*' \
      -k StudyDate=20260101- -k ModalitiesInStudy -k '(0008,0050)'

One column per key (--json: one DICOM JSON object per match). Exits 2 when
the final status is not success.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var m query.Model
			switch strings.ToLower(model) {
			case "study", "":
				m = query.StudyRoot
			case "patient":
				m = query.PatientRoot
			default:
				return fmt.Errorf("--model %q: study or patient", model)
			}
			lv := query.Level(strings.ToUpper(level))
			switch lv {
			case query.Patient, query.Study, query.Series, query.Image:
			default:
				return fmt.Errorf("--level %q: PATIENT, STUDY, SERIES or IMAGE", level)
			}
			var keys []findscu.KeyValue
			pos := map[dicom.Tag]int{}
			for _, s := range keyArgs {
				k, err := findscu.ParseKey(s)
				if err != nil {
					return err
				}
				if i, dup := pos[k.Tag]; dup { // one column per attribute
					if k.Value != "" {
						keys[i].Value = k.Value
					}
					continue
				}
				pos[k.Tag] = len(keys)
				keys = append(keys, k)
			}
			ctx := cmd.Context()
			start := time.Now()
			a, err := dimse.Dial(ctx, args[0], dimse.DialOptions{CallingAE: ae.aet, CalledAE: ae.aec, Contexts: findscu.Contexts()})
			if err != nil {
				return fmt.Errorf("associate with %s (%s): %w", args[0], ae.aec, err)
			}
			out := newFindPrinter(os.Stdout, keys, asJSON)
			n := 0
			st, err := findscu.Find(ctx, a, m, lv, keys, func(ds *dicom.Dataset) bool {
				n++
				out.row(ds)
				return limit <= 0 || n < limit
			})
			if err != nil {
				a.Abort()
				return fmt.Errorf("C-FIND: %w", err)
			}
			out.flush()
			rel := a.Release(ctx)
			fmt.Fprintf(os.Stderr, "C-FIND %s (%s): %d matches, status %04X %s in %s\n", args[0], ae.aec, n, st.Code, st.Comment, time.Since(start).Round(time.Millisecond))
			if st.Code != dimse.StatusSuccess && !(limit > 0 && st.Code == dimse.StatusCancel) {
				return exitError{2}
			}
			return rel
		},
	}
	ae.register(cmd)
	f := cmd.Flags()
	f.StringVar(&level, "level", "STUDY", "query level: PATIENT, STUDY, SERIES or IMAGE")
	f.StringVar(&model, "model", "study", "information model: study (Study Root) or patient (Patient Root)")
	f.StringArrayVarP(&keyArgs, "key", "k", nil, "query key KEY[=VALUE] (keyword or (gggg,eeee)); repeatable")
	f.BoolVar(&asJSON, "json", false, "one DICOM JSON object per line")
	f.IntVar(&limit, "limit", 0, "cancel the query after this many matches (0 = all)")
	return cmd
}

// findPrinter prints answers as a table or as DICOM JSON lines.
type findPrinter struct {
	w    io.Writer
	tw   *tabwriter.Writer
	keys []findscu.KeyValue
	json bool
}

func newFindPrinter(w io.Writer, keys []findscu.KeyValue, asJSON bool) *findPrinter {
	p := &findPrinter{w: w, keys: keys, json: asJSON}
	if !asJSON {
		p.tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		var cols []string
		for _, k := range keys {
			name := dicom.Keyword(k.Tag)
			if name == "" {
				name = k.Tag.String()
			}
			cols = append(cols, name)
		}
		fmt.Fprintln(p.tw, strings.Join(cols, "\t"))
	}
	return p
}

func (p *findPrinter) row(ds *dicom.Dataset) {
	if p.json {
		b, _ := json.Marshal(dicomJSON(ds))
		fmt.Fprintln(p.w, string(b))
		return
	}
	var cols []string
	for _, k := range p.keys {
		v, err := ds.String(k.Tag)
		if err != nil {
			v = "?"
		}
		if e, ok := ds.Get(k.Tag); ok && e.VR == dicom.VRSQ {
			v = fmt.Sprintf("[%d items]", len(e.Items))
		}
		cols = append(cols, strings.NewReplacer("\t", " ", "\n", " ").Replace(v))
	}
	fmt.Fprintln(p.tw, strings.Join(cols, "\t"))
}

func (p *findPrinter) flush() {
	if p.tw != nil {
		p.tw.Flush()
	}
}

// dicomJSON renders a data set in the DICOM JSON model (PS3.18 F.2):
// {"00100010": {"vr": "PN", "Value": [{"Alphabetic": "..."}]}}.
func dicomJSON(ds *dicom.Dataset) map[string]any {
	out := map[string]any{}
	for t, e := range ds.Elements {
		if t.Element() == 0 {
			continue
		}
		obj := map[string]any{"vr": string(e.VR)}
		key := fmt.Sprintf("%08X", uint32(t))
		if e.VR == dicom.VRSQ || e.Items != nil {
			var items []any
			for _, it := range e.Items {
				items = append(items, dicomJSON(it))
			}
			obj["vr"] = "SQ"
			if len(items) > 0 {
				obj["Value"] = items
			}
			out[key] = obj
			continue
		}
		vals, err := ds.Strings(t)
		if err != nil || len(vals) == 0 {
			out[key] = obj
			continue
		}
		var jv []any
		for _, v := range vals {
			switch e.VR {
			case dicom.VRPN:
				pn := map[string]string{}
				for i, g := range strings.SplitN(v, "=", 3) {
					if g != "" {
						pn[[]string{"Alphabetic", "Ideographic", "Phonetic"}[i]] = g
					}
				}
				jv = append(jv, pn)
			case dicom.VRIS, dicom.VRUS, dicom.VRUL, dicom.VRSS, dicom.VRSL:
				if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil {
					jv = append(jv, n)
				} else {
					jv = append(jv, v)
				}
			case dicom.VRDS, dicom.VRFL, dicom.VRFD:
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					jv = append(jv, f)
				} else {
					jv = append(jv, v)
				}
			default:
				jv = append(jv, v)
			}
		}
		obj["Value"] = jv
		out[key] = obj
	}
	return out
}
