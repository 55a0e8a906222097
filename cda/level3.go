package cda

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Code systems and templates of the IMG-CR-IMG model (CI-SIS, version 2024.01).
const (
	sysLOINC   = "2.16.840.1.113883.6.1"
	sysDCM     = "1.2.840.10008.2.16.4"
	sysDCMUID  = "1.2.840.10008.2.6.1"
	sysGender  = "2.16.840.1.113883.5.1"
	sysConf    = "2.16.840.1.113883.5.25"
	sysActCode = "2.16.840.1.113883.5.4"
	sysFunc    = "2.16.840.1.113883.5.88"

	// TemplateIMGCRIMG is the templateId of the model, with extension ModelVersion.
	TemplateIMGCRIMG = "1.2.250.1.213.1.1.1.45"
	// ModelVersion is the version of the IMG-CR-IMG model generated.
	ModelVersion = "2024.01"
	// FormatCodeLevel3 is the XDS formatCode of a level 3 imaging report.
	FormatCodeLevel3 = "urn:ihe:rad:CDA:ImagingReportStructuredHeadings:2013"
	// DocumentCode is the LOINC code of an imaging report.
	DocumentCode = "18748-4"
)

// Level3 renders the report as a CI-SIS CDA R2 level 3 IMG-CR-IMG document
// (UTF-8 XML). It validates the report first and returns Validate's error.
func Level3(r *Report) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	doc := header(r,
		el("templateId", "root", "1.2.840.10008.9.1"),
		el("templateId", "root", "1.2.840.10008.9.20"),
		el("templateId", "root", "1.2.840.10008.9.21"),
		el("templateId", "root", TemplateIMGCRIMG, "extension", ModelVersion),
	)
	doc.add(el("component").add(body(r)))
	return render(doc), nil
}

// header returns the ClinicalDocument element with the CI-SIS header, from
// realmCode to componentOf, shared by Level3 and Level1: templates are the
// document model's own templateIds, written after those of HL7 France and
// the CI-SIS. The caller adds the body (the component element).
func header(r *Report, templates ...*node) *node {
	doc := el("ClinicalDocument",
		"xmlns", "urn:hl7-org:v3",
		"xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance",
		"xmlns:ps3-20", "urn:dicom-org:ps3-20")
	doc.add(
		el("realmCode", "code", "FR"),
		el("typeId", "root", "2.16.840.1.113883.1.3", "extension", "POCD_HD000040"),
		el("templateId", "root", "2.16.840.1.113883.2.8.2.1"),
		el("templateId", "root", "1.2.250.1.213.1.1.1.1"),
	)
	doc.add(templates...)
	doc.add(
		el("id", "root", r.ID),
		codeEl("code", Code{DocumentCode, sysLOINC, "LOINC", "CR d'imagerie médicale"}),
		textEl("title", r.title()),
		tsEl("effectiveTime", r.Effective),
		el("confidentialityCode", "code", r.confidentiality(), "displayName", confDisplay[r.confidentiality()], "codeSystem", sysConf),
		el("languageCode", "code", "fr-FR"),
		el("setId", "root", r.SetID),
		el("versionNumber", "value", strconv.Itoa(r.Version)),
		recordTarget(&r.Patient),
		el("author").add(
			el("functionCode", "code", "ATTPHYS", "displayName", "Référent - Responsable du patient dans la structure de soins", "codeSystem", sysFunc),
			tsEl("time", r.Effective),
			professional("assignedAuthor", &r.Author),
		),
		el("custodian", "typeCode", "CST").add(
			el("assignedCustodian", "classCode", "ASSIGNED").add(
				organisation("representedCustodianOrganization", r.Custodian, "classCode", "ORG", "determinerCode", "INSTANCE"))),
		el("legalAuthenticator").add(
			tsEl("time", r.Effective),
			el("signatureCode", "code", "S"),
			professional("assignedEntity", &r.LegalAuthenticator),
		),
	)
	if r.Order.present() {
		doc.add(el("inFulfillmentOf").add(el("order").add(
			el("id", "root", r.Order.PlacerOrderIssuer, "extension", r.Order.PlacerOrderNumber),
			el("ps3-20:accessionNumber", "root", r.Order.AccessionIssuer, "extension", r.Order.AccessionNumber),
		)))
	}
	doc.add(documentationOf(r))
	if r.Replaces != nil {
		doc.add(el("relatedDocument", "typeCode", "RPLC").add(
			el("parentDocument").add(
				el("id", "root", r.Replaces.ID),
				optEl(r.Replaces.SetID != "", func() *node { return el("setId", "root", r.Replaces.SetID) }),
				optEl(r.Replaces.Version > 0, func() *node { return el("versionNumber", "value", strconv.Itoa(r.Replaces.Version)) }),
			)))
	}
	doc.add(componentOf(&r.Encounter))
	return doc
}

// render writes the document with its XML declaration.
func render(doc *node) []byte {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	doc.write(&b, 0)
	return b.Bytes()
}

var confDisplay = map[string]string{"N": "Normal", "R": "Restreint", "V": "Très restreint"}

func (r *Report) confidentiality() string {
	if r.Confidentiality == "" {
		return "N"
	}
	return r.Confidentiality
}

func (r *Report) title() string {
	if r.Title != "" {
		return r.Title
	}
	t := "CR d'imagerie médicale"
	if d := procedureCode(&r.Study).DisplayName; d != "" {
		t += " - " + d
	}
	return t
}

// ts formats a CDA TS with seconds and the zone offset.
func ts(t time.Time) string { return t.Format("20060102150405-0700") }

func tsEl(name string, t time.Time) *node { return el(name, "value", ts(t)) }

func optEl(ok bool, f func() *node) *node {
	if !ok {
		return nil
	}
	return f()
}

// procedureCode is the study's act code; a code without a system is LOINC.
func procedureCode(s *Study) Code {
	c := s.ProcedureCode
	if c.System == "" {
		c.System, c.SystemName = sysLOINC, "LOINC"
	}
	return c
}

// specialty is a professional's code; a code without a system is in the
// CI-SIS professions and specialties nomenclature.
func specialty(p *Professional) Code {
	c := p.Specialty
	if c.System == "" {
		c.System = SpecialtyRadiologist.System
	}
	return c
}

func codeEl(name string, c Code, kids ...*node) *node {
	return el(name, "code", c.Code, "displayName", c.DisplayName, "codeSystem", c.System, "codeSystemName", c.SystemName).add(kids...)
}

var genderDisplay = map[string]string{"M": "Masculin", "F": "Féminin", "U": "Inconnu"}

func recordTarget(p *Patient) *node {
	role := el("patientRole")
	if p.UsesINS() {
		role.add(el("id", "root", p.insOID(), "extension", p.INS))
	}
	if p.LocalID != "" {
		role.add(el("id", "root", p.LocalIDRoot, "extension", p.LocalID))
	}
	name := el("name").add(textEl("family", p.BirthName, "qualifier", "BR"))
	if p.FirstNames != "" {
		name.add(textEl("given", p.FirstNames))
		name.add(textEl("given", strings.Fields(p.FirstNames)[0], "qualifier", "BR"))
	}
	if p.UsedName != "" {
		name.add(textEl("family", p.UsedName, "qualifier", "CL"))
	}
	pat := el("patient", "classCode", "PSN").add(
		name,
		el("administrativeGenderCode", "code", p.Sex, "displayName", genderDisplay[p.Sex], "codeSystem", sysGender),
	)
	if p.BirthDate.IsZero() {
		pat.add(el("birthTime", "nullFlavor", "UNK"))
	} else {
		pat.add(el("birthTime", "value", p.BirthDate.Format("20060102")))
	}
	if p.BirthPlace != "" {
		pat.add(el("birthplace").add(el("place").add(el("addr").add(textEl("county", p.BirthPlace)))))
	}
	role.add(pat)
	return el("recordTarget").add(role)
}

func organisation(name string, o Organisation, attrs ...string) *node {
	return el(name, attrs...).add(
		el("id", "root", OIDFINESS, "extension", "1"+o.FINESS),
		textEl("name", o.Name),
	)
}

func professional(name string, p *Professional) *node {
	pname := el("name")
	if p.Prefix != "" {
		pname.add(textEl("prefix", p.Prefix))
	}
	if p.Given != "" {
		pname.add(textEl("given", p.Given))
	}
	pname.add(textEl("family", p.Family))
	return el(name).add(
		el("id", "root", OIDRPPS, "extension", "8"+p.RPPS),
		codeEl("code", specialty(p)),
		el("assignedPerson").add(pname),
		organisation("representedOrganization", p.Organisation),
	)
}

// modalities maps DICOM modality codes to the French display names of
// JDV_ModaliteAcquisition_CISIS; an unknown code is shown as is.
var modalities = map[string]string{
	"CR": "Radiographie numérisée",
	"CT": "Tomodensitométrie",
	"DX": "Radiographie numérique",
	"MG": "Mammographie",
	"MR": "Imagerie par résonance magnétique",
	"NM": "Médecine nucléaire",
	"PT": "Tomographie par émission de positons",
	"US": "Echographie",
	"XA": "Angiographie par rayons X",
	"RF": "Radiofluoroscopie",
	"OT": "Autre",
	"SR": "Document SR",
	"KO": "Sélection d'objets",
}

func modalityCode(m string) Code {
	d := modalities[m]
	if d == "" {
		d = m
	}
	return Code{m, sysDCM, "DCM", d}
}

func studyEffectiveTime(s *Study) *node {
	e := el("effectiveTime").add(tsEl("low", s.Start))
	if !s.End.IsZero() {
		e.add(tsEl("high", s.End))
	}
	return e
}

func documentationOf(r *Report) *node {
	s := &r.Study
	return el("documentationOf").add(el("serviceEvent", "classCode", "ACT").add(
		el("id", "root", s.StudyInstanceUID),
		codeEl("code", procedureCode(s),
			codeEl("translation", modalityCode(s.Modality),
				el("qualifier").add(codeEl("name", Code{"121139", sysDCM, "DCM", "Modalité d'imagerie"})))),
		studyEffectiveTime(s),
		el("performer", "typeCode", "PRF").add(professional("assignedEntity", &r.Author)),
	))
}

func componentOf(e *Encounter) *node {
	class := e.Class
	if class == "" {
		class = "AMB"
	}
	eff := el("effectiveTime").add(tsEl("low", e.Start))
	if !e.End.IsZero() {
		eff.add(tsEl("high", e.End))
	}
	hcf := el("healthCareFacility").add(el("id", "root", OIDFINESS, "extension", "1"+e.Facility.FINESS))
	if e.FacilityType.Code != "" {
		c := e.FacilityType
		if c.System == "" {
			c.System = "1.2.250.1.71.4.2.4"
		}
		hcf.add(codeEl("code", c))
	}
	hcf.add(el("location").add(textEl("name", e.Facility.Name)))
	return el("componentOf").add(el("encompassingEncounter").add(
		el("code", "code", class, "codeSystem", sysActCode),
		eff,
		el("location").add(hcf),
	))
}

// narrative returns the section text: one paragraph per non-empty line.
func narrative(s string) *node {
	t := el("text")
	for _, line := range strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) != "" {
			t.add(textEl("paragraph", line))
		}
	}
	return t
}

func section(templates []string, code Code, title string, kids ...*node) *node {
	s := el("section")
	for _, t := range templates {
		s.add(el("templateId", "root", t))
	}
	return s.add(codeEl("code", code), textEl("title", title)).add(kids...)
}

func loinc(code, display string) Code { return Code{code, sysLOINC, "LOINC", display} }

func body(r *Report) *node {
	sb := el("structuredBody")
	comp := func(s *node) { sb.add(el("component").add(s)) }

	if r.ClinicalInformation != "" || r.RequestReason != "" {
		// The request subsection is 1..1 in the clinical information section.
		reason := r.RequestReason
		if strings.TrimSpace(reason) == "" {
			reason = "Non renseignée"
		}
		comp(section([]string{"1.2.840.10008.9.2", "1.2.250.1.213.1.1.2.205"},
			loinc("55752-0", "Informations cliniques"), "Informations cliniques",
			narrative(r.ClinicalInformation),
			el("component").add(section(
				[]string{"1.2.840.10008.9.7", "1.2.250.1.213.1.1.2.211"},
				loinc("55115-0", "Demande"),
				"Justification de la demande d'examen / Finalité de l'examen",
				narrative(reason)))))
	}

	comp(imagingAct(r))

	if r.Findings != "" {
		comp(section([]string{"2.16.840.1.113883.10.20.6.1.2", "1.2.250.1.213.1.1.2.208"},
			loinc("59776-5", "Résultats de l'acte"), "Résultats", narrative(r.Findings)))
	}
	if r.Comparison != "" {
		comp(section([]string{"1.2.840.10008.9.4", "1.2.250.1.213.1.1.2.207"},
			loinc("18834-2", "Examen de comparaison radiologique"), "Comparaisons avec des résultats antérieurs", narrative(r.Comparison)))
	}
	comp(section([]string{"1.2.840.10008.9.5", "1.2.250.1.213.1.1.2.209"},
		loinc("19005-8", "Conclusions"), "Conclusion", narrative(r.Conclusion)))
	return sb
}

// imagingAct is the "Acte d'imagerie" section (FR-DICOM-Acte-imagerie): the
// technique narrative and entry, the radiation exposure subsection and the
// DICOM object catalog subsection.
func imagingAct(r *Report) *node {
	s := &r.Study
	text := el("text").add(
		textEl("paragraph", procedureLabel(procedureCode(s)), "ID", "acte-01"),
		textEl("paragraph", r.Technique, "ID", "acte-01-description"),
		textEl("paragraph", modalityCode(s.Modality).DisplayName, "ID", "acte-01-modalite"),
	)

	proc := el("procedure", "moodCode", "EVN", "classCode", "PROC").add(
		el("templateId", "root", "1.2.840.10008.9.14"),
		el("templateId", "root", "1.2.250.1.213.1.1.3.153"),
		codeEl("code", procedureCode(s),
			el("originalText", "mediaType", "text/xml").add(el("reference", "value", "#acte-01"))),
		el("text").add(el("reference", "value", "#acte-01-description")),
		tsEl("effectiveTime", s.Start),
		codeEl("methodCode", modalityCode(s.Modality),
			el("originalText", "mediaType", "text/xml").add(el("reference", "value", "#acte-01-modalite"))),
	)

	var subs []*node
	if x := r.RadiationExposure; x != nil {
		subs = append(subs, el("component").add(exposure(x, s)))
	}
	subs = append(subs, el("component").add(catalog(s)))

	return section([]string{"1.2.840.10008.9.3", "1.2.250.1.213.1.1.2.206"},
		loinc("55111-9", "Description de l'acte d'imagerie"), "Technique d'imagerie",
		append([]*node{text, el("entry").add(proc)}, subs...)...)
}

func procedureLabel(c Code) string {
	sys := c.SystemName
	if sys == "" {
		sys = c.System
	}
	return fmt.Sprintf("[%s : %s] %s", sys, c.Code, c.DisplayName)
}

func exposure(x *Exposure, s *Study) *node {
	text := narrative(x.Text)
	var entries []*node
	if x.DLP > 0 {
		text.add(textEl("paragraph", "PDL total : "+strconv.FormatFloat(x.DLP, 'f', -1, 64)+" mGy.cm", "ID", "exposition-pdl"))
		entries = append(entries, el("entry").add(el("observation", "classCode", "OBS", "moodCode", "EVN").add(
			el("templateId", "root", "2.16.840.1.113883.10.20.6.2.14"),
			el("templateId", "root", "1.2.250.1.213.1.1.3.154"),
			codeEl("code", Code{"113813", sysDCM, "DCM", "PDL Total : Produit Dose Longueur Total"}),
			el("text").add(el("reference", "value", "#exposition-pdl")),
			el("statusCode", "code", "completed"),
			tsEl("effectiveTime", s.Start),
			el("value", "xsi:type", "PQ", "value", strconv.FormatFloat(x.DLP, 'f', -1, 64), "unit", "mGy.cm"),
		)))
	}
	return section([]string{"1.2.840.10008.9.8", "1.2.250.1.213.1.1.2.215"},
		loinc("73569-6", "Exposition aux rayonnements et informations de radioprotection"),
		"Exposition aux rayonnements et informations de radioprotection",
		append([]*node{text}, entries...)...)
}

// catalog is the DICOM Object Catalog subsection (DCM 121181): the study act,
// one series act per series and one SOP instance observation per instance.
func catalog(s *Study) *node {
	tbody := el("tbody")
	study := el("act", "classCode", "ACT", "moodCode", "EVN").add(
		el("templateId", "root", "1.2.840.10008.9.16"),
		el("templateId", "root", "1.2.250.1.213.1.1.3.155"),
		el("id", "root", s.StudyInstanceUID),
		codeEl("code", Code{"113014", sysDCM, "DCM", "Examen"}),
		tsEl("effectiveTime", s.Start),
	)
	for i, se := range s.Series {
		modID := fmt.Sprintf("serie-%d-modalite", i+1)
		mc := modalityCode(se.Modality)
		tbody.add(el("tr").add(
			textEl("td", s.StudyInstanceUID),
			textEl("td", se.UID),
			textEl("td", strconv.Itoa(se.Number)),
			el("td").add(textEl("content", mc.Code+" "+mc.DisplayName, "ID", modID)),
			textEl("td", strconv.Itoa(len(se.Instances))),
		))
		series := el("act", "classCode", "ACT", "moodCode", "EVN").add(
			el("templateId", "root", "1.2.840.10008.9.17"),
			el("templateId", "root", "1.2.250.1.213.1.1.3.156"),
			el("id", "root", se.UID),
			codeEl("code", Code{"113015", sysDCM, "DCM", "Séries"},
				el("qualifier").add(
					codeEl("name", Code{"121139", sysDCM, "DCM", "Modalité"}),
					codeEl("value", mc,
						el("originalText", "mediaType", "text/plain").add(el("reference", "value", "#"+modID))))),
			tsEl("effectiveTime", s.Start),
		)
		for _, in := range se.Instances {
			obs := el("observation", "classCode", "DGIMG", "moodCode", "EVN").add(
				el("templateId", "root", "1.2.840.10008.9.18"),
				el("templateId", "root", "1.2.250.1.213.1.1.3.157"),
				el("id", "root", in.SOPInstanceUID),
				el("code", "code", in.SOPClassUID, "codeSystem", sysDCMUID, "codeSystemName", "DCMUID"),
			)
			if s.WADOBaseURL != "" {
				url := strings.TrimRight(s.WADOBaseURL, "/") + "/studies/" + s.StudyInstanceUID +
					"/series/" + se.UID + "/instances/" + in.SOPInstanceUID
				obs.add(el("text", "mediaType", "application/dicom").add(el("reference", "value", url)))
			}
			obs.add(tsEl("effectiveTime", s.Start))
			series.add(el("entryRelationship", "typeCode", "COMP").add(obs))
		}
		study.add(el("entryRelationship", "typeCode", "COMP").add(series))
	}
	text := el("text").add(el("table", "border", "0").add(
		el("thead").add(el("tr").add(
			textEl("th", "Examen (Study Instance UID)"),
			textEl("th", "Série (Series Instance UID)"),
			textEl("th", "Numéro de série"),
			textEl("th", "Modalité d'acquisition"),
			textEl("th", "Nombre d'instances"),
		)),
		tbody,
	))
	if len(tbody.kids) == 0 {
		text = el("text").add(textEl("paragraph", "Examen (Study Instance UID) : "+s.StudyInstanceUID))
	}
	return section([]string{"2.16.840.1.113883.10.20.6.1.1", "1.2.250.1.213.1.1.2.217"},
		Code{"121181", sysDCM, "DCM", "Catalogue d'objets DICOM"}, "Catalogue d'objets DICOM",
		text, el("entry").add(study))
}
