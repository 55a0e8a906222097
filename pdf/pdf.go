// Package pdf writes small PDF 1.4 text documents: A4 pages of wrapped
// paragraphs, headings, key/value lines and horizontal rules, set in the
// standard Type 1 fonts Helvetica, Helvetica-Bold and Helvetica-Oblique with
// WinAnsiEncoding, so that French text (é è ê à ç ô ù œ « » € ’ –) needs no
// embedded font. The glyph widths of the three fonts are built in, so lines
// are wrapped exactly to the text width.
//
// A Document is filled top to bottom; pages break by themselves and every
// page gets a footer "page N / M". Bytes writes the file: the same calls with
// the same Info give the same bytes (nothing depends on the clock or on map
// order), which keeps rendered reports reproducible.
//
// The package has no dependencies beyond the standard library and writes
// uncompressed content streams.
package pdf

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
)

// Font is one of the three standard fonts a Document uses.
type Font int

// The fonts. Their names in the file are the standard 14 BaseFont names.
const (
	Helvetica Font = iota
	HelveticaBold
	HelveticaOblique
)

// BaseFont returns the PostScript name of the font, e.g. "Helvetica-Bold".
func (f Font) BaseFont() string {
	switch f {
	case HelveticaBold:
		return "Helvetica-Bold"
	case HelveticaOblique:
		return "Helvetica-Oblique"
	default:
		return "Helvetica"
	}
}

func (f Font) resource() string {
	switch f {
	case HelveticaBold:
		return "/F2"
	case HelveticaOblique:
		return "/F3"
	default:
		return "/F1"
	}
}

func (f Font) widths() *[256]uint16 {
	if f == HelveticaBold {
		return &helveticaBoldWidths
	}
	return &helveticaWidths
}

// units is the width of WinAnsi-encoded b in 1/1000 of the font size.
func (f Font) units(b []byte) int {
	w := f.widths()
	n := 0
	for _, c := range b {
		n += int(w[c])
	}
	return n
}

// Width returns the width in points of the UTF-8 text s set at size points,
// after the conversion Encode does.
func (f Font) Width(s string, size float64) float64 {
	return float64(f.units(Encode(s))) * size / 1000
}

// Page geometry, in points (1/72 inch).
const (
	PageWidth    = 595.28 // A4: 210 mm
	PageHeight   = 841.89 // A4: 297 mm
	Margin       = 56.69  // 2 cm on the left, right and top
	BottomMargin = 70.87  // 2.5 cm: room for the footer
	TextWidth    = PageWidth - 2*Margin

	footerBaseline = 34.0
	footerSize     = 8.0
)

// Type sizes, in points, of the layout methods.
const (
	TitleSize   = 16.0
	HeadingSize = 12.0
	BodySize    = 10.0
	// KeyWidth is the width of the key column of Field.
	KeyWidth = 150.0
)

// Info is the document information dictionary.
type Info struct {
	Title   string
	Author  string
	Subject string
	// Created is the CreationDate; the zero time leaves it out. It comes
	// from the caller so that the output is deterministic.
	Created time.Time
	// Lang is the natural language of the text (catalog /Lang), e.g.
	// "fr-FR"; empty leaves it out.
	Lang string
}

// Creator is the /Creator of every document.
const Creator = "Relais"

// Document is a PDF being laid out. Create it with New, add content with the
// layout methods in reading order, then call Bytes. A Document is not safe
// for concurrent use.
type Document struct {
	Info Info
	// Footer is drawn at the left of every page's footer, before
	// "page N / M" at the right; it is cut to fit on one line.
	Footer string

	pages []*bytes.Buffer
	y     float64 // top of the free space on the current page
}

// New returns an empty document with the given information.
func New(info Info) *Document { return &Document{Info: info} }

// Pages returns the number of pages laid out so far.
func (d *Document) Pages() int { return len(d.pages) }

// NewPage starts a new page.
func (d *Document) NewPage() {
	d.pages = append(d.pages, new(bytes.Buffer))
	d.y = PageHeight - Margin
}

// need makes room for h points of height, breaking the page if needed.
func (d *Document) need(h float64) {
	if len(d.pages) == 0 || (d.y-h < BottomMargin && d.y < PageHeight-Margin) {
		d.NewPage()
	}
}

func (d *Document) page() *bytes.Buffer {
	if len(d.pages) == 0 {
		d.NewPage()
	}
	return d.pages[len(d.pages)-1]
}

// Reserve starts a new page unless h points of height remain on the current
// one, so that the next h points of content stay on one page (a signature
// block, say). A height larger than a page does not break the page.
func (d *Document) Reserve(h float64) {
	if h <= PageHeight-Margin-BottomMargin {
		d.need(h)
	}
}

// Space adds h points of vertical space; at the top of a page it does nothing.
func (d *Document) Space(h float64) {
	if len(d.pages) == 0 || d.y >= PageHeight-Margin {
		return
	}
	d.y -= h
	if d.y < BottomMargin {
		d.y = BottomMargin
	}
}

// Title adds a title: bold, TitleSize, wrapped.
func (d *Document) Title(text string) {
	d.Space(6)
	d.Text(HelveticaBold, TitleSize, text)
	d.Space(6)
}

// Heading adds a section heading: bold, HeadingSize, wrapped, kept on the
// same page as the two lines that follow it.
func (d *Document) Heading(text string) {
	d.Space(8)
	lines := wrap(HelveticaBold, Encode(text), HeadingSize, TextWidth)
	d.need(float64(len(lines))*leading(HeadingSize) + 2*leading(BodySize) + 3)
	d.lines(HelveticaBold, HeadingSize, Margin, lines)
	d.Space(3)
}

// Paragraph adds body text (Helvetica, BodySize) wrapped to the text width.
// A newline starts a new line; an empty line leaves a blank line.
func (d *Document) Paragraph(text string) {
	d.Text(Helvetica, BodySize, text)
	d.Space(4)
}

// Note adds body text in Helvetica-Oblique, wrapped like Paragraph.
func (d *Document) Note(text string) {
	d.Text(HelveticaOblique, BodySize, text)
	d.Space(4)
}

// Text adds text in font f at size points, wrapped to the text width, with
// no space around it. A newline starts a new line.
func (d *Document) Text(f Font, size float64, text string) {
	if size <= 0 {
		size = BodySize
	}
	for _, line := range strings.Split(text, "\n") {
		lines := wrap(f, Encode(line), size, TextWidth)
		if len(lines) == 0 {
			lines = [][]byte{nil} // an empty line keeps its height
		}
		d.lines(f, size, Margin, lines)
	}
}

// lines draws wrapped lines at x, one leading each, breaking pages as needed.
func (d *Document) lines(f Font, size, x float64, lines [][]byte) {
	for _, l := range lines {
		d.need(leading(size))
		d.show(f, size, x, d.y-size, l)
		d.y -= leading(size)
	}
}

// Field adds a key/value line: the key in bold in a column KeyWidth wide,
// the value beside it, each wrapped within its column.
func (d *Document) Field(key, value string) {
	kl := wrap(HelveticaBold, Encode(key), BodySize, KeyWidth-8)
	var vl [][]byte
	for _, line := range strings.Split(value, "\n") {
		vl = append(vl, wrap(Helvetica, Encode(line), BodySize, TextWidth-KeyWidth)...)
	}
	n := max(len(kl), len(vl), 1)
	if float64(n)*leading(BodySize) <= PageHeight-Margin-BottomMargin {
		d.need(float64(n) * leading(BodySize)) // keep the row on one page
	}
	for i := 0; i < n; i++ {
		d.need(leading(BodySize))
		base := d.y - BodySize
		if i < len(kl) {
			d.show(HelveticaBold, BodySize, Margin, base, kl[i])
		}
		if i < len(vl) {
			d.show(Helvetica, BodySize, Margin+KeyWidth, base, vl[i])
		}
		d.y -= leading(BodySize)
	}
	d.Space(1)
}

// Rule adds a horizontal line across the text width.
func (d *Document) Rule() {
	d.need(10)
	y := d.y - 5
	fmt.Fprintf(d.page(), "0.5 w %s %s m %s %s l S\n", num(Margin), num(y), num(PageWidth-Margin), num(y))
	d.y -= 10
}

// show writes one line of encoded text with its baseline at (x, y).
func (d *Document) show(f Font, size, x, y float64, text []byte) {
	if len(text) == 0 {
		return
	}
	showAt(d.page(), f, size, x, y, text)
}

func showAt(b *bytes.Buffer, f Font, size, x, y float64, text []byte) {
	if len(text) == 0 {
		return
	}
	fmt.Fprintf(b, "BT %s %s Tf %s %s Td ", f.resource(), num(size), num(x), num(y))
	writeString(b, text)
	b.WriteString(" Tj ET\n")
}

func leading(size float64) float64 { return size * 1.3 }

// num formats a coordinate with at most two decimals.
func num(v float64) string {
	s := strconv.FormatFloat(v, 'f', 2, 64)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" || s == "" {
		return "0"
	}
	return s
}

// wrap breaks WinAnsi-encoded text into lines at most width points wide at
// size points in f. Runs of spaces separate words and are set as one space; a
// word wider than a line is cut between characters. It returns no line for
// text that is all spaces.
func wrap(f Font, text []byte, size, width float64) [][]byte {
	limit := int(width * 1000 / size) // in font units
	space := f.units([]byte{' '})
	var lines [][]byte
	var line []byte
	lineUnits := 0
	for _, word := range words(text) {
		wu := f.units(word)
		if len(line) > 0 && lineUnits+space+wu <= limit {
			line = append(append(line, ' '), word...)
			lineUnits += space + wu
			continue
		}
		if len(line) > 0 {
			lines = append(lines, line)
			line, lineUnits = nil, 0
		}
		for wu > limit {
			// Cut the word: as many characters as fit, at least one.
			n, u := 0, 0
			for n < len(word) && (n == 0 || u+f.units(word[n:n+1]) <= limit) {
				u += f.units(word[n : n+1])
				n++
			}
			lines = append(lines, append([]byte(nil), word[:n]...))
			word, wu = word[n:], wu-u
		}
		line = append([]byte(nil), word...)
		lineUnits = wu
	}
	if len(line) > 0 {
		lines = append(lines, line)
	}
	return lines
}

// words splits WinAnsi-encoded text at runs of spaces (0x20 only: 0xA0 is
// the no-break space, and the text is not UTF-8, so bytes.Fields would not do).
func words(text []byte) [][]byte {
	var ws [][]byte
	for _, w := range bytes.Split(text, []byte{' '}) {
		if len(w) > 0 {
			ws = append(ws, w)
		}
	}
	return ws
}

// writeString writes b as a PDF literal string, escaping the delimiters and
// the backslash (PDF 1.7, 7.3.4.2).
func writeString(w *bytes.Buffer, b []byte) {
	w.WriteByte('(')
	for _, c := range b {
		switch c {
		case '(', ')', '\\':
			w.WriteByte('\\')
			w.WriteByte(c)
		case '\r':
			w.WriteString(`\r`)
		case '\n':
			w.WriteString(`\n`)
		default:
			w.WriteByte(c)
		}
	}
	w.WriteByte(')')
}

// textString returns s as a PDF text string for the information dictionary:
// UTF-16BE with a byte order mark, in hexadecimal (PDF 1.7, 7.9.2.2).
func textString(s string) string {
	var b strings.Builder
	b.WriteString("<FEFF")
	for _, u := range utf16.Encode([]rune(strings.ToValidUTF8(s, "\uFFFD"))) {
		fmt.Fprintf(&b, "%04X", u)
	}
	b.WriteString(">")
	return b.String()
}

// date formats t as a PDF date (PDF 1.7, 7.9.4), e.g. D:20260108111700+01'00'.
func date(t time.Time) string {
	_, off := t.Zone()
	sign := '+'
	if off < 0 {
		sign, off = '-', -off
	}
	return fmt.Sprintf("D:%s%c%02d'%02d'", t.Format("20060102150405"), sign, off/3600, off/60%60)
}

// footerText is Footer encoded, on one line, cut with an ellipsis to leave
// room for "page N / N" with n pages.
func (d *Document) footerText(n int) []byte {
	left := Encode(strings.Join(strings.Fields(d.Footer), " "))
	pn := Encode(fmt.Sprintf("page %d / %d", n, n))
	avail := TextWidth - 12 // points, between the footer text and the page number
	limit := int(avail*1000/footerSize) - Helvetica.units(pn)
	if Helvetica.units(left) > limit {
		ell := []byte{0x85} // …
		u, k := Helvetica.units(ell), 0
		for k < len(left) && u+Helvetica.units(left[k:k+1]) <= limit {
			u += Helvetica.units(left[k : k+1])
			k++
		}
		left = append(left[:k:k], ell...)
	}
	return left
}

// footer draws the footer of page i (0-based) of n on b, with left at the left.
func footer(b *bytes.Buffer, left []byte, i, n int) {
	fmt.Fprintf(b, "0.3 w %s %s m %s %s l S\n", num(Margin), num(footerBaseline+11), num(PageWidth-Margin), num(footerBaseline+11))
	pn := Encode(fmt.Sprintf("page %d / %d", i+1, n))
	pw := float64(Helvetica.units(pn)) * footerSize / 1000
	showAt(b, Helvetica, footerSize, PageWidth-Margin-pw, footerBaseline, pn)
	showAt(b, Helvetica, footerSize, Margin, footerBaseline, left)
}

// Fixed object numbers; page i (0-based) is object firstPage+2i and its
// content stream the next one.
const (
	objCatalog = 1 + iota
	objPages
	objFontRegular
	objFontBold
	objFontOblique
	objInfo
	firstPage
)

// Bytes writes the document as a PDF 1.4 file. An empty document has one
// blank page. Bytes does not change the document: calling it again, or after
// adding more content, gives the file of the content so far.
func (d *Document) Bytes() []byte {
	pages := d.pages
	if len(pages) == 0 {
		pages = []*bytes.Buffer{new(bytes.Buffer)}
	}
	n := len(pages)
	var out bytes.Buffer
	offsets := make([]int, firstPage+2*n) // index = object number
	obj := func(num int, body string) {
		offsets[num] = out.Len()
		fmt.Fprintf(&out, "%d 0 obj\n%s\nendobj\n", num, body)
	}

	out.WriteString("%PDF-1.4\n%\xE2\xE3\xCF\xD3\n")
	cat := fmt.Sprintf("<< /Type /Catalog /Pages %d 0 R", objPages)
	if d.Info.Lang != "" {
		var l bytes.Buffer
		writeString(&l, Encode(d.Info.Lang))
		cat += " /Lang " + l.String()
	}
	obj(objCatalog, cat+" >>")
	kids := make([]string, n)
	for i := range kids {
		kids[i] = fmt.Sprintf("%d 0 R", firstPage+2*i)
	}
	obj(objPages, fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), n))
	for _, f := range []struct {
		num  int
		font Font
	}{{objFontRegular, Helvetica}, {objFontBold, HelveticaBold}, {objFontOblique, HelveticaOblique}} {
		obj(f.num, fmt.Sprintf("<< /Type /Font /Subtype /Type1 /BaseFont /%s /Encoding /WinAnsiEncoding >>", f.font.BaseFont()))
	}
	info := []string{"/Creator " + textString(Creator), "/Producer " + textString(Creator+" pdf")}
	for _, kv := range [][2]string{{"/Title", d.Info.Title}, {"/Author", d.Info.Author}, {"/Subject", d.Info.Subject}} {
		if kv[1] != "" {
			info = append(info, kv[0]+" "+textString(kv[1]))
		}
	}
	if !d.Info.Created.IsZero() {
		info = append(info, "/CreationDate ("+date(d.Info.Created)+")")
	}
	obj(objInfo, "<< "+strings.Join(info, " ")+" >>")

	left := d.footerText(n)
	resources := fmt.Sprintf("<< /Font << /F1 %d 0 R /F2 %d 0 R /F3 %d 0 R >> >>", objFontRegular, objFontBold, objFontOblique)
	for i, p := range pages {
		var content bytes.Buffer
		content.Write(p.Bytes())
		footer(&content, left, i, n)
		pg, cs := firstPage+2*i, firstPage+2*i+1
		obj(pg, fmt.Sprintf("<< /Type /Page /Parent %d 0 R /MediaBox [0 0 %s %s] /Resources %s /Contents %d 0 R >>",
			objPages, num(PageWidth), num(PageHeight), resources, cs))
		offsets[cs] = out.Len()
		fmt.Fprintf(&out, "%d 0 obj\n<< /Length %d >>\nstream\n", cs, content.Len())
		out.Write(content.Bytes())
		out.WriteString("\nendstream\nendobj\n")
	}

	id := sha256.Sum256(out.Bytes())
	xref := out.Len()
	fmt.Fprintf(&out, "xref\n0 %d\n0000000000 65535 f \n", len(offsets))
	for _, off := range offsets[1:] {
		fmt.Fprintf(&out, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&out, "trailer\n<< /Size %d /Root %d 0 R /Info %d 0 R /ID [<%X> <%X>] >>\nstartxref\n%d\n%%%%EOF\n",
		len(offsets), objCatalog, objInfo, id[:16], id[:16], xref)
	return out.Bytes()
}
