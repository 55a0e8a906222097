package retrieve

import (
	"errors"
	"testing"

	"github.com/relais-health/relais/dicom"
)

// FuzzParseIdentifier: any identifier bytes give keys or an A900
// identifier error, never a panic; valid keys re-encode to the same keys.
func FuzzParseIdentifier(f *testing.F) {
	for _, k := range []Keys{
		{Level: "STUDY", Studies: []string{"1.2.3", "1.2.4"}},
		{Level: "PATIENT", PatientID: "P1"},
		{Level: "IMAGE", Instances: []string{"1.2.3.4"}},
	} {
		b, _ := k.Encode(dicom.ExplicitVRLittleEndian)
		f.Add(b, true)
		b, _ = k.Encode(dicom.ImplicitVRLittleEndian)
		f.Add(b, false)
	}
	f.Fuzz(func(t *testing.T, data []byte, explicit bool) {
		ts := dicom.ImplicitVRLittleEndian
		if explicit {
			ts = dicom.ExplicitVRLittleEndian
		}
		k, err := ParseIdentifier(data, ts, PatientRootMove)
		if err != nil {
			if !errors.Is(err, ErrIdentifier) {
				t.Fatalf("error not wrapping ErrIdentifier: %v", err)
			}
			return
		}
		b, err := k.Encode(ts)
		if err != nil {
			return // e.g. a value too long to re-encode
		}
		k2, err := ParseIdentifier(b, ts, PatientRootMove)
		if err != nil || k2.Level != k.Level || k2.PatientID != k.PatientID || len(k2.Studies) != len(k.Studies) ||
			len(k2.Series) != len(k.Series) || len(k2.Instances) != len(k.Instances) {
			t.Fatalf("round trip: %+v -> %+v (%v)", k, k2, err)
		}
	})
}

// TestNonASCIIPatientIDRoundTrip is the crash FuzzParseIdentifier found: a
// Latin-1 Patient ID was re-encoded in UTF-8 without saying so.
func TestNonASCIIPatientIDRoundTrip(t *testing.T) {
	for _, ts := range []string{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian} {
		k := Keys{Level: "PATIENT", PatientID: "0Ð"}
		b, err := k.Encode(ts)
		if err != nil {
			t.Fatal(err)
		}
		k2, err := ParseIdentifier(b, ts, PatientRootMove)
		if err != nil || k2.PatientID != k.PatientID {
			t.Fatalf("%s: %q -> %q (%v)", ts, k.PatientID, k2.PatientID, err)
		}
	}
}

// TestUIDListPadding is the crash FuzzParseIdentifier found: a UID list
// element padded with a NUL and control characters was kept as a UID, then
// lost when re-encoded.
func TestUIDListPadding(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"1.2.3", []string{"1.2.3"}},
		{`1.2.3\1.2.4`, []string{"1.2.3", "1.2.4"}},
		{"\r\x00\x0c  \\000000", []string{"000000"}},
		{" 1.2 \\\x00\\1.3\x00", []string{"1.2", "1.3"}},
		{`\\`, nil},
	} {
		got := splitUIDs(tc.in)
		if len(got) != len(tc.want) {
			t.Fatalf("splitUIDs(%q) = %q, want %q", tc.in, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("splitUIDs(%q) = %q, want %q", tc.in, got, tc.want)
			}
		}
	}
}

// TestUndefinedBytePatientIDRoundTrip is the crash FuzzParseIdentifier
// found next: a Patient ID byte that no character set of the identifier
// defines (0xD0 without Specific Character Set) was kept raw, then lost
// when re-encoded in UTF-8.
func TestUndefinedBytePatientIDRoundTrip(t *testing.T) {
	raw := []byte("\b\x00R\x00AS\b\x00PATIENT \x10\x00 \x00AS\x02\x000\xd0")
	k, err := ParseIdentifier(raw, dicom.ExplicitVRLittleEndian, PatientRootMove)
	if err != nil {
		t.Fatal(err)
	}
	if k.PatientID != "0\uFFFD" {
		t.Fatalf("PatientID %q, want the undefined byte as U+FFFD", k.PatientID)
	}
	b, err := k.Encode(dicom.ExplicitVRLittleEndian)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := ParseIdentifier(b, dicom.ExplicitVRLittleEndian, PatientRootMove)
	if err != nil || k2.PatientID != k.PatientID {
		t.Fatalf("round trip %q -> %q (%v)", k.PatientID, k2.PatientID, err)
	}
}
