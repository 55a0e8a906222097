package identity

import (
	"errors"
	"strings"
	"testing"

	"github.com/relais-health/relais/storage"
)

const (
	insA     = "184127645108946" // valid key
	insB     = "269079901001248" // valid key
	ins2A    = "185122A00123450" // Corsica 2A (counts as 19)
	ins2B    = "290052B01234505" // Corsica 2B (counts as 18)
	insBad   = "184127645108947" // wrong key
	localOID = "1.2.250.1.999.1.1"
)

func TestValidINSKey(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{insA, true}, {insB, true}, {ins2A, true}, {ins2B, true},
		{strings.ToLower(ins2A), true},
		{insBad, false},
		{"185122A00123451", false}, // 2A, wrong key
		{"185122B00123450", false}, // 2B with the 2A key
		{"18412764510894", false},  // 14 characters
		{"1841276451089466", false},
		{"18412764510894X", false},
		{"1841A7645108946", false}, // letter outside Corsica
		{"", false},
	} {
		if got := ValidINSKey(tc.v); got != tc.want {
			t.Errorf("ValidINSKey(%q) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

func TestClassifyOID(t *testing.T) {
	for _, tc := range []struct {
		oid   string
		typ   Type
		env   Env
		known bool
	}{
		{"1.2.250.1.213.1.4.8", TypeINSNIR, EnvProduction, true},
		{"1.2.250.1.213.1.4.9", TypeINSNIA, EnvProduction, true},
		{"1.2.250.1.213.1.4.10", TypeINSNIR, EnvTest, true},
		{"1.2.250.1.213.1.4.11", TypeINSNIR, EnvDemo, true},
		{"1.2.250.1.213.1.4.2", TypeINSC, EnvProduction, true},
		{localOID, TypeOther, EnvProduction, false},
		{"ASIP-SANTE-INS-NIR", TypeOther, EnvProduction, false},
	} {
		typ, env, known := ClassifyOID(tc.oid)
		if typ != tc.typ || env != tc.env || known != tc.known {
			t.Errorf("ClassifyOID(%q) = %v %v %v, want %v %v %v", tc.oid, typ, env, known, tc.typ, tc.env, tc.known)
		}
	}
	for s, want := range map[string]bool{"1.2.250": true, "1": false, "1..2": false, "1.02": false, "1.2a": false, "": false} {
		if IsOID(s) != want {
			t.Errorf("IsOID(%q) != %v", s, want)
		}
	}
}

// quals returns the index value of an Issuer of Patient ID Qualifiers
// Sequence with one ISO Universal Entity ID.
func quals(t *testing.T, oid string) string {
	t.Helper()
	v, err := storage.EncodeItems([]map[string]string{{"00400032": oid, "00400033": "ISO"}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func others(t *testing.T, items ...map[string]string) string {
	t.Helper()
	v, err := storage.EncodeItems(items)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func otherItem(t *testing.T, id, issuer, oid string) map[string]string {
	it := map[string]string{"00100020": id, "00100021": issuer, "00100022": "TEXT"}
	if oid != "" {
		it["00100024"] = quals(t, oid)
	}
	return it
}

func TestFromAttrs(t *testing.T) {
	demo := map[string]string{
		"00100010": "DUPONT^Jean Pierre^Marie",
		"00100030": "19841227",
		"00100040": "M",
	}
	with := func(m map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range demo {
			out[k] = v
		}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	type want struct {
		local, localIssuer string
		ins, insOID        string // "" no INS
		insType            Type
		others             int
		status             Status
		warn               []string // substrings, each must appear in some warning
		noWarn             bool
	}
	for _, tc := range []struct {
		name  string
		attrs map[string]string
		opts  []Option
		want  want
	}{
		{
			name: "INS in Other Patient IDs",
			attrs: with(map[string]string{
				"00100020": "IPP123", "00100021": "CHSUD", "00100024": quals(t, localOID),
				"00101002": others(t, otherItem(t, insA, NamespaceINSNIR, OIDINSNIR), otherItem(t, "IPP123", "CHSUD", localOID)),
			}),
			want: want{local: "IPP123", localIssuer: localOID, ins: insA, insOID: OIDINSNIR, insType: TypeINSNIR,
				warn: []string{"birth place", "birth name taken from Patient's Name"}},
		},
		{
			name: "INS in Patient ID (ANS sample), local in Other Patient IDs",
			attrs: with(map[string]string{
				"00100020": insA, "00100021": NamespaceINSNIR, "00100024": quals(t, OIDINSNIR),
				"00101002": others(t, otherItem(t, insA, NamespaceINSNIR, OIDINSNIR), otherItem(t, "IPP9", "CHSUD", localOID), otherItem(t, "X77", "OTHER", "")),
				"00101005": "MARTIN",
			}),
			opts: []Option{WithLocalIssuer(localOID)},
			want: want{local: "IPP9", localIssuer: localOID, ins: insA, insOID: OIDINSNIR, insType: TypeINSNIR, others: 1,
				warn: []string{"birth place"}},
		},
		{
			name:  "no INS",
			attrs: with(map[string]string{"00100020": "IPP1", "00100021": "CHSUD"}),
			want:  want{local: "IPP1", localIssuer: "CHSUD", noWarn: true},
		},
		{
			name:  "no INS, issuer from configuration",
			attrs: with(map[string]string{"00100020": "IPP1"}),
			opts:  []Option{WithLocalIssuer(localOID)},
			want:  want{local: "IPP1", localIssuer: localOID, noWarn: true},
		},
		{
			name: "wrong key",
			attrs: with(map[string]string{
				"00100020": "IPP1", "00100021": "CHSUD",
				"00101002": others(t, otherItem(t, insBad, NamespaceINSNIR, OIDINSNIR)),
			}),
			want: want{local: "IPP1", localIssuer: "CHSUD", others: 1, warn: []string{"not a well-formed matricule INS"}},
		},
		{
			name: "test OID",
			attrs: with(map[string]string{
				"00100020": "IPP1", "00100021": "CHSUD",
				"00101002": others(t, otherItem(t, ins2A, NamespaceINSNIRTest, OIDINSNIRTest)),
			}),
			want: want{local: "IPP1", localIssuer: "CHSUD", ins: ins2A, insOID: OIDINSNIRTest, insType: TypeINSNIR, warn: []string{"test OID"}},
		},
		{
			name: "demo OID",
			attrs: with(map[string]string{
				"00100020": "IPP1", "00100021": "CHSUD",
				"00101002": others(t, otherItem(t, ins2B, NamespaceINSNIRDemo, OIDINSNIRDemo)),
			}),
			want: want{local: "IPP1", localIssuer: "CHSUD", ins: ins2B, insOID: OIDINSNIRDemo, insType: TypeINSNIR, warn: []string{"demo OID"}},
		},
		{
			name: "NIA",
			attrs: with(map[string]string{
				"00100020": "IPP1", "00100021": "CHSUD",
				"00101002": others(t, otherItem(t, insB, NamespaceINSNIA, OIDINSNIA)),
			}),
			want: want{local: "IPP1", localIssuer: "CHSUD", ins: insB, insOID: OIDINSNIA, insType: TypeINSNIA, warn: []string{"birth place"}},
		},
		{
			name: "two different INS: none used",
			attrs: with(map[string]string{
				"00100020": "IPP1", "00100021": "CHSUD",
				"00101002": others(t, otherItem(t, insA, "", OIDINSNIR), otherItem(t, insB, "", OIDINSNIR)),
			}),
			want: want{local: "IPP1", localIssuer: "CHSUD", others: 2, warn: []string{"2 different INS"}},
		},
		{
			name: "INS namespace without OID is not an INS",
			attrs: with(map[string]string{
				"00100020": "IPP1", "00100021": "CHSUD",
				"00101002": others(t, otherItem(t, insA, NamespaceINSNIR, "")),
			}),
			want: want{local: "IPP1", localIssuer: "CHSUD", others: 1, noWarn: true},
		},
		{
			name: "legacy INS-C kept as other",
			attrs: with(map[string]string{
				"00100020": "IPP1", "00100021": "CHSUD",
				"00101002": others(t, otherItem(t, "12345678901234567890", "", OIDINSC)),
			}),
			want: want{local: "IPP1", localIssuer: "CHSUD", others: 1, noWarn: true},
		},
		{
			name: "configured QUAL is capped at VALI",
			attrs: with(map[string]string{
				"00100020": "IPP1", "00100021": "CHSUD",
				"00101002": others(t, otherItem(t, insA, "", OIDINSNIR)),
			}),
			opts: []Option{WithStatus(QUAL)},
			want: want{local: "IPP1", localIssuer: "CHSUD", ins: insA, insOID: OIDINSNIR, insType: TypeINSNIR, status: VALI, warn: []string{"never taken from images"}},
		},
		{
			name:  "configured RECUP without INS is PROV",
			attrs: with(map[string]string{"00100020": "IPP1", "00100021": "CHSUD"}),
			opts:  []Option{WithStatus(RECUP)},
			want:  want{local: "IPP1", localIssuer: "CHSUD", status: PROV, warn: []string{"RECUP without an INS"}},
		},
		{
			name: "configured RECUP with INS",
			attrs: with(map[string]string{
				"00100020": insA, "00100021": NamespaceINSNIR, "00100024": quals(t, OIDINSNIR),
			}),
			opts: []Option{WithStatus(RECUP)},
			want: want{ins: insA, insOID: OIDINSNIR, insType: TypeINSNIR, status: RECUP, warn: []string{"no local patient identifier"}},
		},
		{
			name: "wrong key in Patient ID is neither INS nor local",
			attrs: with(map[string]string{
				"00100020": insBad, "00100021": NamespaceINSNIR, "00100024": quals(t, OIDINSNIR),
				"00101002": others(t, otherItem(t, "IPP5", "CHSUD", localOID)),
			}),
			want: want{local: "IPP5", localIssuer: localOID, others: 1, warn: []string{"not a well-formed matricule INS", "local identifier taken from Other Patient IDs"}},
		},
		{
			name: "INS-C in Patient ID is not local",
			attrs: with(map[string]string{
				"00100020": "12345678901234567890", "00100024": quals(t, OIDINSC),
			}),
			want: want{others: 1, warn: []string{"no local patient identifier"}},
		},
		{
			name:  "unreadable sequence",
			attrs: with(map[string]string{"00100020": "IPP1", "00100021": "CHSUD", "00101002": "{not json"}),
			want:  want{local: "IPP1", localIssuer: "CHSUD", warn: []string{"Other Patient IDs Sequence unreadable"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, warns := FromAttrs(tc.attrs, tc.opts...)
			w := tc.want
			if id.Local.Value != w.local || id.Local.Issuer != w.localIssuer {
				t.Errorf("local = %+v, want %s / %s", id.Local, w.local, w.localIssuer)
			}
			if w.local != "" && id.Local.Type != TypeLocal {
				t.Errorf("local type = %v", id.Local.Type)
			}
			switch {
			case w.ins == "" && id.INS != nil:
				t.Errorf("INS = %+v, want none", *id.INS)
			case w.ins != "" && id.INS == nil:
				t.Errorf("no INS, want %s", w.ins)
			case w.ins != "" && (id.INS.Value != w.ins || id.INS.Issuer != w.insOID || id.INS.Type != w.insType):
				t.Errorf("INS = %+v, want %s %s %v", *id.INS, w.ins, w.insOID, w.insType)
			}
			if len(id.Others) != w.others {
				t.Errorf("others = %+v, want %d", id.Others, w.others)
			}
			for _, o := range id.Others {
				if o.IsINS() {
					t.Errorf("other %+v typed as INS", o)
				}
			}
			if id.Status != w.status {
				t.Errorf("status = %v, want %v", id.Status, w.status)
			}
			for _, s := range w.warn {
				found := false
				for _, x := range warns {
					found = found || strings.Contains(x, s)
				}
				if !found {
					t.Errorf("no warning with %q in %q", s, warns)
				}
			}
			if w.noWarn && len(warns) > 0 {
				t.Errorf("warnings %q, want none", warns)
			}
			if id.Sex != "M" || id.BirthDate != "19841227" || id.FirstNames != "Jean Pierre Marie" {
				t.Errorf("traits = %+v", id.Traits)
			}
		})
	}
}

func TestFromAttrsBirthName(t *testing.T) {
	id, _ := FromAttrs(map[string]string{"00100010": "MARTIN^Anne=マーティン^アン", "00101005": "DURAND^", "00100040": "O", "00100030": "1984"})
	if id.BirthName != "DURAND" || id.FirstNames != "Anne" || id.Sex != "U" || id.BirthDate != "" {
		t.Errorf("traits = %+v", id.Traits)
	}
	if id.Status != PROV {
		t.Errorf("status = %v", id.Status)
	}
}

func TestStatusParse(t *testing.T) {
	for _, s := range []Status{PROV, RECUP, VALI, QUAL} {
		got, err := ParseStatus(strings.ToLower(s.String()))
		if err != nil || got != s {
			t.Errorf("ParseStatus(%s) = %v, %v", s, got, err)
		}
		var u Status
		b, _ := s.MarshalText()
		if err := u.UnmarshalText(b); err != nil || u != s {
			t.Errorf("text round trip %s: %v %v", s, u, err)
		}
	}
	if _, err := ParseStatus("QUALIFIED"); err == nil {
		t.Error("ParseStatus(QUALIFIED): no error")
	}
	if !(PROV < RECUP && RECUP < VALI && VALI < QUAL) {
		t.Error("statuses not ordered")
	}
	var zero Identity
	if zero.Status != PROV {
		t.Error("zero status not PROV")
	}
}

func TestUpgrade(t *testing.T) {
	ins := &Identifier{Value: insA, Issuer: OIDINSNIR, Type: TypeINSNIR}
	bad := &Identifier{Value: insBad, Issuer: OIDINSNIR, Type: TypeINSNIR}
	for _, tc := range []struct {
		from, to Status
		ins      *Identifier
		evidence string
		ok       bool
	}{
		{PROV, RECUP, ins, "INSi call 42", true},
		{PROV, RECUP, nil, "INSi call 42", false},
		{PROV, RECUP, bad, "INSi call 42", false},
		{PROV, RECUP, ins, "", false},
		{PROV, VALI, nil, "passport checked", true},
		{PROV, QUAL, ins, "everything", false}, // skips a step
		{RECUP, QUAL, ins, "ID card checked", true},
		{RECUP, VALI, ins, "ID card checked", false},
		{VALI, QUAL, ins, "INSi call 43", true},
		{VALI, QUAL, nil, "INSi call 43", false},
		{VALI, QUAL, ins, " ", false},
		{QUAL, PROV, ins, "", true}, // downgrades always allowed
		{QUAL, VALI, ins, "", true},
		{VALI, RECUP, nil, "", true},
		{RECUP, PROV, ins, "", true},
		{VALI, VALI, nil, "", true},
		{PROV, Status(7), nil, "x", false},
	} {
		id := Identity{Status: tc.from, INS: tc.ins}
		err := id.Upgrade(tc.to, tc.evidence)
		if (err == nil) != tc.ok {
			t.Errorf("%v → %v (INS %v, evidence %q): err = %v, want ok=%v", tc.from, tc.to, tc.ins != nil, tc.evidence, err, tc.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrTransition) {
				t.Errorf("%v → %v: error %v does not wrap ErrTransition", tc.from, tc.to, err)
			}
			if id.Status != tc.from || len(id.History) != 0 {
				t.Errorf("%v → %v refused but identity changed: %+v", tc.from, tc.to, id)
			}
			continue
		}
		if id.Status != tc.to {
			t.Errorf("%v → %v: status %v", tc.from, tc.to, id.Status)
		}
		if tc.from != tc.to && (len(id.History) != 1 || id.History[0] != (Transition{tc.from, tc.to, tc.evidence})) {
			t.Errorf("%v → %v: history %+v", tc.from, tc.to, id.History)
		}
	}
	// The full path PROV → RECUP → QUAL.
	id := Identity{INS: ins}
	if err := id.Upgrade(RECUP, "INSi"); err != nil {
		t.Fatal(err)
	}
	if err := id.Upgrade(QUAL, "ID card"); err != nil {
		t.Fatal(err)
	}
	if len(id.History) != 2 {
		t.Errorf("history %+v", id.History)
	}
}

func fullTraits() Traits {
	return Traits{BirthName: "DUPONT", FirstNames: "Jean", Sex: "M", BirthDate: "19841227", BirthPlace: "76451"}
}

func TestShareableINS(t *testing.T) {
	local := Identifier{Value: "IPP1", Issuer: localOID, Type: TypeLocal}
	mk := func(v, oid string, typ Type) *Identifier { return &Identifier{Value: v, Issuer: oid, Type: typ} }
	for _, tc := range []struct {
		name      string
		ins       *Identifier
		status    Status
		allowTest bool
		want      bool
	}{
		{"QUAL production NIR", mk(insA, OIDINSNIR, TypeINSNIR), QUAL, false, true},
		{"QUAL production NIA", mk(insB, OIDINSNIA, TypeINSNIA), QUAL, false, true},
		{"VALI", mk(insA, OIDINSNIR, TypeINSNIR), VALI, false, false},
		{"RECUP", mk(insA, OIDINSNIR, TypeINSNIR), RECUP, false, false},
		{"PROV", mk(insA, OIDINSNIR, TypeINSNIR), PROV, false, false},
		{"no INS", nil, QUAL, false, false},
		{"bad key", mk(insBad, OIDINSNIR, TypeINSNIR), QUAL, false, false},
		{"test OID", mk(insA, OIDINSNIRTest, TypeINSNIR), QUAL, false, false},
		{"test OID allowed", mk(insA, OIDINSNIRTest, TypeINSNIR), QUAL, true, true},
		{"demo OID", mk(insA, OIDINSNIRDemo, TypeINSNIR), QUAL, false, false},
		{"demo OID allowed", mk(insA, OIDINSNIRDemo, TypeINSNIR), QUAL, true, true},
		{"other typed", mk(insA, OIDINSNIR, TypeOther), QUAL, false, false},
	} {
		id := Identity{Local: local, INS: tc.ins, Status: tc.status, Traits: fullTraits()}
		var opts []ShareOption
		if tc.allowTest {
			opts = append(opts, AllowTestINS())
		}
		got, ok := id.ShareableINS(opts...)
		if ok != tc.want || (got != nil) != tc.want {
			t.Errorf("%s: ShareableINS = %v, %v; want %v", tc.name, got, ok, tc.want)
		}
		d := id.ForDocument(opts...)
		if d.UsesINS != tc.want {
			t.Errorf("%s: ForDocument = %+v", tc.name, d)
		}
		if tc.want && (d.Value != tc.ins.Value || d.Root != tc.ins.Issuer || d.IssuerOfPatientID == "" || d.Reason != "") {
			t.Errorf("%s: ForDocument = %+v", tc.name, d)
		}
		if !tc.want && (d.Value != "IPP1" || d.Root != localOID || d.Reason == "") {
			t.Errorf("%s: ForDocument = %+v", tc.name, d)
		}
		p, reason := id.CDAPatient(opts...)
		if p.UsesINS() != tc.want || (reason == "") != tc.want || p.LocalID != "IPP1" || p.LocalIDRoot != localOID {
			t.Errorf("%s: CDAPatient = %+v, %q", tc.name, p, reason)
		}
		if p.IdentityStatus != tc.status.String() {
			t.Errorf("%s: CDA status %q", tc.name, p.IdentityStatus)
		}
	}
}

func TestForDocumentMissingTraits(t *testing.T) {
	id := Identity{
		Local:  Identifier{Value: "IPP1", Issuer: "CHSUD", Namespace: "CHSUD", Type: TypeLocal},
		INS:    &Identifier{Value: insA, Issuer: OIDINSNIR, Type: TypeINSNIR},
		Status: QUAL,
		Traits: Traits{BirthName: "DUPONT", FirstNames: "Jean", Sex: "M", BirthDate: "19841227"},
	}
	if _, ok := id.ShareableINS(); !ok {
		t.Fatal("ShareableINS refused")
	}
	d := id.ForDocument()
	if d.UsesINS || !strings.Contains(d.Reason, "birth place") || d.Value != "IPP1" || d.Root != "" || d.IssuerOfPatientID != "CHSUD" {
		t.Errorf("ForDocument = %+v", d)
	}
	id.BirthPlace = "76451"
	d = id.ForDocument()
	if !d.UsesINS || d.IssuerOfPatientID != NamespaceINSNIR {
		t.Errorf("ForDocument = %+v", d)
	}
	p, _ := id.CDAPatient()
	if !p.UsesINS() || p.INSOID != OIDINSNIR || p.BirthDate.Format("20060102") != "19841227" || p.LocalIDRoot != "" {
		t.Errorf("CDAPatient = %+v", p)
	}
}
