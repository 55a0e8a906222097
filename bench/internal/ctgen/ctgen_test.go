package ctgen

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// walk parses explicit VR little endian elements and returns tag -> value.
func walk(t *testing.T, b []byte) (map[Tag][]byte, []Tag) {
	t.Helper()
	vals := map[Tag][]byte{}
	var order []Tag
	for len(b) > 0 {
		if len(b) < 8 {
			t.Fatalf("truncated element header")
		}
		tag := Tag(uint32(binary.LittleEndian.Uint16(b))<<16 | uint32(binary.LittleEndian.Uint16(b[2:])))
		vr := string(b[4:6])
		var n, hdr int
		if longVR(vr) {
			n, hdr = int(binary.LittleEndian.Uint32(b[8:])), 12
		} else {
			n, hdr = int(binary.LittleEndian.Uint16(b[6:])), 8
		}
		if n%2 != 0 {
			t.Errorf("%v %s: odd length %d", tag, vr, n)
		}
		if len(order) > 0 && tag <= order[len(order)-1] {
			t.Errorf("%v not after %v", tag, order[len(order)-1])
		}
		vals[tag] = b[hdr : hdr+n]
		order = append(order, tag)
		b = b[hdr+n:]
	}
	return vals, order
}

func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	paths, err := Generate(dir, Options{N: 3, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	sops := map[string]bool{}
	var study string
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b[:128], make([]byte, 128)) || string(b[128:132]) != "DICM" {
			t.Fatal("bad preamble")
		}
		b = b[132:]
		glen := int(binary.LittleEndian.Uint32(b[8:12]))
		meta, _ := walk(t, b[:12+glen])
		ds, _ := walk(t, b[12+glen:])
		if got := strings.TrimRight(string(meta[0x00020010]), "\x00"); got != ExplicitVRLittleEndian {
			t.Errorf("transfer syntax %q", got)
		}
		sop := strings.TrimRight(string(ds[0x00080018]), "\x00")
		if sop != strings.TrimRight(string(meta[0x00020003]), "\x00") {
			t.Errorf("meta SOP instance differs from dataset")
		}
		if !strings.HasPrefix(sop, "2.25.") || len(sop) > 64 || sops[sop] {
			t.Errorf("bad or duplicate SOP instance UID %q", sop)
		}
		sops[sop] = true
		st := string(ds[0x0020000D])
		if i > 0 && st != study {
			t.Errorf("study UID differs between instances")
		}
		study = st
		if n := len(ds[0x7FE00010]); n != Size*Size*2 {
			t.Errorf("pixel data %d bytes", n)
		}
		if filepath.Base(p) != []string{"CT000001.dcm", "CT000002.dcm", "CT000003.dcm"}[i] {
			t.Errorf("file name %s", p)
		}
	}
}

func TestPadding(t *testing.T) {
	var buf bytes.Buffer
	err := writeElements(&buf, []Element{Str(0x00100010, "PN", "ABC"), Str(0x00080018, "UI", "1.2.3")})
	if err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	// (0008,0018) sorts first; "1.2.3" is padded with NUL, "ABC" with a space.
	if !bytes.Equal(b[8:14], []byte("1.2.3\x00")) || !bytes.Equal(b[22:26], []byte("ABC ")) {
		t.Errorf("padding: % x", b)
	}
}
