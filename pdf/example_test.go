package pdf_test

import (
	"bytes"
	"fmt"
	"time"

	"github.com/relais-health/relais/pdf"
)

func ExampleDocument() {
	d := pdf.New(pdf.Info{
		Title:   "Compte rendu d’imagerie médicale",
		Author:  "Dr Jacques BIDEAULT",
		Created: time.Date(2026, 1, 8, 11, 17, 0, 0, time.UTC),
		Lang:    "fr-FR",
	})
	d.Footer = "PAT-TROIS Dominique, née le 28/03/1979"
	d.Title("Compte rendu d’imagerie médicale")
	d.Heading("Patient")
	d.Field("Nom de naissance", "PAT-TROIS")
	d.Rule()
	d.Heading("Conclusion")
	d.Paragraph("Examen normal.")
	b := d.Bytes()
	fmt.Println(bytes.HasPrefix(b, []byte("%PDF-1.4")), d.Pages())
	fmt.Println(pdf.Helvetica.Width("Examen normal.", 10))
	// Output:
	// true 1
	// 72.8
}
