package config

import (
	"fmt"
	"sort"
	"strings"
)

// Organisation is a health organisation identified by its FINESS number.
type Organisation struct {
	// FINESS is the 9-character FINESS number (établissement or entité
	// juridique), without the leading "1" of its national identifier.
	FINESS string `yaml:"finess"`
	Name   string `yaml:"name"`
	// PatientIDOID is the OID of the organisation's local patient
	// identifiers (IPP): the root of the local id in CDA documents, the
	// Universal Entity ID of the Issuer of Patient ID in DICOM.
	PatientIDOID string `yaml:"patient_id_oid"`
	// AccessionOID is the OID of the organisation's accession numbers
	// (and placer order numbers when no PlacerOrderOID is set).
	AccessionOID   string `yaml:"accession_oid"`
	PlacerOrderOID string `yaml:"placer_order_oid"`
}

// Professional is a health professional identified by RPPS.
type Professional struct {
	// User is the token user name that acts as this professional (default:
	// the professional's id in the map).
	User string `yaml:"user"`
	// RPPS is the 11-digit RPPS number, without the leading "8".
	RPPS   string `yaml:"rpps"`
	Prefix string `yaml:"prefix"` // e.g. "Dr"
	Given  string `yaml:"given"`
	Family string `yaml:"family"`
	// Specialty is the code in the TRE_R38 nomenclature (default
	// "G15_10/SM44", radiologist) and SpecialtyName its display name.
	Specialty     string `yaml:"specialty"`
	SpecialtyName string `yaml:"specialty_name"`
	// Organisation is the id (in organisations) the professional works for.
	Organisation string `yaml:"organisation"`
}

// Site is a requesting site: a facility that sends studies and gets their
// reports and manifests back.
type Site struct {
	// Organisation is the facility (an organisations id): the encounter's
	// facility in the report, the issuer of its patient ids and accession
	// numbers.
	Organisation string `yaml:"organisation"`
	// CallingAEs are the AE titles the site's modalities and PACS send
	// from; Users the token users that store for it over STOW-RS.
	CallingAEs []string `yaml:"calling_aes"`
	Users      []string `yaml:"users"`
	// ReportDestinations receive the signed report (Encapsulated CDA) and
	// the study's manifests, through the routing queues.
	ReportDestinations []string `yaml:"report_destinations"`
	// ReportFormat is "level3" (default: structured body), "level1" (PDF
	// body) or "both" (two documents).
	ReportFormat string `yaml:"report_format"`
	// INSStatus is the identity status the site's identity vigilance
	// guarantees for the INS its images carry (PROV, RECUP, VALI or QUAL;
	// default PROV): only QUAL lets a report identify the patient by the
	// INS. It is the site's declaration, recorded as the evidence of the
	// status in every report.
	INSStatus string `yaml:"ins_status"`
}

// Report formats.
const (
	ReportLevel3 = "level3"
	ReportLevel1 = "level1"
	ReportBoth   = "both"
)

// Reports configures report documents.
type Reports struct {
	// Custodian is the organisation (id in organisations) that keeps the
	// documents: the teleradiology organisation.
	Custodian string `yaml:"custodian"`
	// DocumentOID is the root of document ids (ClinicalDocument/id,
	// setId); default: UUIDs.
	DocumentOID string `yaml:"document_oid"`
}

// DefaultSpecialty is the radiologist's specialty code (TRE_R38).
const DefaultSpecialty = "G15_10/SM44"

// ProfessionalFor returns the professional bound to a token user.
func (c *Config) ProfessionalFor(user string) (id string, p Professional, ok bool) {
	for _, k := range sortedKeys(c.Professionals) {
		p := c.Professionals[k]
		if p.User == user || (p.User == "" && k == user) {
			return k, p, true
		}
	}
	return "", Professional{}, false
}

// SiteFor returns the site a study sent by callingAE (DIMSE) or user
// (STOW-RS) belongs to.
func (c *Config) SiteFor(callingAE, user string) (id string, s Site, ok bool) {
	for _, k := range sortedKeys(c.Sites) {
		s := c.Sites[k]
		for _, ae := range s.CallingAEs {
			if callingAE != "" && ae == callingAE {
				return k, s, true
			}
		}
		for _, u := range s.Users {
			if user != "" && u == user {
				return k, s, true
			}
		}
	}
	return "", Site{}, false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ValidOID reports whether s is an OID: numeric arcs separated by dots,
// no leading zeros, at most 64 characters (a DICOM UID).
func ValidOID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	arcs := strings.Split(s, ".")
	if len(arcs) < 2 {
		return false
	}
	for _, a := range arcs {
		if a == "" || (len(a) > 1 && a[0] == '0') {
			return false
		}
		for i := 0; i < len(a); i++ {
			if a[i] < '0' || a[i] > '9' {
				return false
			}
		}
	}
	return true
}

func digitsN(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ValidateReporting checks organisations, professionals, sites and reports.
func (c *Config) ValidateReporting() error {
	bad := func(key, format string, a ...any) error {
		return &KeyError{Key: key, Msg: fmt.Sprintf(format, a...)}
	}
	for _, id := range sortedKeys(c.Organisations) {
		o := c.Organisations[id]
		key := "organisations." + id
		if !validName(id) {
			return bad(key, "an organisation id is letters, digits, '-', '_' and '.'")
		}
		if len(o.FINESS) != 9 {
			return bad(key+".finess", "%q is not a 9-character FINESS number", o.FINESS)
		}
		if strings.TrimSpace(o.Name) == "" {
			return bad(key+".name", "must not be empty")
		}
		for k, v := range map[string]string{"patient_id_oid": o.PatientIDOID, "accession_oid": o.AccessionOID, "placer_order_oid": o.PlacerOrderOID} {
			if v != "" && !ValidOID(v) {
				return bad(key+"."+k, "%q is not an OID", v)
			}
		}
	}
	users := map[string]string{}
	for _, id := range sortedKeys(c.Professionals) {
		p := c.Professionals[id]
		key := "professionals." + id
		if !validName(id) {
			return bad(key, "a professional id is letters, digits, '-', '_' and '.'")
		}
		if !digitsN(p.RPPS, 11) {
			return bad(key+".rpps", "%q is not an 11-digit RPPS number", p.RPPS)
		}
		if strings.TrimSpace(p.Family) == "" {
			return bad(key+".family", "must not be empty")
		}
		if _, ok := c.Organisations[p.Organisation]; !ok {
			return bad(key+".organisation", "%q is not in organisations", p.Organisation)
		}
		u := p.User
		if u == "" {
			u = id
		}
		if other, dup := users[u]; dup {
			return bad(key+".user", "user %q is already professionals.%s", u, other)
		}
		users[u] = id
	}
	aes := map[string]string{}
	for _, id := range sortedKeys(c.Sites) {
		s := c.Sites[id]
		key := "sites." + id
		if !validName(id) {
			return bad(key, "a site id is letters, digits, '-', '_' and '.'")
		}
		if _, ok := c.Organisations[s.Organisation]; !ok {
			return bad(key+".organisation", "%q is not in organisations", s.Organisation)
		}
		for _, ae := range s.CallingAEs {
			if err := ValidAETitle(ae); err != nil {
				return bad(key+".calling_aes", "%v", err)
			}
			if other, dup := aes[ae]; dup {
				return bad(key+".calling_aes", "%s is already sites.%s's", ae, other)
			}
			aes[ae] = id
		}
		for _, d := range s.ReportDestinations {
			if _, ok := c.Destinations[d]; !ok {
				return bad(key+".report_destinations", "%q is not in destinations", d)
			}
		}
		switch strings.ToUpper(s.INSStatus) {
		case "", "PROV", "RECUP", "VALI", "QUAL":
		default:
			return bad(key+".ins_status", "%q is not PROV, RECUP, VALI or QUAL", s.INSStatus)
		}
		switch s.ReportFormat {
		case "", ReportLevel3, ReportLevel1, ReportBoth:
		default:
			return bad(key+".report_format", "%q is not level3, level1 or both", s.ReportFormat)
		}
	}
	if c.Reports.Custodian != "" {
		if _, ok := c.Organisations[c.Reports.Custodian]; !ok {
			return bad("reports.custodian", "%q is not in organisations", c.Reports.Custodian)
		}
	}
	if c.Reports.DocumentOID != "" && !ValidOID(c.Reports.DocumentOID) {
		return bad("reports.document_oid", "%q is not an OID", c.Reports.DocumentOID)
	}
	return nil
}
