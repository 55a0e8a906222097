package cda

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

func TestLevel1(t *testing.T) {
	cd := "/ClinicalDocument"
	header := map[string]string{
		cd + "/realmCode/@code":                     "FR",
		cd + "/typeId/@extension":                   "POCD_HD000040",
		cd + "/templateId[1]/@root":                 "2.16.840.1.113883.2.8.2.1",
		cd + "/templateId[2]/@root":                 "1.2.250.1.213.1.1.1.1",
		cd + "/templateId[3]/@root":                 TemplateXDSSD,
		cd + "/code/@code":                          "18748-4",
		cd + "/title":                               "CR d'imagerie médicale - CT tête avec contraste IV",
		cd + "/languageCode/@code":                  "fr-FR",
		cd + "/setId/@root":                         "1.2.250.1.999.1.1",
		cd + "/author/assignedAuthor/id/@root":      OIDRPPS,
		cd + "/author/assignedAuthor/id/@extension": "810001234567",
		cd + "/author/assignedAuthor/representedOrganization/id/@extension":                 "1920008059",
		cd + "/custodian/assignedCustodian/representedCustodianOrganization/id/@root":       OIDFINESS,
		cd + "/custodian/assignedCustodian/representedCustodianOrganization/id/@extension":  "1920008059",
		cd + "/legalAuthenticator/signatureCode/@code":                                      "S",
		cd + "/legalAuthenticator/assignedEntity/id/@extension":                             "810001234567",
		cd + "/documentationOf/serviceEvent/id/@root":                                       "1.2.250.1.925.994044.27.123.1876360",
		cd + "/documentationOf/serviceEvent/code/translation/@code":                         "CT",
		cd + "/componentOf/encompassingEncounter/location/healthCareFacility/id/@root":      OIDFINESS,
		cd + "/componentOf/encompassingEncounter/location/healthCareFacility/id/@extension": "1920008059",
		cd + "/component/nonXMLBody/text/@mediaType":                                        "application/pdf",
		cd + "/component/nonXMLBody/text/@representation":                                   "B64",
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range header {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name   string
		report *Report
		want   map[string]string // XPath (CDA names, see n) → value
		absent []string          // XPaths that must select nothing
		text   []string          // in the text of the embedded PDF
	}{
		{
			name:   "qualified INS",
			report: sample(),
			want: with(map[string]string{
				cd + "/id/@root":                                                "1.2.250.1.999.1.1.2",
				cd + "/versionNumber/@value":                                    "1",
				cd + "/recordTarget/patientRole/id[1]/@root":                    OIDINSNIRTest,
				cd + "/recordTarget/patientRole/id[1]/@extension":               "279035121518989",
				cd + "/recordTarget/patientRole/id[2]/@extension":               "IPP-42",
				cd + "/inFulfillmentOf/order/id/@extension":                     "984375862",
				cd + "/inFulfillmentOf/order/ps3-20:accessionNumber/@extension": "105234751",
			}),
			absent: []string{cd + "/relatedDocument/@typeCode"},
			text:   []string{"279035121518989", "RPPS 10001234567", "Examen normal."},
		},
		{
			name:   "local id only",
			report: localOnly(),
			want: with(map[string]string{
				cd + "/recordTarget/patientRole/id[1]/@root":      "1.2.250.1.999.2",
				cd + "/recordTarget/patientRole/id[1]/@extension": "IPP-77",
			}),
			absent: []string{cd + "/recordTarget/patientRole/id[2]/@root", cd + "/inFulfillmentOf/order/id/@extension"},
			text:   []string{NoticeNotQualified, "IPP-77"},
		},
		{
			name:   "correction",
			report: correction(),
			want: with(map[string]string{
				cd + "/id/@root":                                            "1.2.250.1.999.1.1.3",
				cd + "/versionNumber/@value":                                "2",
				cd + "/relatedDocument/@typeCode":                           "RPLC",
				cd + "/relatedDocument/parentDocument/id/@root":             "1.2.250.1.999.1.1.2",
				cd + "/relatedDocument/parentDocument/setId/@root":          "1.2.250.1.999.1.1",
				cd + "/relatedDocument/parentDocument/versionNumber/@value": "1",
			}),
			text: []string{"remplace la version 1", "Examen normal (corrigé)."},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pdf, err := PDF(tt.report)
			if err != nil {
				t.Fatal(err)
			}
			doc, err := Level1(tt.report, pdf)
			if err != nil {
				t.Fatal(err)
			}
			f := writeDoc(t, "report.xml", doc)
			out, err := xmllint(t, "--nonet", "--noout", "--schema", schema, f)
			if err != nil || !strings.Contains(out, "validates") {
				t.Fatalf("xmllint --schema: %v\n%s", err, out)
			}
			for expr, want := range tt.want {
				if got := xpath(t, f, n(expr)); got != want {
					t.Errorf("%s = %q, want %q", expr, got, want)
				}
			}
			for _, expr := range append([]string{
				cd + "/templateId[4]/@root",
				cd + "/component/structuredBody/@classCode",
				cd + "/component/structuredBody/component/section/code/@code",
			}, tt.absent...) {
				if got := xpath(t, f, n(expr)); got != "" {
					t.Errorf("%s = %q, want nothing", expr, got)
				}
			}
			// No structured-body template anywhere: not IMG-CR-IMG, not PS3.20.
			for _, root := range []string{TemplateIMGCRIMG, "1.2.840.10008.9.1", "1.2.840.10008.9.20", "1.2.840.10008.9.21"} {
				if got := xpath(t, f, "count(//*[local-name()='templateId' and @root='"+root+"'])"); got != "0" {
					t.Errorf("templateId %s present %s times", root, got)
				}
			}

			// The body decodes to the PDF given, which poppler reads.
			var parsed struct {
				Text struct {
					MediaType      string `xml:"mediaType,attr"`
					Representation string `xml:"representation,attr"`
					Data           string `xml:",chardata"`
				} `xml:"component>nonXMLBody>text"`
			}
			if err := xml.Unmarshal(doc, &parsed); err != nil {
				t.Fatal(err)
			}
			got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(parsed.Text.Data))
			if err != nil {
				t.Fatalf("body is not base64: %v", err)
			}
			if !bytes.HasPrefix(got, []byte("%PDF-")) {
				t.Fatalf("body does not decode to a PDF: %q", got[:min(len(got), 16)])
			}
			if !bytes.Equal(got, pdf) {
				t.Error("body is not the PDF given")
			}
			text := strings.Join(pdfPages(t, got), " ")
			for _, w := range tt.text {
				if !strings.Contains(text, w) {
					t.Errorf("embedded PDF text lacks %q", w)
				}
			}

			// The header is Level3's, but for the model's templateIds.
			l3, err := Level3(tt.report)
			if err != nil {
				t.Fatal(err)
			}
			if h1, h3 := headerOf(doc), headerOf(l3); h1 != h3 {
				t.Errorf("level 1 header differs from level 3:\n%s\n---\n%s", h1, h3)
			}
		})
	}
}

var templateLine = regexp.MustCompile(`(?m)^  <templateId [^\n]*\n`)

// headerOf is the document up to the body, without the top-level templateIds.
func headerOf(doc []byte) string {
	s := string(doc)
	if i := strings.Index(s, "\n  <component>\n"); i >= 0 {
		s = s[:i]
	}
	return templateLine.ReplaceAllString(s, "")
}

func TestLevel1Errors(t *testing.T) {
	pdf, err := PDF(sample())
	if err != nil {
		t.Fatal(err)
	}
	invalid := sample()
	invalid.Author.RPPS = "123"
	tests := []struct {
		name   string
		report *Report
		body   []byte
		field  string // the FieldError expected, or "" for ErrNotPDF
	}{
		{"invalid report", invalid, pdf, "Author.RPPS"},
		{"no body", sample(), nil, ""},
		{"not a PDF", sample(), []byte("<html>compte rendu</html>"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := Level1(tt.report, tt.body)
			if doc != nil || err == nil {
				t.Fatalf("Level1 = %d bytes, %v; want an error", len(doc), err)
			}
			var fe *FieldError
			switch {
			case tt.field == "" && !errors.Is(err, ErrNotPDF):
				t.Errorf("error %v, want ErrNotPDF", err)
			case tt.field != "" && (!errors.As(err, &fe) || fe.Field != tt.field):
				t.Errorf("error %v, want a FieldError for %s", err, tt.field)
			}
		})
	}
}

func ExampleLevel1() {
	r := sample()
	pdf, err := PDF(r) // the human rendering, in French
	if err != nil {
		fmt.Println(err)
		return
	}
	doc, err := Level1(r, pdf) // the same header as Level3, the PDF as body
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(bytes.Contains(doc, []byte(`<templateId root="`+TemplateXDSSD+`"/>`)))
	fmt.Println(bytes.Contains(doc, []byte(`<text mediaType="application/pdf" representation="B64">JVBERi0x`)))

	_, err = Level1(r, []byte("<html/>"))
	fmt.Println(err)
	// Output:
	// true
	// true
	// cda: level 1 body is not a PDF file
}
