package identity

import (
	"fmt"
	"strings"
	"time"

	"github.com/relais-health/relais/cda"
)

// ShareOption configures ShareableINS and ForDocument.
type ShareOption func(*shareOptions)

type shareOptions struct{ allowTest bool }

// AllowTestINS lets INS under the test and demonstration OIDs be shared
// (test platforms, demonstrations). Never set it in production.
func AllowTestINS() ShareOption { return func(o *shareOptions) { o.allowTest = true } }

// ShareableINS returns the INS when it may reference shared data: the
// status is QUAL, the matricule is well-formed and its OID is a production
// one (INS-NIR or INS-NIA; test and demonstration OIDs only with
// AllowTestINS).
func (id Identity) ShareableINS(opts ...ShareOption) (*Identifier, bool) {
	ins, _ := id.shareable(opts)
	return ins, ins != nil
}

func (id Identity) shareable(opts []ShareOption) (*Identifier, string) {
	var o shareOptions
	for _, f := range opts {
		f(&o)
	}
	switch {
	case id.INS == nil || !id.INS.IsINS():
		return nil, "no INS known for the patient"
	case id.Status != QUAL:
		return nil, fmt.Sprintf("identity status is %s, the INS is used only when QUAL", id.Status)
	case !ValidINSKey(id.INS.Value):
		return nil, "the INS is not well-formed (key)"
	case id.INS.Env() != EnvProduction && !o.allowTest:
		return nil, fmt.Sprintf("the INS is under the %s OID %s", id.INS.Env(), id.INS.Issuer)
	}
	ins := *id.INS
	return &ins, ""
}

// DocumentID is the patient identifier a document (CDA report, KOS
// manifest) carries.
type DocumentID struct {
	// UsesINS is true when the identifier is the qualified INS.
	UsesINS bool
	// Value is the identifier (matricule INS or local IPP): the DICOM
	// Patient ID, the CDA id/@extension.
	Value string
	// Root is the assigning authority OID: the CDA id/@root and the
	// Universal Entity ID (type ISO) of the Issuer of Patient ID
	// Qualifiers; "" when the issuer is only a namespace.
	Root string
	// IssuerOfPatientID is the DICOM Issuer of Patient ID (0010,0021).
	IssuerOfPatientID string
	// Reason says why the INS is not used ("" when it is).
	Reason string
}

// ForDocument chooses the identifier of a shared document: the INS when
// ShareableINS gives it and the five traits are known (the CI-SIS makes
// them mandatory beside an INS), else the local identifier with the
// reason.
func (id Identity) ForDocument(opts ...ShareOption) DocumentID {
	ins, reason := id.shareable(opts)
	if ins != nil {
		if m := id.Traits.Missing(); len(m) > 0 {
			ins, reason = nil, "INS traits missing: "+strings.Join(m, ", ")
		}
	}
	if ins != nil {
		ns := ins.Namespace
		if ns == "" {
			ns = NamespaceFor(ins.Issuer)
		}
		return DocumentID{UsesINS: true, Value: ins.Value, Root: ins.Issuer, IssuerOfPatientID: ns}
	}
	d := DocumentID{Value: id.Local.Value, IssuerOfPatientID: id.Local.Namespace, Reason: reason}
	if d.Value == "" {
		d.Reason += "; no local identifier either"
	}
	if id.Local.IssuerIsOID() {
		d.Root = id.Local.Issuer
	} else if d.IssuerOfPatientID == "" {
		d.IssuerOfPatientID = id.Local.Issuer
	}
	return d
}

// CDAPatient returns the cda.Patient of the identity and the reason the
// INS is not used ("" when it is). The INS is filled only when
// ForDocument uses it (so cda.Patient.UsesINS agrees); the local id is
// always filled (its root only when the issuer is an OID).
func (id Identity) CDAPatient(opts ...ShareOption) (cda.Patient, string) {
	d := id.ForDocument(opts...)
	p := cda.Patient{
		IdentityStatus: id.Status.String(),
		LocalID:        id.Local.Value,
		BirthName:      id.BirthName,
		FirstNames:     id.FirstNames,
		Sex:            id.Sex,
		BirthPlace:     id.BirthPlace,
	}
	if id.Local.IssuerIsOID() {
		p.LocalIDRoot = id.Local.Issuer
	}
	if p.Sex == "" {
		p.Sex = "U"
	}
	if t, err := time.Parse("20060102", id.BirthDate); err == nil {
		p.BirthDate = t
	}
	if d.UsesINS {
		p.INS, p.INSOID = d.Value, d.Root
	}
	return p, d.Reason
}
