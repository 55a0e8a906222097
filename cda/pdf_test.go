package cda

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// poppler runs a poppler-utils program (pdftotext, pdfinfo) on the PDF; the
// test fails (never skips) when it is missing: CI installs poppler-utils.
func poppler(t *testing.T, name string, doc []byte, args ...string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (install poppler-utils): %v", name, err)
	}
	f := writeDoc(t, "report.pdf", doc)
	var stderr bytes.Buffer
	cmd := exec.Command(path, append(append([]string{"-enc", "UTF-8"}, args...), f)...)
	if name == "pdftotext" {
		cmd.Args = append(cmd.Args, "-")
	}
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, stderr.Bytes())
	}
	if stderr.Len() > 0 {
		t.Errorf("%s complained:\n%s", name, stderr.Bytes())
	}
	return string(out)
}

// pdfPages returns the text of each page, white space collapsed so that
// checks do not depend on where lines wrap.
func pdfPages(t *testing.T, doc []byte) []string {
	t.Helper()
	var pages []string
	for _, p := range strings.Split(poppler(t, "pdftotext", doc), "\f") {
		if p = strings.Join(strings.Fields(p), " "); p != "" {
			pages = append(pages, p)
		}
	}
	return pages
}

func pdfInfo(t *testing.T, doc []byte) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(poppler(t, "pdfinfo", doc), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// longReport is sample with findings long enough for several pages.
func longReport() *Report {
	r := sample()
	var b strings.Builder
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "Coupe %d : pas d’anomalie décelée au niveau de l’étage sus-tentoriel, ni d’œdème ; les structures médianes sont en place, les citernes de la base sont libres.\n", i)
	}
	r.Findings = b.String()
	return r
}

func TestPDF(t *testing.T) {
	signature := "Signé électroniquement par M Jacques BIDEAULT (RPPS 10001234567) le 08/01/2026 à 11:17"
	sections := []string{"Renseignements cliniques", "Motif / Indication", "Technique", "Comparaison", "Résultats", "Conclusion", "Exposition aux rayonnements"}
	tests := []struct {
		name     string
		report   *Report
		want     []string // in the extracted text
		absent   []string
		order    []string // headings, in this order
		minPages int
		footer   string // on every page, with "page N / M"
	}{
		{
			name:   "qualified INS",
			report: sample(),
			want: []string{
				"Centre de radiologie Ambroise",
				"CR d'imagerie médicale - CT tête avec contraste IV",
				"PAT-TROIS", "DOMINIQUE MARIE-LOUISE", "Féminin", "28/03/1979", "code INSEE 51215",
				"279035121518989 (INS-NIR de test, OID 1.2.250.1.213.1.4.10)", "qualifiée", "IPP-42",
				"Centre de radiologie Ambroise (FINESS 920008059)", "984375862", "105234751",
				"08/01/2026 à 10:25", "Tomodensitométrie (CT)", "CT tête avec contraste IV (LOINC 24727-0)",
				"Céphalées persistantes depuis 3 semaines.",
				"Recherche de lésion expansive.",
				"Acquisition hélicoïdale avant et après injection de 150 ml de XENETIX 350.",
				"Scanner du 12/03/2024 : pas de changement.",
				"Pas de prise de contraste anormale. Système ventriculaire normal.",
				"Conclusion Examen normal.",
				"Patiente non enceinte. PDL total : 1140,26 mGy.cm",
				signature, "Médecin - Radio-diagnostic (SM), Centre de radiologie Ambroise",
				"1.2.250.1.999.1.1.2", "1 (lot 1.2.250.1.999.1.1)",
			},
			absent:   []string{NoticeNotQualified, "remplace", "Rédigé par"},
			order:    sections,
			minPages: 1,
			footer:   "PAT-TROIS DOMINIQUE, née le 28/03/1979 – CR du 08/01/2026 – version 1",
		},
		{
			name:   "local id only",
			report: localOnly(),
			want:   []string{NoticeNotQualified, "IPP-77", "MARTIN", "PAUL", "Masculin", "inconnue", "Technique", "Conclusion Examen normal.", signature},
			// The INS is there but not qualified: it must not be shown.
			absent:   []string{"279035121518989", "INS-NIR", "Renseignements cliniques", "Résultats", "Comparaison", "Exposition", "984375862"},
			order:    []string{"Technique", "Conclusion"},
			minPages: 1,
			footer:   "MARTIN PAUL, né à une date inconnue – CR du 08/01/2026 – version 1",
		},
		{
			name:   "correction",
			report: correction(),
			want: []string{
				"Compte rendu rectificatif : cette version 2 remplace la version 1 du compte rendu",
				"version 1 (identifiant 1.2.250.1.999.1.1.2)", "2 (lot 1.2.250.1.999.1.1)",
				"Examen normal (corrigé).",
			},
			order:    sections,
			minPages: 1,
			footer:   "version 2",
		},
		{
			name: "other author",
			report: func() *Report {
				r := sample()
				r.Author.RPPS, r.Author.Given, r.Author.Family, r.Author.Prefix = "10009876543", "Élise", "NOËL", "MME"
				return r
			}(),
			want: []string{signature, "Rédigé par MME Élise NOËL (RPPS 10009876543)"},
		},
		{
			name:     "several pages",
			report:   longReport(),
			want:     []string{"Coupe 1 : pas d’anomalie décelée", "Coupe 40 : pas d’anomalie décelée au niveau de l’étage sus-tentoriel, ni d’œdème", "Conclusion Examen normal.", signature},
			order:    sections,
			minPages: 2,
			footer:   "PAT-TROIS DOMINIQUE, née le 28/03/1979 – CR du 08/01/2026 – version 1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := PDF(tt.report)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(doc, []byte("%PDF-1.4")) {
				t.Fatalf("not a PDF: %q", doc[:min(len(doc), 20)])
			}
			pages := pdfPages(t, doc)
			info := pdfInfo(t, doc)
			n, err := strconv.Atoi(info["Pages"])
			if err != nil || n != len(pages) {
				t.Fatalf("pdfinfo Pages = %q, pdftotext found %d pages", info["Pages"], len(pages))
			}
			if n < tt.minPages {
				t.Errorf("%d pages, want at least %d", n, tt.minPages)
			}
			for i, p := range pages {
				if want := fmt.Sprintf("page %d / %d", i+1, n); !strings.Contains(p, want) {
					t.Errorf("page %d lacks %q", i+1, want)
				}
				if !strings.Contains(p, tt.footer) {
					t.Errorf("page %d lacks footer %q:\n%s", i+1, tt.footer, p)
				}
			}
			text := strings.Join(pages, " ")
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("text lacks %q", w)
				}
			}
			for _, a := range tt.absent {
				if strings.Contains(text, a) {
					t.Errorf("text has %q", a)
				}
			}
			// Headings come after the study block, in order.
			at := strings.Index(text, "Identifiant de l'examen")
			if at < 0 {
				t.Fatalf("no study block:\n%s", text)
			}
			for _, h := range tt.order {
				i := strings.Index(text[at:], h)
				if i < 0 {
					t.Errorf("heading %q missing or out of order", h)
					continue
				}
				at += i + len(h)
			}
			if t.Failed() {
				t.Logf("extracted text:\n%s", text)
			}

			for k, want := range map[string]string{"Title": tt.report.title(), "Author": "M Jacques BIDEAULT", "Creator": "Relais"} {
				if info[k] != want {
					t.Errorf("pdfinfo %s = %q, want %q", k, info[k], want)
				}
			}
			if !bytes.Contains(doc, []byte("/CreationDate (D:20260108111700+01'00')")) {
				t.Error("CreationDate is not the report's effective time")
			}
			again, err := PDF(tt.report)
			if err != nil || !bytes.Equal(again, doc) {
				t.Error("PDF is not deterministic")
			}
		})
	}
}

func TestPDFValidates(t *testing.T) {
	r := sample()
	r.Patient.BirthPlace = ""
	_, err := PDF(r)
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "Patient.BirthPlace" {
		t.Fatalf("PDF error = %v, want a FieldError for Patient.BirthPlace", err)
	}
}
