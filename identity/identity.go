// Package identity owns the patient identity model of Relais: the
// identifiers of a patient with their issuers (the local IPP under the
// facility's OID or namespace, the INS — matricule INS-NIR or INS-NIA with
// the ANS OIDs, test and demonstration OIDs recognised and flagged — and
// any other identifier), the five INS traits and the identity status
// (PROV, RECUP, VALI, QUAL).
//
// It reads identities from index records of incoming images (FromAttrs),
// enforces the identity-status rules of the "Référentiel INS" (Upgrade:
// nothing is promoted silently, no step is skipped), and decides which
// identifier a shared document (CDA report, KOS manifest) may carry
// (ShareableINS, ForDocument, CDAPatient): the INS only when the identity
// is qualified, otherwise the local identifier with a reason.
package identity

import (
	"fmt"
	"strings"

	"github.com/relais-health/relais/coerce"
)

// INS assigning authority OIDs (ANS, "Référentiel INS"). The NIR, test and
// demonstration OIDs are coerce's constants (one definition).
const (
	OIDINSNIR     = coerce.OIDINSNIR      // INS-NIR (production)
	OIDINSNIA     = "1.2.250.1.213.1.4.9" // INS-NIA (production, NIR pending)
	OIDINSNIRTest = coerce.OIDINSNIRTest  // INS-NIR test
	OIDINSNIRDemo = coerce.OIDINSNIRDemo  // INS-NIR demonstration
	OIDINSC       = "1.2.250.1.213.1.4.2" // legacy INS-C (retired; legacy identifier only)
)

// Issuer of Patient ID namespaces used with the INS OIDs (as the ANS KOS
// sample and coerce write them).
const (
	NamespaceINSNIR     = "ASIP-SANTE-INS-NIR"
	NamespaceINSNIA     = "ASIP-SANTE-INS-NIA"
	NamespaceINSNIRTest = "ASIP-SANTE-INS-NIR-TEST"
	NamespaceINSNIRDemo = "ASIP-SANTE-INS-NIR-DEMO"
)

// Type is the kind of an identifier.
type Type int

const (
	TypeOther  Type = iota // any other identifier (another site's IPP, unknown issuer, rejected INS)
	TypeLocal              // the local patient identifier (IPP) of the facility
	TypeINSNIR             // matricule INS built on the NIR
	TypeINSNIA             // matricule INS built on a NIA (NIR pending)
	TypeINSC               // legacy INS-C (retired; never used as the INS)
)

func (t Type) String() string {
	switch t {
	case TypeLocal:
		return "local"
	case TypeINSNIR:
		return "INS-NIR"
	case TypeINSNIA:
		return "INS-NIA"
	case TypeINSC:
		return "INS-C"
	}
	return "other"
}

// Env tells production OIDs from test and demonstration ones.
type Env int

const (
	EnvProduction Env = iota
	EnvTest
	EnvDemo
)

func (e Env) String() string {
	switch e {
	case EnvTest:
		return "test"
	case EnvDemo:
		return "demo"
	}
	return "production"
}

// ClassifyOID returns the identifier type and environment of an INS OID;
// ok is false for any other OID.
func ClassifyOID(oid string) (t Type, env Env, ok bool) {
	switch strings.TrimSpace(oid) {
	case OIDINSNIR:
		return TypeINSNIR, EnvProduction, true
	case OIDINSNIA:
		return TypeINSNIA, EnvProduction, true
	case OIDINSNIRTest:
		return TypeINSNIR, EnvTest, true
	case OIDINSNIRDemo:
		return TypeINSNIR, EnvDemo, true
	case OIDINSC:
		return TypeINSC, EnvProduction, true
	}
	return TypeOther, EnvProduction, false
}

// NamespaceFor returns the Issuer of Patient ID conventionally written
// with an INS OID ("" for other OIDs).
func NamespaceFor(oid string) string {
	switch oid {
	case OIDINSNIR:
		return NamespaceINSNIR
	case OIDINSNIA:
		return NamespaceINSNIA
	case OIDINSNIRTest:
		return NamespaceINSNIRTest
	case OIDINSNIRDemo:
		return NamespaceINSNIRDemo
	}
	return ""
}

// Identifier is one patient identifier.
type Identifier struct {
	Value string
	// Issuer is the assigning authority: its OID when known (Universal
	// Entity ID of type ISO), else the namespace.
	Issuer string
	// Namespace is the Issuer of Patient ID (0010,0021) as found, if any.
	Namespace string
	Type      Type
}

// IsINS reports whether the identifier is a matricule INS (NIR or NIA,
// any environment).
func (i Identifier) IsINS() bool { return i.Type == TypeINSNIR || i.Type == TypeINSNIA }

// Env returns the environment of the issuer OID (production for non-INS
// issuers).
func (i Identifier) Env() Env { _, e, _ := ClassifyOID(i.Issuer); return e }

// IssuerIsOID reports whether Issuer is an OID (digits and dots).
func (i Identifier) IssuerIsOID() bool { return IsOID(i.Issuer) }

func (i Identifier) String() string {
	if i.Issuer == "" {
		return i.Value
	}
	return i.Value + "^^^" + i.Issuer
}

// IsOID reports whether s is syntactically an OID: at least two numeric
// arcs separated by dots, without leading zeros.
func IsOID(s string) bool {
	arcs := strings.Split(s, ".")
	if len(arcs) < 2 {
		return false
	}
	for _, a := range arcs {
		if a == "" || len(a) > 1 && a[0] == '0' {
			return false
		}
		for _, c := range a {
			if c < '0' || c > '9' {
				return false
			}
		}
	}
	return true
}

// ValidINSKey reports whether v is a well-formed matricule INS: 15
// characters, 13 digits (the 6th and 7th may be 2A/2B for Corsica) and the
// 2-digit key 97 − (number mod 97), 2A counting as 19 and 2B as 18. The
// check is coerce.ValidINS (one implementation).
func ValidINSKey(v string) bool { return coerce.ValidINS(v) }

// Traits are the five INS traits.
type Traits struct {
	BirthName  string // nom de naissance
	FirstNames string // prénoms de naissance, space separated
	Sex        string // M, F or U
	BirthDate  string // YYYYMMDD ("" unknown)
	BirthPlace string // INSEE COG code of the birth place
}

// Missing lists the traits that are empty.
func (t Traits) Missing() []string {
	var m []string
	for _, f := range []struct{ name, v string }{
		{"birth name", t.BirthName}, {"first names", t.FirstNames}, {"sex", t.Sex},
		{"birth date", t.BirthDate}, {"birth place", t.BirthPlace},
	} {
		if strings.TrimSpace(f.v) == "" {
			m = append(m, f.name)
		}
	}
	return m
}

// Identity is a patient identity: its identifiers, traits and status.
type Identity struct {
	Local  Identifier   // the local identifier (IPP), Type TypeLocal
	INS    *Identifier  // the matricule INS, nil when none was recognised
	Others []Identifier // every other identifier
	Traits
	Status Status
	// History records the status changes made through Upgrade.
	History []Transition
}

// Transition is one status change.
type Transition struct {
	From, To Status
	Evidence string
}

func (id Identity) String() string {
	s := fmt.Sprintf("%s [%s]", id.Local, id.Status)
	if id.INS != nil {
		s += " INS " + id.INS.String()
	}
	return s
}
