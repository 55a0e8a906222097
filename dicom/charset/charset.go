// Package charset converts DICOM character data between the character sets
// named by Specific Character Set (0008,0005) and UTF-8 (PS3.5 section 6.1
// and Annexes H, I, J), including ISO 2022 code extensions with escape
// sequences for Japanese, Korean and Chinese.
package charset

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/korean"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// ErrUnknownCharset is returned (wrapped) for a Specific Character Set term
// this package does not know. Decode still returns a best-effort string,
// decoding unknown bytes as ISO 8859-1.
var ErrUnknownCharset = errors.New("charset: unknown specific character set")

// ErrUnencodable is returned (wrapped) by Encode when a character has no
// representation in the target character set.
var ErrUnencodable = errors.New("charset: character not representable")

type g0Set uint8

const (
	g0ASCII g0Set = iota
	g0Romaji
	g0JIS0208
	g0JIS0212
)

type g1Kind uint8

const (
	g1None g1Kind = iota
	g1Charmap
	g1Katakana
	g1KSX1001
	g1GB2312
)

type g1Set struct {
	kind g1Kind
	cm   *charmap.Charmap
}

type state struct {
	g0 g0Set
	g1 g1Set
}

// single-byte character sets, by defined term (both ISO_IR and
// ISO 2022 IR spellings) and by ISO 2022 final byte of ESC 02/13 F.
var singleByte = map[string]*charmap.Charmap{
	"100": charmap.ISO8859_1,
	"101": charmap.ISO8859_2,
	"109": charmap.ISO8859_3,
	"110": charmap.ISO8859_4,
	"144": charmap.ISO8859_5,
	"127": charmap.ISO8859_6,
	"126": charmap.ISO8859_7,
	"138": charmap.ISO8859_8,
	"148": charmap.ISO8859_9,
	"203": charmap.ISO8859_15,
	"166": charmap.Windows874, // TIS 620-2533 (a subset of Windows-874)
}

var g1Final = map[byte]*charmap.Charmap{
	'A': charmap.ISO8859_1,
	'B': charmap.ISO8859_2,
	'C': charmap.ISO8859_3,
	'D': charmap.ISO8859_4,
	'L': charmap.ISO8859_5,
	'G': charmap.ISO8859_6,
	'F': charmap.ISO8859_7,
	'H': charmap.ISO8859_8,
	'M': charmap.ISO8859_9,
	'T': charmap.Windows874,
	'b': charmap.ISO8859_15,
}

// irNumber returns the registration number of a defined term such as
// "ISO_IR 100" or "ISO 2022 IR 100", and whether it was an ISO 2022 term.
func irNumber(term string) (num string, iso2022 bool, ok bool) {
	switch {
	case strings.HasPrefix(term, "ISO_IR "):
		return strings.TrimSpace(term[len("ISO_IR "):]), false, true
	case strings.HasPrefix(term, "ISO 2022 IR "):
		return strings.TrimSpace(term[len("ISO 2022 IR "):]), true, true
	}
	return "", false, false
}

// initialState returns the G0/G1 designation for a defined term.
func initialState(term string) (state, error) {
	if term == "" {
		return state{}, nil
	}
	num, _, ok := irNumber(term)
	if !ok {
		return state{}, fmt.Errorf("%w: %q", ErrUnknownCharset, term)
	}
	switch num {
	case "6":
		return state{}, nil
	case "13":
		return state{g0: g0Romaji, g1: g1Set{kind: g1Katakana}}, nil
	case "87":
		return state{g0: g0JIS0208}, nil
	case "159":
		return state{g0: g0JIS0212}, nil
	case "149":
		return state{g1: g1Set{kind: g1KSX1001}}, nil
	case "58":
		return state{g1: g1Set{kind: g1GB2312}}, nil
	}
	if cm, ok := singleByte[num]; ok {
		return state{g1: g1Set{kind: g1Charmap, cm: cm}}, nil
	}
	return state{}, fmt.Errorf("%w: %q", ErrUnknownCharset, term)
}

func normalize(scs []string) []string {
	out := make([]string, len(scs))
	for i, s := range scs {
		out[i] = strings.TrimSpace(strings.Trim(s, "\x00"))
	}
	for len(out) > 1 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

// Decode converts a value of VR vr (e.g. "PN", "LO", "LT") encoded with the
// given Specific Character Set values to UTF-8. An empty set means the
// default repertoire; bytes outside it are decoded as ISO 8859-1, as many
// systems write Latin-1 without declaring it. With several values, or a
// value naming an ISO 2022 term, escape sequences switch G0 and G1 and the
// initial set is restored after each delimiter (PS3.5 6.1.2.5.3). Invalid
// byte sequences decode to U+FFFD; only an unknown defined term is an error
// (returned with a best-effort string).
func Decode(specificCharacterSet []string, vr string, value []byte) (string, error) {
	scs := normalize(specificCharacterSet)
	if len(scs) == 0 {
		return decodeLatin1(value), nil
	}
	if len(scs) == 1 {
		switch scs[0] {
		case "", "ISO_IR 6":
			return decodeLatin1(value), nil
		case "ISO_IR 192":
			return strings.ToValidUTF8(string(value), "\uFFFD"), nil
		case "GB18030":
			return decodeWith(simplifiedchinese.GB18030, value), nil
		case "GBK":
			return decodeWith(simplifiedchinese.GBK, value), nil
		}
		num, iso2022, ok := irNumber(scs[0])
		if ok && !iso2022 && num != "13" {
			if cm, ok := singleByte[num]; ok {
				return decodeCharmap(cm, value), nil
			}
		}
	}
	init, err := initialState(scs[0])
	if err != nil {
		return decodeLatin1(value), err
	}
	return decode2022(init, vr, value), nil
}

func decodeLatin1(b []byte) string {
	ascii := true
	for _, c := range b {
		if c >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii {
		return string(b)
	}
	return decodeCharmap(charmap.ISO8859_1, b)
}

func decodeCharmap(cm *charmap.Charmap, b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b))
	for _, c := range b {
		if c < 0x80 {
			sb.WriteByte(c)
		} else {
			sb.WriteRune(cm.DecodeByte(c))
		}
	}
	return sb.String()
}

func decodeWith(e encoding.Encoding, b []byte) string {
	out, err := e.NewDecoder().Bytes(b)
	if err != nil {
		return strings.ToValidUTF8(string(b), "\uFFFD")
	}
	return string(out)
}

// isDelimiter reports whether c resets the code extension state for vr.
func isDelimiter(c byte, vr string) bool {
	switch c {
	case '\r', '\n', '\t', '\f':
		return true
	case '\\':
		return vr != "LT" && vr != "ST" && vr != "UT" && vr != "UR"
	case '^', '=':
		return vr == "PN"
	}
	return false
}

func decode2022(init state, vr string, b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b) * 2)
	st := init
	var run []byte // pending multi-byte run, in EUC form
	var runEnc encoding.Encoding
	flush := func() {
		if len(run) > 0 {
			sb.WriteString(decodeWith(runEnc, run))
			run = run[:0]
		}
	}
	addRun := func(e encoding.Encoding, p ...byte) {
		if runEnc != e {
			flush()
			runEnc = e
		}
		run = append(run, p...)
	}
	for i := 0; i < len(b); {
		c := b[i]
		if c == 0x1b {
			flush()
			n, ns, ok := escape(b[i:], st)
			if ok {
				st = ns
			}
			i += n
			continue
		}
		if c < 0x21 || c == 0x7f {
			flush()
			sb.WriteByte(c)
			if isDelimiter(c, vr) {
				st = init
			}
			i++
			continue
		}
		if c < 0x80 {
			switch st.g0 {
			case g0JIS0208, g0JIS0212:
				if i+1 < len(b) && b[i+1] >= 0x21 && b[i+1] < 0x7f {
					if st.g0 == g0JIS0208 {
						addRun(japanese.EUCJP, c|0x80, b[i+1]|0x80)
					} else {
						addRun(japanese.EUCJP, 0x8f, c|0x80, b[i+1]|0x80)
					}
					i += 2
				} else {
					flush()
					sb.WriteRune(utf8.RuneError)
					i++
				}
			default:
				flush()
				sb.WriteByte(c)
				if isDelimiter(c, vr) {
					st = init
				}
				i++
			}
			continue
		}
		// G1
		switch st.g1.kind {
		case g1KSX1001, g1GB2312:
			if c >= 0xa1 && c < 0xff && i+1 < len(b) && b[i+1] >= 0xa1 && b[i+1] < 0xff {
				if st.g1.kind == g1KSX1001 {
					addRun(korean.EUCKR, c, b[i+1])
				} else {
					addRun(simplifiedchinese.GBK, c, b[i+1])
				}
				i += 2
				continue
			}
			flush()
			sb.WriteRune(utf8.RuneError)
		case g1Katakana:
			flush()
			if c >= 0xa1 && c <= 0xdf {
				sb.WriteRune(rune(0xff61 + int(c) - 0xa1))
			} else {
				sb.WriteRune(utf8.RuneError)
			}
		case g1Charmap:
			flush()
			sb.WriteRune(st.g1.cm.DecodeByte(c))
		default:
			flush()
			sb.WriteRune(charmap.ISO8859_1.DecodeByte(c))
		}
		i++
	}
	flush()
	return sb.String()
}

// escape interprets the escape sequence at the start of b. It returns the
// number of bytes consumed and the new state.
func escape(b []byte, st state) (int, state, bool) {
	if len(b) >= 3 {
		switch string(b[1:3]) {
		case "(B":
			st.g0 = g0ASCII
			return 3, st, true
		case "(J":
			st.g0 = g0Romaji
			return 3, st, true
		case ")I":
			st.g1 = g1Set{kind: g1Katakana}
			return 3, st, true
		case "$B", "$@":
			st.g0 = g0JIS0208
			return 3, st, true
		}
		if b[1] == '-' {
			if cm, ok := g1Final[b[2]]; ok {
				st.g1 = g1Set{kind: g1Charmap, cm: cm}
				return 3, st, true
			}
		}
	}
	if len(b) >= 4 {
		switch string(b[1:4]) {
		case "$(D":
			st.g0 = g0JIS0212
			return 4, st, true
		case "$(B", "$(@":
			st.g0 = g0JIS0208
			return 4, st, true
		case "$)C":
			st.g1 = g1Set{kind: g1KSX1001}
			return 4, st, true
		case "$)A":
			st.g1 = g1Set{kind: g1GB2312}
			return 4, st, true
		}
	}
	return 1, st, false // drop an unrecognised ESC
}

// Encode converts UTF-8 text to the single-byte character set named by the
// defined term charset ("" or "ISO_IR 6" for the default repertoire,
// "ISO_IR 100" ... "ISO_IR 203", "ISO_IR 166"), or to "ISO_IR 192" (UTF-8),
// "GB18030" or "GBK". Code extensions (ISO 2022) are not supported.
func Encode(charset string, s string) ([]byte, error) {
	cs := strings.TrimSpace(charset)
	switch cs {
	case "", "ISO_IR 6", "ISO 2022 IR 6":
		for i := 0; i < len(s); i++ {
			if s[i] >= 0x80 {
				r, _ := utf8.DecodeRuneInString(s[i:])
				return nil, fmt.Errorf("%w: %q in the default repertoire", ErrUnencodable, r)
			}
		}
		return []byte(s), nil
	case "ISO_IR 192":
		if !utf8.ValidString(s) {
			return nil, fmt.Errorf("%w: invalid UTF-8 input", ErrUnencodable)
		}
		return []byte(s), nil
	case "GB18030", "GBK":
		e := simplifiedchinese.GB18030
		if cs == "GBK" {
			e = simplifiedchinese.GBK
		}
		out, err := e.NewEncoder().Bytes([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("%w in %s: %v", ErrUnencodable, cs, err)
		}
		return out, nil
	}
	num, _, ok := irNumber(cs)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownCharset, charset)
	}
	cm, ok := singleByte[num]
	if !ok {
		return nil, fmt.Errorf("%w: %q (encoding not supported)", ErrUnknownCharset, charset)
	}
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r < 0x80 {
			out = append(out, byte(r))
			continue
		}
		c, ok := cm.EncodeRune(r)
		if !ok || c < 0x80 {
			return nil, fmt.Errorf("%w: %q in %s", ErrUnencodable, r, cs)
		}
		out = append(out, c)
	}
	return out, nil
}
