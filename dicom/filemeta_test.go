package dicom

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestFileMetaRoundTrip(t *testing.T) {
	tests := []FileMeta{
		{MediaStorageSOPClassUID: CTImageStorage, MediaStorageSOPInstanceUID: "1.2.3.4.5", TransferSyntaxUID: ExplicitVRLittleEndian},
		{MediaStorageSOPClassUID: CTImageStorage, MediaStorageSOPInstanceUID: "1.2.3.4", TransferSyntaxUID: ImplicitVRLittleEndian,
			ImplementationClassUID: "1.2.3", ImplementationVersionName: "X1", SourceApplicationEntityTitle: "MODALITY1"},
	}
	for _, m := range tests {
		var b bytes.Buffer
		n, err := WriteFileMeta(&b, m)
		must(t, err)
		if n != int64(b.Len()) || n%2 != 0 {
			t.Errorf("n = %d, len = %d", n, b.Len())
		}
		b.WriteString("rest")
		got, off, err := ReadFileMeta(&b)
		must(t, err)
		if off != n {
			t.Errorf("offset = %d, want %d", off, n)
		}
		if b.String() != "rest" {
			t.Error("ReadFileMeta consumed dataset bytes")
		}
		if m.ImplementationClassUID == "" {
			m.ImplementationClassUID = DefaultImplementationClassUID
			m.ImplementationVersionName = DefaultImplementationVersionName
		}
		if got != m {
			t.Errorf("got %+v, want %+v", got, m)
		}
	}
}

func TestReadFileMetaWithoutGroupLength(t *testing.T) {
	var b bytes.Buffer
	b.Write(make([]byte, 128))
	b.WriteString("DICM")
	e := NewEncoder(&b, tsExplicit)
	e.WriteString(TagMediaStorageSOPClassUID, VRUI, CTImageStorage)
	e.WriteString(TagTransferSyntaxUID, VRUI, ImplicitVRLittleEndian)
	metaLen := int64(b.Len())
	b.WriteString("\x08\x00\x05\x00")
	m, off, err := ReadFileMeta(bufio.NewReader(bytes.NewReader(b.Bytes())))
	must(t, err)
	if off != metaLen || m.TransferSyntaxUID != ImplicitVRLittleEndian {
		t.Errorf("off = %d (want %d), meta %+v", off, metaLen, m)
	}
	if _, _, err := ReadFileMeta(bytes.NewReader(b.Bytes())); !errors.Is(err, ErrMalformed) {
		t.Errorf("non-peekable reader: err = %v", err)
	}
}

func TestReadFileMetaErrors(t *testing.T) {
	good := func() []byte {
		var b bytes.Buffer
		WriteFileMeta(&b, FileMeta{MediaStorageSOPClassUID: CTImageStorage, MediaStorageSOPInstanceUID: "1.2", TransferSyntaxUID: ExplicitVRLittleEndian})
		return b.Bytes()
	}()
	huge := append([]byte(nil), good[:144]...)
	binary.LittleEndian.PutUint32(huge[140:], 1<<20)
	lying := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(lying[140:], binary.LittleEndian.Uint32(lying[140:])+40)
	noTS := func() []byte {
		var b bytes.Buffer
		WriteFileMeta(&b, FileMeta{MediaStorageSOPClassUID: CTImageStorage})
		return b.Bytes()
	}()
	badInner := append([]byte(nil), good...)
	badInner[144+4] = 'Z' // VR of the version element
	tests := []struct {
		name string
		data []byte
		want error
	}{
		{"empty", nil, ErrNotPart10},
		{"short", make([]byte, 100), ErrNotPart10},
		{"no DICM", make([]byte, 200), ErrNotPart10},
		{"truncated group", good[:len(good)-5], ErrTruncated},
		{"group length over 64 KiB", huge, ErrLimitExceeded},
		{"group length past data", lying, ErrTruncated},
		{"missing transfer syntax", noTS, ErrMalformed},
		{"invalid VR", badInner, ErrMalformed},
		{"no header after DICM", good[:134], ErrTruncated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ReadFileMeta(bytes.NewReader(tc.data))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func writePart10(t *testing.T, path string, ts TransferSyntax, dataset []byte) {
	t.Helper()
	var b bytes.Buffer
	_, err := WriteFileMeta(&b, FileMeta{MediaStorageSOPClassUID: CTImageStorage, MediaStorageSOPInstanceUID: "1.2.3.4.5.6.7", TransferSyntaxUID: ts.UID})
	must(t, err)
	b.Write(dataset)
	must(t, os.WriteFile(path, b.Bytes(), 0o644))
}

// readPart10 returns the transfer syntax and dataset bytes of a Part 10 file.
func readPart10(t *testing.T, path string) (TransferSyntax, []byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	must(t, err)
	m, off, err := ReadFileMeta(bytes.NewReader(data))
	must(t, err)
	ts, ok := LookupTransferSyntax(m.TransferSyntaxUID)
	if !ok {
		t.Fatalf("unknown transfer syntax %q", m.TransferSyntaxUID)
	}
	return ts, data[off:]
}

func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "E:") || strings.HasPrefix(line, "W:") || strings.HasPrefix(line, "F:") {
			t.Errorf("%s reports: %s", name, line)
		}
	}
	return string(out)
}

// TestDCMTKCrossCheck checks files we write against dcmtk, a real peer:
// dcmdump must read them, and dcmconv's conversions must scan cleanly and be
// byte-identical to Transcode's.
func TestDCMTKCrossCheck(t *testing.T) {
	for _, tool := range []string{"dcmdump", "dcmconv"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: install dcmtk (apt-get install dcmtk); .ci/run does", tool)
		}
	}
	dir := t.TempDir()
	for _, undef := range []bool{false, true} {
		o := fixtureOpts{undefinedSeq: undef, pixelBytes: 4096}
		for _, ts := range nativeSyntaxes {
			src := filepath.Join(dir, "src.dcm")
			dataset := buildFixture(t, ts, o)
			writePart10(t, src, ts, dataset)
			dump := runTool(t, "dcmdump", "-q", "+L", src)
			if !strings.Contains(dump, "Hans") || !strings.Contains(dump, "OTHER2") || !strings.Contains(dump, "Localizer") {
				t.Fatalf("dcmdump output lacks expected values:\n%s", dump)
			}
			for _, conv := range []struct {
				flag string
				to   TransferSyntax
			}{{"+ti", tsImplicit}, {"+te", tsExplicit}, {"+tb", tsBig}} {
				dst := filepath.Join(dir, "dst.dcm")
				lengths := "+e" // dcmconv rewrites all lengths: explicit ...
				if undef {
					lengths = "-e" // ... or undefined
				}
				runTool(t, "dcmconv", conv.flag, lengths, src, dst)
				gotTS, theirs := readPart10(t, dst)
				if gotTS.UID != conv.to.UID {
					t.Fatalf("dcmconv wrote %s", gotTS.UID)
				}
				res, err := Scan(bytes.NewReader(theirs), gotTS, DefaultLimits(), fixtureWant)
				if err != nil {
					t.Fatalf("%s -> %s (undefined=%v): dcmconv output does not scan: %v", ts.Name, conv.to.Name, undef, err)
				}
				checkFixtureScan(t, res, len(theirs), true)
				ours := transcode(t, dataset, ts, conv.to)
				if !bytes.Equal(ours, theirs) {
					t.Errorf("%s -> %s (undefined=%v): Transcode differs from dcmconv %s (%d vs %d bytes) at byte %d",
						ts.Name, conv.to.Name, undef, conv.flag, len(ours), len(theirs), firstDiff(ours, theirs))
				}
			}
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if i >= len(b) || a[i] != b[i] {
			return i
		}
	}
	return len(a)
}
