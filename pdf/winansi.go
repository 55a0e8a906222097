package pdf

import "unicode/utf8"

// winAnsiHigh maps the Unicode characters of WinAnsiEncoding codes 0x80-0x9F
// (those that differ from Latin-1) to their code.
var winAnsiHigh = map[rune]byte{
	'€': 0x80, '‚': 0x82, 'ƒ': 0x83, '„': 0x84, '…': 0x85, '†': 0x86, '‡': 0x87,
	'ˆ': 0x88, '‰': 0x89, 'Š': 0x8A, '‹': 0x8B, 'Œ': 0x8C, 'Ž': 0x8E,
	'‘': 0x91, '’': 0x92, '“': 0x93, '”': 0x94, '•': 0x95, '–': 0x96, '—': 0x97,
	'˜': 0x98, '™': 0x99, 'š': 0x9A, '›': 0x9B, 'œ': 0x9C, 'ž': 0x9E, 'Ÿ': 0x9F,

	// Not in WinAnsiEncoding, but with an obvious equivalent there: the
	// narrow and figure no-break spaces of French typography, the other
	// typographic spaces, the Unicode hyphens and the minus sign.
	'\u202F': 0xA0, '\u2007': 0xA0,
	'\u2000': ' ', '\u2001': ' ', '\u2002': ' ', '\u2003': ' ', '\u2004': ' ',
	'\u2005': ' ', '\u2006': ' ', '\u2008': ' ', '\u2009': ' ', '\u200A': ' ',
	'\u2010': '-', '\u2011': '-', '\u2212': '-',
}

// Encode converts UTF-8 text to WinAnsiEncoding (Windows code page 1252 as
// PDF defines it), the encoding of the fonts this package uses. A tab becomes
// a space; other control characters (C0, DEL, C1) are dropped; typographic
// spaces and hyphens become their WinAnsi equivalent (U+202F NARROW NO-BREAK
// SPACE becomes the no-break space 0xA0); any other character WinAnsiEncoding
// lacks, or an invalid UTF-8 byte, becomes '?'.
func Encode(s string) []byte {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, '?')
		case r == '\t':
			b = append(b, ' ')
		case r < 0x20 || r == 0x7F || (r >= 0x80 && r < 0xA0):
			// control character: dropped
		case r < 0x7F || (r >= 0xA0 && r <= 0xFF):
			b = append(b, byte(r))
		default:
			if c, ok := winAnsiHigh[r]; ok {
				b = append(b, c)
			} else {
				b = append(b, '?')
			}
		}
	}
	return b
}
