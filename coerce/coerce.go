// Package coerce describes the attribute coercions a route applies to the
// instances it forwards (the YAML "coerce" block of a routing action) and
// compiles them, per instance, into dicom.EditOp lists for dicom.Edit.
//
// Attributes are named by dictionary keyword ("PatientID") or by tag as 8
// hexadecimal digits ("00100020"; "0010,0020" and "(0010,0020)" are
// accepted too). Private tags are not supported (their VR is unknown).
//
// Values are UTF-8; dicom.Edit encodes them in the instance's Specific
// Character Set and refuses values it cannot represent. A value may be a
// template: "{Keyword}" (or "{00100020}") is replaced by the instance's
// value of that attribute (its top-level value as indexed, "" if absent).
// There is no other syntax: no escapes, no expressions; "{" and "}" are
// only allowed as placeholder delimiters. An op whose template expands to
// the empty string is skipped (a literal "" still blanks the attribute).
//
// Example:
//
//	coerce:
//	  prefix: {PatientID: "SITEA-"}
//	  if_missing: {AccessionNumber: "{StudyID}"}
//	  set: {InstitutionName: "CH SUD"}
//	  replace: {ReferringPhysicianName: ""}
//	  delete: [OtherPatientNames]
//	  issuer_of_patient_id: SITEA
//	  ins: {value: "{PatientID}", kind: test}
package coerce

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/relais-health/relais/dicom"
)

// Spec is the YAML-facing description of the coercions of one route.
type Spec struct {
	// Set inserts or replaces attributes (keyword or tag → value).
	Set map[string]string `yaml:"set"`
	// Replace replaces attributes only when they are present.
	Replace map[string]string `yaml:"replace"`
	// Delete removes attributes.
	Delete []string `yaml:"delete"`
	// Prefix prepends to present, non-empty attributes (PatientID:
	// "SITEA-").
	Prefix map[string]string `yaml:"prefix"`
	// IfMissing sets attributes that are absent or empty (AccessionNumber:
	// "{StudyID}").
	IfMissing map[string]string `yaml:"if_missing"`
	// IssuerOfPatientID sets Issuer of Patient ID (0010,0021) and appends
	// the local Patient ID (after this spec's own set/prefix/replace of
	// PatientID) with this issuer to Other Patient IDs Sequence
	// (0010,1002), unless an item already holds them.
	IssuerOfPatientID string `yaml:"issuer_of_patient_id"`
	// INS appends the French national health identifier as an Other
	// Patient IDs item qualified by the INS OID.
	INS *INSSpec `yaml:"ins"`
}

// INS assigning authority OIDs (ANS, "Référentiel INS").
const (
	OIDINSNIR     = "1.2.250.1.213.1.4.8"  // INS-NIR (production)
	OIDINSNIRTest = "1.2.250.1.213.1.4.10" // INS-NIR test
	OIDINSNIRDemo = "1.2.250.1.213.1.4.11" // INS-NIR demonstration
)

// INSSpec says where the INS of an instance comes from and how it is
// qualified.
type INSSpec struct {
	// Value is a template giving the INS (matricule, 15 characters: 13
	// digits, 2A/2B allowed for Corsica, and the 2-digit key), e.g.
	// "{PatientID}" or a fixed rule "{OtherPatientIDs}". Attributes come
	// from the instance's top-level values.
	Value string `yaml:"value"`
	// Kind selects the OID: "nir" (default, 1.2.250.1.213.1.4.8), "test"
	// (1.2.250.1.213.1.4.10) or "demo" (1.2.250.1.213.1.4.11).
	Kind string `yaml:"kind"`
	// Issuer is the Issuer of Patient ID of the item (default
	// "ASIP-SANTE-INS-NIR", with "-TEST" or "-DEMO" for those kinds).
	Issuer string `yaml:"issuer"`
	// Required makes Compile fail when the value is empty or not a
	// well-formed INS; otherwise no INS item is added.
	Required bool `yaml:"required"`
}

// OID returns the OID of the INS kind.
func (s INSSpec) OID() (string, error) {
	switch strings.ToLower(strings.TrimSpace(s.Kind)) {
	case "", "nir":
		return OIDINSNIR, nil
	case "test":
		return OIDINSNIRTest, nil
	case "demo":
		return OIDINSNIRDemo, nil
	}
	return "", fmt.Errorf("coerce: ins.kind %q: want nir, test or demo", s.Kind)
}

func (s INSSpec) issuer() string {
	if s.Issuer != "" {
		return s.Issuer
	}
	switch strings.ToLower(strings.TrimSpace(s.Kind)) {
	case "test":
		return "ASIP-SANTE-INS-NIR-TEST"
	case "demo":
		return "ASIP-SANTE-INS-NIR-DEMO"
	}
	return "ASIP-SANTE-INS-NIR"
}

// Tags used by the issuer and INS rules.
const (
	tagTypeOfPatientID     dicom.Tag = 0x00100022
	tagIssuerQualifiersSeq dicom.Tag = 0x00100024
	tagUniversalEntityID   dicom.Tag = 0x00400032
	tagUniversalEntityType dicom.Tag = 0x00400033
)

// ErrSpec is wrapped by the errors of Validate and Compile about the spec.
var ErrSpec = errors.New("coerce: invalid spec")

func specErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrSpec, fmt.Sprintf(format, args...))
}

// ParseTag resolves an attribute name: a dictionary keyword or a tag as 8
// hex digits ("00100020", "0010,0020", "(0010,0020)").
func ParseTag(key string) (dicom.Tag, error) {
	k := strings.TrimSpace(key)
	if t, ok := dicom.TagByKeyword(k); ok {
		return t, nil
	}
	h := strings.NewReplacer("(", "", ")", "", ",", "").Replace(k)
	if len(h) == 8 {
		if v, err := strconv.ParseUint(h, 16, 32); err == nil {
			return dicom.Tag(v), nil
		}
	}
	return 0, fmt.Errorf("unknown attribute %q (want a dictionary keyword or 8 hex digits)", key)
}

// checkTag refuses the tags coercion must not touch.
func checkTag(t dicom.Tag, vrOK func(dicom.VR) bool) error {
	switch {
	case t.Group() < 0x0008:
		return fmt.Errorf("%s is file meta or command group", t)
	case t.Element() == 0:
		return fmt.Errorf("%s is a group length", t)
	case t.Group() == 0xFFFE:
		return fmt.Errorf("%s is a delimitation tag", t)
	case t == dicom.TagSpecificCharacterSet:
		return fmt.Errorf("Specific Character Set cannot be coerced (values are encoded in the instance's character set)")
	case t.IsPrivate():
		return fmt.Errorf("%s is private (unknown VR)", t)
	}
	if vr := dicom.LookupVR(t); vrOK != nil && !vrOK(vr) {
		return fmt.Errorf("%s has VR %s", t, vr)
	}
	return nil
}

func isValueVR(vr dicom.VR) bool {
	switch vr {
	case dicom.VRUS, dicom.VRSS, dicom.VRUL, dicom.VRSL, dicom.VRFL, dicom.VRFD:
		return true
	}
	return vr.IsText()
}

// placeholders returns the tags a template refers to.
func placeholders(tpl string) ([]dicom.Tag, error) {
	var tags []dicom.Tag
	for s := tpl; ; {
		i := strings.IndexAny(s, "{}")
		if i < 0 {
			return tags, nil
		}
		if s[i] == '}' {
			return nil, fmt.Errorf("template %q: unmatched '}'", tpl)
		}
		j := strings.IndexAny(s[i+1:], "{}")
		if j < 0 || s[i+1+j] == '{' {
			return nil, fmt.Errorf("template %q: unterminated '{'", tpl)
		}
		name := s[i+1 : i+1+j]
		t, err := ParseTag(name)
		if err != nil {
			return nil, fmt.Errorf("template %q: %v", tpl, err)
		}
		tags = append(tags, t)
		s = s[i+1+j+1:]
	}
}

// Fill expands the placeholders of a template with attrs; absent
// attributes expand to "". It reports whether the template had
// placeholders.
func Fill(tpl string, attrs func(dicom.Tag) (string, bool)) (string, bool, error) {
	if !strings.ContainsAny(tpl, "{}") {
		return tpl, false, nil
	}
	if _, err := placeholders(tpl); err != nil {
		return "", true, specErr("%v", err)
	}
	var b strings.Builder
	for s := tpl; ; {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			b.WriteString(s)
			break
		}
		b.WriteString(s[:i])
		j := strings.IndexByte(s[i:], '}')
		t, _ := ParseTag(s[i+1 : i+j])
		if attrs != nil {
			if v, ok := attrs(t); ok {
				b.WriteString(v)
			}
		}
		s = s[i+j+1:]
	}
	return b.String(), true, nil
}

type entry struct {
	key, section string
	tag          dicom.Tag
	value        string
}

// entries lists the keyed rules of s in a stable order, resolved.
func (s Spec) entries() ([]entry, error) {
	var out []entry
	add := func(section string, m map[string]string, vrOK func(dicom.VR) bool) error {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			t, err := ParseTag(k)
			if err == nil {
				err = checkTag(t, vrOK)
			}
			if err == nil {
				var ph []dicom.Tag
				ph, err = placeholders(m[k])
				if err == nil && len(ph) == 0 {
					err = dicom.CheckEditValue(t, "", m[k])
				}
			}
			if err != nil {
				return specErr("%s: %q: %v", section, k, err)
			}
			out = append(out, entry{key: k, section: section, tag: t, value: m[k]})
		}
		return nil
	}
	if err := add("set", s.Set, isValueVR); err != nil {
		return nil, err
	}
	if err := add("replace", s.Replace, isValueVR); err != nil {
		return nil, err
	}
	if err := add("prefix", s.Prefix, dicom.VR.IsText); err != nil {
		return nil, err
	}
	if err := add("if_missing", s.IfMissing, isValueVR); err != nil {
		return nil, err
	}
	for _, k := range s.Delete {
		t, err := ParseTag(k)
		if err == nil {
			err = checkTag(t, nil)
		}
		if err != nil {
			return nil, specErr("delete: %q: %v", k, err)
		}
		out = append(out, entry{key: k, section: "delete", tag: t})
	}
	seen := map[dicom.Tag]entry{}
	for _, e := range out {
		if p, ok := seen[e.tag]; ok {
			return nil, specErr("%s: %q: %s is also in %s (%q)", e.section, e.key, e.tag, p.section, p.key)
		}
		seen[e.tag] = e
	}
	if s.IssuerOfPatientID != "" {
		if p, ok := seen[dicom.TagIssuerOfPatientID]; ok {
			return nil, specErr("issuer_of_patient_id: IssuerOfPatientID is also in %s (%q)", p.section, p.key)
		}
		if _, err := placeholders(s.IssuerOfPatientID); err != nil {
			return nil, specErr("issuer_of_patient_id: %v", err)
		}
	}
	if p, ok := seen[dicom.TagOtherPatientIDsSequence]; ok && p.section != "delete" || ok && (s.IssuerOfPatientID != "" || s.INS != nil) {
		return nil, specErr("%s: %q: Other Patient IDs Sequence is managed by issuer_of_patient_id and ins", p.section, p.key)
	}
	if s.INS != nil {
		if strings.TrimSpace(s.INS.Value) == "" {
			return nil, specErr("ins.value: empty (want a template such as \"{PatientID}\")")
		}
		if _, err := placeholders(s.INS.Value); err != nil {
			return nil, specErr("ins.value: %v", err)
		}
		if _, err := s.INS.OID(); err != nil {
			return nil, specErr("ins.kind: %v", err)
		}
	}
	return out, nil
}

// Validate checks the spec without an instance; errors name the bad key.
func (s Spec) Validate() error {
	_, err := s.entries()
	return err
}

// Empty reports whether the spec coerces nothing.
func (s Spec) Empty() bool {
	return len(s.Set) == 0 && len(s.Replace) == 0 && len(s.Delete) == 0 && len(s.Prefix) == 0 &&
		len(s.IfMissing) == 0 && s.IssuerOfPatientID == "" && s.INS == nil
}

// ValidINS reports whether v is a well-formed INS matricule: 15
// characters, 13 digits (the 6th and 7th may be 2A/2B for Corsica) and a
// 2-digit key equal to 97 - (number mod 97) with 2A → 19, 2B → 18.
func ValidINS(v string) bool {
	if len(v) != 15 {
		return false
	}
	num := v[:13]
	switch strings.ToUpper(num[5:7]) {
	case "2A":
		num = num[:5] + "19" + num[7:]
	case "2B":
		num = num[:5] + "18" + num[7:]
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return false
	}
	key, err := strconv.ParseUint(v[13:], 10, 8)
	if err != nil {
		return false
	}
	return key == 97-n%97
}

// Compile turns the spec into edit ops for one instance; attrs gives the
// instance's top-level UTF-8 values (e.g. from storage.Instance.Attrs).
func (s Spec) Compile(attrs func(tag dicom.Tag) (string, bool)) ([]dicom.EditOp, error) {
	entries, err := s.entries()
	if err != nil {
		return nil, err
	}
	var ops []dicom.EditOp
	// local Patient ID as it will be after this spec's own rules.
	pid, pidOK := "", false
	if attrs != nil {
		pid, pidOK = attrs(dicom.TagPatientID)
	}
	for _, e := range entries {
		v, tpl, err := Fill(e.value, attrs)
		if err != nil {
			return nil, err
		}
		if tpl && v == "" && e.section != "delete" {
			continue
		}
		var op dicom.EditOp
		switch e.section {
		case "set":
			op = dicom.SetOp(e.tag, v)
		case "replace":
			op = dicom.SetIfPresentOp(e.tag, v)
		case "prefix":
			op = dicom.PrefixOp(e.tag, v)
		case "if_missing":
			op = dicom.SetIfMissingOp(e.tag, v)
		case "delete":
			op = dicom.DeleteOp(e.tag)
		}
		ops = append(ops, op)
		if e.tag == dicom.TagPatientID {
			switch e.section {
			case "set":
				pid, pidOK = v, true
			case "replace":
				if pidOK {
					pid = v
				}
			case "prefix":
				if pidOK && pid != "" {
					pid = v + pid
				}
			case "if_missing":
				if pid == "" {
					pid, pidOK = v, true
				}
			case "delete":
				pid, pidOK = "", false
			}
		}
	}
	if s.IssuerOfPatientID != "" {
		issuer, _, err := Fill(s.IssuerOfPatientID, attrs)
		if err != nil {
			return nil, err
		}
		if issuer != "" {
			ops = append(ops, dicom.SetOp(dicom.TagIssuerOfPatientID, issuer))
			if pid != "" {
				op := dicom.AppendItemOp(dicom.TagOtherPatientIDsSequence,
					dicom.SetOp(dicom.TagPatientID, pid),
					dicom.SetOp(dicom.TagIssuerOfPatientID, issuer),
					dicom.SetOp(tagTypeOfPatientID, "TEXT"))
				op.SkipIfPresent = true
				ops = append(ops, op)
			}
		}
	}
	if s.INS != nil {
		ins, _, err := Fill(s.INS.Value, attrs)
		if err != nil {
			return nil, err
		}
		ins = strings.TrimSpace(ins)
		switch {
		case ValidINS(ins):
			oid, _ := s.INS.OID()
			ops = append(ops, INSItem(ins, s.INS.issuer(), oid))
		case s.INS.Required:
			if ins == "" {
				return nil, fmt.Errorf("coerce: ins: %q expands to nothing for this instance", s.INS.Value)
			}
			return nil, fmt.Errorf("coerce: ins: %q is not a well-formed INS (15 characters with a valid key)", ins)
		}
	}
	return ops, nil
}

// INSItem returns the op appending an INS to Other Patient IDs Sequence:
// Patient ID, Issuer of Patient ID, Type of Patient ID TEXT and Issuer of
// Patient ID Qualifiers Sequence with the OID as Universal Entity ID of
// type ISO; it is skipped when the sequence already has an item with the
// same ID, issuer and type (SkipIfPresent).
func INSItem(ins, issuer, oid string) dicom.EditOp {
	op := dicom.AppendItemOp(dicom.TagOtherPatientIDsSequence,
		dicom.SetOp(dicom.TagPatientID, ins),
		dicom.SetOp(dicom.TagIssuerOfPatientID, issuer),
		dicom.SetOp(tagTypeOfPatientID, "TEXT"),
		dicom.AppendItemOp(tagIssuerQualifiersSeq,
			dicom.SetOp(tagUniversalEntityID, oid),
			dicom.SetOp(tagUniversalEntityType, "ISO")))
	op.SkipIfPresent = true
	return op
}

// AttrsFromMap adapts an index record (8-hex tag → UTF-8 value, as
// storage.Instance.Attrs) to Compile.
func AttrsFromMap(m map[string]string) func(dicom.Tag) (string, bool) {
	return func(t dicom.Tag) (string, bool) {
		v, ok := m[fmt.Sprintf("%08X", uint32(t))]
		if !ok {
			v, ok = m[fmt.Sprintf("%08x", uint32(t))]
		}
		return v, ok
	}
}
