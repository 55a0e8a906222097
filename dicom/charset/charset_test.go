package charset

import (
	"errors"
	"strings"
	"testing"
)

func hexBytes(t *testing.T, s string) []byte {
	t.Helper()
	var out []byte
	for _, f := range strings.Fields(s) {
		var b byte
		for _, c := range f {
			b <<= 4
			switch {
			case c >= '0' && c <= '9':
				b |= byte(c - '0')
			case c >= 'a' && c <= 'f':
				b |= byte(c-'a') + 10
			case c >= 'A' && c <= 'F':
				b |= byte(c-'A') + 10
			default:
				t.Fatalf("bad hex %q", f)
			}
		}
		out = append(out, b)
	}
	return out
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name string
		scs  []string
		vr   string
		hex  string // value bytes
		want string
	}{
		// PS3.5 Annex H.3.1: ISO 2022 IR 87, value 1 empty.
		{"H.3.1 Japanese JIS X 0208", []string{"", "ISO 2022 IR 87"}, "PN",
			"59 61 6d 61 64 61 5e 54 61 72 6f 75 3d 1b 24 42 3b 33 45 44 1b 28 42 5e 1b 24 42 42 40 4f 3a 1b 28 42 3d 1b 24 42 24 64 24 5e 24 40 1b 28 42 5e 1b 24 42 24 3f 24 6d 24 26 1b 28 42",
			"Yamada^Tarou=山田^太郎=やまだ^たろう"},
		// PS3.5 Annex H.3.2: ISO 2022 IR 13 (half-width katakana) + IR 87.
		{"H.3.2 Japanese JIS X 0201 + 0208", []string{"ISO 2022 IR 13", "ISO 2022 IR 87"}, "PN",
			"d4 cf c0 de 5e c0 db b3 3d 1b 24 42 3b 33 45 44 1b 28 4a 5e 1b 24 42 42 40 4f 3a 1b 28 4a 3d 1b 24 42 24 64 24 5e 24 40 1b 28 4a 5e 1b 24 42 24 3f 24 6d 24 26 1b 28 4a",
			"ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"},
		// PS3.5 Annex I.2: Korean, ISO 2022 IR 149 in G1.
		{"I.2 Korean KS X 1001", []string{"", "ISO 2022 IR 149"}, "PN",
			"48 6f 6e 67 5e 47 69 6c 64 6f 6e 67 3d 1b 24 29 43 fb f3 5e 1b 24 29 43 d1 ce d4 d7 3d 1b 24 29 43 c8 ab 5e 1b 24 29 43 b1 e6 b5 bf",
			"Hong^Gildong=洪^吉洞=홍^길동"},
		// PS3.5 Annex J.3: GB18030.
		{"J.3 GB18030", []string{"GB18030"}, "PN",
			"57 61 6e 67 5e 58 69 61 6f 44 6f 6e 67 3d cd f5 5e d0 a1 b6 ab 3d",
			"Wang^XiaoDong=王^小东="},
		// PS3.5 Annex K: ISO 2022 IR 58 (GB 2312 in G1).
		{"K GB2312", []string{"", "ISO 2022 IR 58"}, "PN",
			"5a 68 61 6e 67 5e 58 69 61 6f 44 6f 6e 67 3d 1b 24 29 41 d5 c5 5e 1b 24 29 41 d0 a1 b6 ab 3d",
			"Zhang^XiaoDong=张^小东="},
		{"default ascii", nil, "LO", "41 42 43", "ABC"},
		{"default with latin1 bytes", []string{""}, "PN", "4d fc 6c 6c 65 72", "Müller"},
		{"ISO_IR 100", []string{"ISO_IR 100"}, "PN", "44 e9 6a e0 5e 56 75", "Déjà^Vu"},
		{"ISO_IR 101", []string{"ISO_IR 101"}, "PN", "57 61 b3 ea 73 61", "Wałęsa"},
		{"ISO_IR 109", []string{"ISO_IR 109"}, "LO", "a6", "Ĥ"},
		{"ISO_IR 110", []string{"ISO_IR 110"}, "LO", "a1", "Ą"},
		{"ISO_IR 144 Cyrillic", []string{"ISO_IR 144"}, "PN", "bb ee da 63 65 dc d1 79 70 d3 5e b4 d5 dd d8 e1", "Люкceмбypг^Денис"},
		{"ISO_IR 127 Arabic", []string{"ISO_IR 127"}, "PN", "e2 c8 c7 e6 ea 5e e4 e6 d2 c7 d1", "قباني^لنزار"},
		{"ISO_IR 126 Greek", []string{"ISO_IR 126"}, "PN", "c4 e9 ef ed f5 f3 e9 ef f2", "Διονυσιος"},
		{"ISO_IR 138 Hebrew", []string{"ISO_IR 138"}, "PN", "f9 f8 e5 ef 5e e3 e1 e5 f8 e4", "שרון^דבורה"},
		{"ISO_IR 148 Turkish", []string{"ISO_IR 148"}, "PN", "c7 61 76 75 fe", "Çavuş"},
		{"ISO_IR 203 euro", []string{"ISO_IR 203"}, "LO", "a4", "€"},
		{"ISO_IR 166 Thai", []string{"ISO_IR 166"}, "LO", "a1 d2 c3", "การ"},
		{"ISO_IR 13 katakana", []string{"ISO_IR 13"}, "PN", "d4 cf c0 de", "ﾔﾏﾀﾞ"},
		{"ISO_IR 192 UTF-8", []string{"ISO_IR 192"}, "PN", "57 61 6e 67 5e 58 69 61 6f 44 6f 6e 67 3d e7 8e 8b 5e e5 b0 8f e6 9d b1 3d", "Wang^XiaoDong=王^小東="},
		{"GBK", []string{"GBK"}, "LO", "cd f5", "王"},
		{"ISO 2022 IR 100 with escapes", []string{"ISO 2022 IR 100"}, "LO", "e9 1b 2d 42 b3", "éł"},
		{"escape reset at backslash", []string{"", "ISO 2022 IR 149"}, "LO", "1b 24 29 43 c8 ab 5c c8", "홍\\È"},
		{"escape reset at caret only for PN", []string{"", "ISO 2022 IR 87"}, "LO", "1b 24 42 3b 33 1b 28 42 5e 1b 24 42 45 44", "山^田"},
		{"JIS X 0212", []string{"", "ISO 2022 IR 159"}, "PN", "1b 24 28 44 30 21 1b 28 42", "丂"},
		{"JIS G0 reset after delimiter in text", []string{"", "ISO 2022 IR 87"}, "LT", "1b 24 42 3b 33 0d 0a 41", "山\r\nA"},
		{"multibyte containing 5E keeps going", []string{"", "ISO 2022 IR 87"}, "PN", "1b 24 42 24 5e 1b 28 42", "ま"},
		{"truncated multibyte", []string{"", "ISO 2022 IR 87"}, "PN", "1b 24 42 3b", "\uFFFD"},
		{"unknown escape dropped", []string{"", "ISO 2022 IR 87"}, "PN", "1b 41", "A"},
		{"padded term", []string{"ISO_IR 100 "}, "PN", "e9", "é"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.scs, tc.vr, hexBytes(t, tc.hex))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDecodeUnknown(t *testing.T) {
	got, err := Decode([]string{"ISO_IR 999"}, "PN", []byte("abc\xe9"))
	if !errors.Is(err, ErrUnknownCharset) {
		t.Fatalf("err = %v", err)
	}
	if got != "abcé" {
		t.Errorf("best effort = %q", got)
	}
}

func TestEncode(t *testing.T) {
	tests := []struct {
		cs, s, hex string
		err        error
	}{
		{"", "ABC", "41 42 43", nil},
		{"ISO_IR 6", "é", "", ErrUnencodable},
		{"ISO_IR 100", "Déjà^Vu", "44 e9 6a e0 5e 56 75", nil},
		{"ISO_IR 101", "Wałęsa", "57 61 b3 ea 73 61", nil},
		{"ISO_IR 144", "Денис", "b4 d5 dd d8 e1", nil},
		{"ISO_IR 126", "Διονυσιος", "c4 e9 ef ed f5 f3 e9 ef f2", nil},
		{"ISO_IR 203", "€", "a4", nil},
		{"ISO_IR 100", "山", "", ErrUnencodable},
		{"ISO_IR 192", "山田", "e5 b1 b1 e7 94 b0", nil},
		{"GB18030", "王^小东", "cd f5 5e d0 a1 b6 ab", nil},
		{"ISO 2022 IR 87", "山", "", ErrUnknownCharset},
		{"KOI8", "x", "", ErrUnknownCharset},
	}
	for _, tc := range tests {
		t.Run(tc.cs+"/"+tc.s, func(t *testing.T) {
			got, err := Encode(tc.cs, tc.s)
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if want := hexBytes(t, tc.hex); string(got) != string(want) {
				t.Errorf("got % x, want % x", got, want)
			}
			back, err := Decode([]string{tc.cs}, "PN", got)
			if err != nil || back != tc.s {
				t.Errorf("round trip = %q, %v", back, err)
			}
		})
	}
}

func FuzzCharsetDecode(f *testing.F) {
	f.Add("\\ISO 2022 IR 87", "PN", []byte("Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B"))
	f.Add("\\ISO 2022 IR 149", "PN", []byte("Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7"))
	f.Add("ISO 2022 IR 13\\ISO 2022 IR 87", "LO", []byte("\xd4\xcf\x1b$B;3\x1b(J"))
	f.Add("GB18030", "PN", []byte("\xcd\xf5^\xd0\xa1"))
	f.Add("ISO_IR 192", "LT", []byte("\xff\xfe"))
	f.Add("ISO_IR 100", "PN", []byte("\xe9"))
	f.Add("\\ISO 2022 IR 58\\ISO 2022 IR 159", "UT", []byte("\x1b$)A\xd5\x1b$(D0"))
	f.Fuzz(func(t *testing.T, scs, vr string, value []byte) {
		s, _ := Decode(strings.Split(scs, "\\"), vr, value)
		if !utf8Valid(s) {
			t.Fatalf("invalid UTF-8 output %q", s)
		}
	})
}
