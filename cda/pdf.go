package cda

import (
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // Europe/Paris even where the system has no zoneinfo

	"github.com/relais-health/relais/pdf"
)

// europeParis is the zone the human rendering shows times in.
var europeParis = mustLoad("Europe/Paris")

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic("cda: " + err.Error()) // cannot happen: time/tzdata is linked in
	}
	return loc
}

// insNames are the French names of the INS OIDs.
var insNames = map[string]string{
	OIDINSNIR:     "INS-NIR",
	OIDINSNIA:     "INS-NIA",
	OIDINSNIRTest: "INS-NIR de test",
	OIDINSNIRDemo: "INS-NIR de démonstration",
}

// NoticeNotQualified is shown in the PDF rendering of a report whose patient
// is not identified with the INS (Patient.UsesINS is false).
const NoticeNotQualified = "Identité non qualifiée : INS non utilisé"

// PDF renders the report for humans, in French, as a PDF file: the title;
// the patient (birth name, used name, birth first names, sex, birth date and
// place, and either the matricule INS with its OID name or the local id with
// NoticeNotQualified); the request (facility, order and accession numbers);
// the study (date, modality, act); the filled sections in the order
// Renseignements cliniques, Motif / Indication, Technique, Comparaison,
// Résultats, Conclusion, Exposition aux rayonnements; the signature block of
// the legal authenticator with its RPPS and the time in Europe/Paris; the
// document id and version, with a notice on a correction naming the version
// it replaces. Every page's footer names the patient and the report date.
//
// The output depends only on r (its CreationDate is r.Effective), so the
// same report always gives the same bytes. PDF validates the report first
// and returns Validate's error.
func PDF(r *Report) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	p := &r.Patient
	signer := personName(&r.LegalAuthenticator)
	d := pdf.New(pdf.Info{
		Title:   r.title(),
		Author:  signer,
		Subject: "Compte rendu d'imagerie médicale de " + shownName(p),
		Created: r.Effective,
		Lang:    "fr-FR",
	})
	d.Footer = shownName(p) + ", " + born(p) + " – CR du " + day(r.Effective) + " – version " + strconv.Itoa(r.Version)

	d.Text(pdf.HelveticaBold, pdf.BodySize, r.Custodian.Name)
	d.Title(r.title())
	if r.Replaces != nil {
		d.Text(pdf.HelveticaBold, pdf.BodySize, replacesNotice(r))
		d.Space(4)
	}
	d.Rule()

	d.Heading("Patient")
	d.Field("Nom de naissance", p.BirthName)
	if p.UsedName != "" {
		d.Field("Nom utilisé", p.UsedName)
	}
	if p.FirstNames != "" {
		d.Field("Prénoms de naissance", p.FirstNames)
	}
	d.Field("Sexe", genderDisplay[p.Sex])
	if p.BirthDate.IsZero() {
		d.Field("Date de naissance", "inconnue")
	} else {
		d.Field("Date de naissance", p.BirthDate.Format("02/01/2006"))
	}
	if p.BirthPlace != "" {
		d.Field("Lieu de naissance", "code INSEE "+p.BirthPlace)
	}
	if p.UsesINS() {
		name := insNames[p.insOID()]
		d.Field("Matricule INS", p.INS+" ("+name+", OID "+p.insOID()+")")
		d.Field("Identité", "qualifiée")
		if p.LocalID != "" {
			d.Field("Identifiant local (IPP)", p.LocalID)
		}
	} else {
		d.Field("Identifiant local (IPP)", p.LocalID)
		d.Space(2)
		d.Text(pdf.HelveticaBold, pdf.BodySize, NoticeNotQualified)
		d.Space(4)
	}

	d.Heading("Demande")
	f := r.Encounter.Facility
	d.Field("Établissement demandeur", f.Name+" (FINESS "+f.FINESS+")")
	if r.Order.present() {
		d.Field("N° de demande", r.Order.PlacerOrderNumber)
		d.Field("N° d'examen (accession)", r.Order.AccessionNumber)
	}

	s := &r.Study
	d.Heading("Examen")
	d.Field("Date", when(s.Start))
	m := modalityCode(s.Modality)
	d.Field("Modalité", m.DisplayName+" ("+m.Code+")")
	pc := procedureCode(s)
	act := pc.DisplayName
	if act == "" {
		act = pc.Code
	}
	sys := pc.SystemName
	if sys == "" {
		sys = pc.System
	}
	d.Field("Acte", act+" ("+sys+" "+pc.Code+")")
	d.Field("Identifiant de l'examen", s.StudyInstanceUID)

	addSection := func(title, text string) {
		if strings.TrimSpace(text) == "" {
			return
		}
		d.Heading(title)
		d.Paragraph(strings.TrimSpace(strings.ReplaceAll(text, "\r\n", "\n")))
	}
	addSection("Renseignements cliniques", r.ClinicalInformation)
	addSection("Motif / Indication", r.RequestReason)
	addSection("Technique", r.Technique)
	addSection("Comparaison", r.Comparison)
	addSection("Résultats", r.Findings)
	addSection("Conclusion", r.Conclusion)
	if x := r.RadiationExposure; x != nil {
		text := strings.TrimSpace(x.Text)
		if x.DLP > 0 {
			if text != "" {
				text += "\n"
			}
			text += "PDL total : " + strings.Replace(strconv.FormatFloat(x.DLP, 'f', -1, 64), ".", ",", 1) + " mGy.cm"
		}
		addSection("Exposition aux rayonnements", text)
	}

	d.Space(8)
	d.Reserve(70) // keep the rule and the signature block together
	d.Rule()
	la := &r.LegalAuthenticator
	d.Text(pdf.HelveticaBold, pdf.BodySize,
		"Signé électroniquement par "+signer+" (RPPS "+la.RPPS+") le "+when(r.Effective))
	d.Paragraph(joinNonEmpty(", ", specialty(la).DisplayName, la.Organisation.Name))
	if a := &r.Author; a.RPPS != la.RPPS {
		d.Paragraph("Rédigé par " + personName(a) + " (RPPS " + a.RPPS + "), " + a.Organisation.Name)
	}

	d.Heading("Document")
	d.Field("Identifiant", r.ID)
	d.Field("Version", strconv.Itoa(r.Version)+" (lot "+r.SetID+")")
	if r.Replaces != nil {
		d.Field("Remplace", replacedVersion(r.Replaces)+" (identifiant "+r.Replaces.ID+")")
	}
	d.Field("Conservé par", r.Custodian.Name+" (FINESS "+r.Custodian.FINESS+")")
	return d.Bytes(), nil
}

// replacesNotice is the notice at the top of a correction.
func replacesNotice(r *Report) string {
	return "Compte rendu rectificatif : cette version " + strconv.Itoa(r.Version) +
		" remplace la " + replacedVersion(r.Replaces) + " du compte rendu, qui ne doit plus être utilisée."
}

func replacedVersion(x *Replaced) string {
	if x.Version > 0 {
		return "version " + strconv.Itoa(x.Version)
	}
	return "version précédente"
}

// personName is "prefix given family" without the missing parts.
func personName(p *Professional) string {
	return joinNonEmpty(" ", p.Prefix, p.Given, p.Family)
}

// shownName is the name shown in the footer: the used name if any, else the
// birth name, then the first birth first name.
func shownName(p *Patient) string {
	family := p.UsedName
	if family == "" {
		family = p.BirthName
	}
	var first string
	if f := strings.Fields(p.FirstNames); len(f) > 0 {
		first = f[0]
	}
	return joinNonEmpty(" ", family, first)
}

func born(p *Patient) string {
	b := "né(e)"
	switch p.Sex {
	case "M":
		b = "né"
	case "F":
		b = "née"
	}
	if p.BirthDate.IsZero() {
		return b + " à une date inconnue"
	}
	return b + " le " + p.BirthDate.Format("02/01/2006")
}

// day is the date of t in Europe/Paris, e.g. 08/01/2026.
func day(t time.Time) string { return t.In(europeParis).Format("02/01/2006") }

// when is the date and time of t in Europe/Paris, e.g. "08/01/2026 à 11:17".
func when(t time.Time) string { return t.In(europeParis).Format("02/01/2006 à 15:04") }

func joinNonEmpty(sep string, parts ...string) string {
	var kept []string
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, sep)
}
