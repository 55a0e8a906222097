package identity

import (
	"fmt"
	"strings"
	"time"

	"github.com/relais-health/relais/storage"
)

// Index attribute tags (storage.Instance.Attrs keys) read by FromAttrs.
const (
	tagPatientName           = "00100010"
	tagPatientID             = "00100020"
	tagIssuerOfPatientID     = "00100021"
	tagIssuerQualifiersSeq   = "00100024"
	tagPatientBirthDate      = "00100030"
	tagPatientSex            = "00100040"
	tagOtherPatientIDsSeq    = "00101002"
	tagPatientBirthName      = "00101005"
	tagUniversalEntityID     = "00400032"
	tagUniversalEntityIDType = "00400033"
)

// Option configures FromAttrs.
type Option func(*options)

type options struct {
	status      Status
	localIssuer string
}

// WithStatus sets the status a configured source vouches for the identities
// of its images (e.g. a site whose PACS is fed by a qualified identity
// server). Images never carry the status: without this option it is PROV.
// It is capped: QUAL is never granted from images (it becomes VALI, with a
// warning; QUAL is reached through Upgrade with evidence), and RECUP needs
// an INS in the images (else PROV, with a warning).
func WithStatus(s Status) Option { return func(o *options) { o.status = s } }

// WithLocalIssuer gives the facility's assigning authority (its OID,
// preferably) for the local Patient ID when the image has no Issuer of
// Patient ID; when the Patient ID is the INS, the Other Patient IDs item
// with this issuer is taken as the local identifier.
func WithLocalIssuer(issuer string) Option { return func(o *options) { o.localIssuer = issuer } }

// FromAttrs reads a patient identity from the index record of an image
// (storage.Instance.Attrs: 8-hex-digit tag → UTF-8 value, kept sequences as
// JSON items, see storage.DecodeItems): Patient ID, Issuer of Patient ID and
// Issuer of Patient ID Qualifiers Sequence, the Other Patient IDs Sequence
// items (ID, issuer and their qualifiers), Patient's Name, Patient's Birth
// Name, Birth Date and Sex.
//
// The INS is recognised by its OID (Universal Entity ID of the qualifiers)
// among the identifiers; its key is checked (a wrong key is a warning and
// the identifier is kept in Others as TypeOther, not as the INS). Test and
// demonstration OIDs are recognised and flagged (warning). Two different
// INS are a conflict: none is taken (warning). The legacy INS-C is kept in
// Others as TypeINSC.
//
// The status is PROV unless WithStatus says otherwise, and never QUAL.
// Warnings say what was dropped, doubtful or missing; they never contain
// the traits' values.
func FromAttrs(attrs map[string]string, opts ...Option) (Identity, []string) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	var id Identity
	var warn []string
	warnf := func(format string, args ...any) { warn = append(warn, fmt.Sprintf(format, args...)) }

	// Candidates: the top-level Patient ID first, then the items.
	type cand struct {
		id  Identifier
		top bool
	}
	var cands []cand
	add := func(where string, item map[string]string, quals string, top bool) {
		v := strings.TrimSpace(item[tagPatientID])
		if v == "" {
			return
		}
		ns := strings.TrimSpace(item[tagIssuerOfPatientID])
		oid := ""
		qitems, err := storage.DecodeItems(quals)
		if err != nil {
			warnf("%s: Issuer of Patient ID Qualifiers Sequence unreadable: %v", where, err)
		}
		for _, q := range qitems {
			ue := strings.TrimSpace(q[tagUniversalEntityID])
			typ := strings.ToUpper(strings.TrimSpace(q[tagUniversalEntityIDType]))
			if ue != "" && (typ == "ISO" || typ == "" && IsOID(ue)) {
				oid = ue
				break
			}
		}
		c := Identifier{Value: v, Issuer: ns, Namespace: ns}
		if oid != "" {
			c.Issuer = oid
		}
		cands = append(cands, cand{id: c, top: top})
	}
	add("Patient ID", attrs, attrs[tagIssuerQualifiersSeq], true)
	items, err := storage.DecodeItems(attrs[tagOtherPatientIDsSeq])
	if err != nil {
		warnf("Other Patient IDs Sequence unreadable: %v", err)
	}
	for i, it := range items {
		add(fmt.Sprintf("Other Patient IDs item %d", i+1), it, it[tagIssuerQualifiersSeq], false)
	}

	// Classify.
	var ins []Identifier
	var rest []cand
	for _, c := range cands {
		t, env, known := ClassifyOID(c.id.Issuer)
		switch {
		case known && t == TypeINSC:
			c.id.Type = TypeINSC
			rest = append(rest, c)
		case known && !ValidINSKey(c.id.Value):
			warnf("identifier under INS OID %s is not a well-formed matricule INS (15 characters, key 97 − number mod 97): not used as the INS", c.id.Issuer)
			rest = append(rest, c)
		case known:
			c.id.Type = t
			if env != EnvProduction {
				warnf("INS under the %s OID %s: not a production identity", env, c.id.Issuer)
			}
			dup := false
			for _, x := range ins {
				dup = dup || x.Value == c.id.Value && x.Issuer == c.id.Issuer
			}
			if !dup {
				ins = append(ins, c.id)
			}
		default:
			rest = append(rest, c)
		}
	}
	switch len(ins) {
	case 0:
	case 1:
		i := ins[0]
		id.INS = &i
	default:
		warnf("%d different INS in the image: none is used", len(ins))
		for _, x := range ins {
			x.Type = TypeOther
			rest = append(rest, cand{id: x})
		}
	}

	// Local identifier: the top-level Patient ID when it is not the INS,
	// else the item with the configured issuer, else the first other one.
	// Identifiers under an INS OID (rejected or conflicting INS, INS-C)
	// are never the local identifier.
	eligible := func(c cand) bool {
		_, _, known := ClassifyOID(c.id.Issuer)
		return c.id.Type == TypeOther && !known
	}
	local := -1
	for i, c := range rest {
		if c.top && eligible(c) {
			local = i
		}
	}
	if local < 0 && len(rest) > 0 {
		for i, c := range rest {
			if eligible(c) && o.localIssuer != "" && (c.id.Issuer == o.localIssuer || c.id.Namespace == o.localIssuer) {
				local = i
				break
			}
		}
		if local < 0 {
			for i, c := range rest {
				if eligible(c) {
					local = i
					warnf("local identifier taken from Other Patient IDs (issuer %q)", c.id.Issuer)
					break
				}
			}
		}
	}
	if local >= 0 {
		id.Local = rest[local].id
		id.Local.Type = TypeLocal
		if id.Local.Issuer == "" {
			id.Local.Issuer = o.localIssuer
		}
	} else {
		warnf("no local patient identifier")
	}
	for i, c := range rest {
		if i == local || c.id.Value == id.Local.Value && c.id.Issuer == id.Local.Issuer {
			continue
		}
		id.Others = append(id.Others, c.id)
	}
	if id.Local.Value != "" && id.Local.Issuer == "" {
		warnf("local patient identifier has no issuer")
	}

	id.Traits = traitsFromAttrs(attrs, id.INS != nil, warnf)

	// Status: at most what the configured source says, never QUAL.
	id.Status = o.status
	if id.Status < PROV || id.Status > QUAL {
		warnf("configured status %d invalid: PROV", int(id.Status))
		id.Status = PROV
	}
	if id.Status == QUAL {
		warnf("status QUAL is never taken from images: VALI (qualify through Upgrade with evidence)")
		id.Status = VALI
	}
	if id.Status == RECUP && id.INS == nil {
		warnf("configured status RECUP without an INS in the image: PROV")
		id.Status = PROV
	}
	return id, warn
}

func traitsFromAttrs(attrs map[string]string, hasINS bool, warnf func(string, ...any)) Traits {
	var t Traits
	family, given := splitPN(attrs[tagPatientName])
	if bn, _ := splitPN(attrs[tagPatientBirthName]); bn != "" {
		t.BirthName = bn
	} else {
		t.BirthName = family
		if hasINS && family != "" {
			warnf("birth name taken from Patient's Name (no Patient's Birth Name)")
		}
	}
	t.FirstNames = given
	switch s := strings.ToUpper(strings.TrimSpace(attrs[tagPatientSex])); s {
	case "M", "F":
		t.Sex = s
	case "O":
		t.Sex = "U"
	case "":
	default:
		warnf("Patient's Sex %q not M, F or O", s)
	}
	if d := strings.TrimSpace(attrs[tagPatientBirthDate]); d != "" {
		if _, err := time.Parse("20060102", d); err != nil {
			warnf("Patient's Birth Date is not a YYYYMMDD date")
		} else {
			t.BirthDate = d
		}
	}
	if hasINS {
		if m := t.Missing(); len(m) > 0 {
			warnf("INS traits missing: %s", strings.Join(m, ", "))
		}
	}
	return t
}

// splitPN returns the family name and the given + middle names of the
// first (alphabetic) component group of a DICOM PN value.
func splitPN(pn string) (family, given string) {
	if i := strings.IndexByte(pn, '='); i >= 0 {
		pn = pn[:i]
	}
	c := strings.Split(pn, "^")
	family = strings.TrimSpace(c[0])
	var g []string
	for _, x := range c[1:min(len(c), 3)] {
		if x = strings.TrimSpace(x); x != "" {
			g = append(g, x)
		}
	}
	return family, strings.Join(g, " ")
}
