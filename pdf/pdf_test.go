package pdf

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tool runs a poppler-utils program; the test fails (never skips) when it is
// missing: CI installs poppler-utils.
func tool(t *testing.T, name string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (install poppler-utils): %v", name, err)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(path, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.Bytes())
	}
	if stderr.Len() > 0 {
		// poppler reports syntax errors on stderr and carries on.
		t.Errorf("%s %v complained:\n%s", name, args, stderr.Bytes())
	}
	return string(out)
}

func writePDF(t *testing.T, b []byte) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "doc.pdf")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

// pdftotext returns the text of each page of the file.
func pdftotext(t *testing.T, b []byte) []string {
	t.Helper()
	out := tool(t, "pdftotext", "-enc", "UTF-8", writePDF(t, b), "-")
	pages := strings.Split(out, "\f")
	if len(pages) > 0 && strings.TrimSpace(pages[len(pages)-1]) == "" {
		pages = pages[:len(pages)-1]
	}
	return pages
}

// pdfinfo returns the fields pdfinfo prints.
func pdfinfo(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := tool(t, "pdfinfo", "-enc", "UTF-8", writePDF(t, b))
	m := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// squash collapses white space, so that checks do not depend on where
// pdftotext breaks lines.
func squash(s string) string { return strings.Join(strings.Fields(s), " ") }

var created = time.Date(2026, 1, 8, 11, 17, 0, 0, time.FixedZone("CET", 3600))

func TestEncode(t *testing.T) {
	tests := []struct {
		in   string
		want []byte
	}{
		{"abc (x) \\", []byte("abc (x) \\")},
		{"é è ê à ç ô ù", []byte{0xE9, ' ', 0xE8, ' ', 0xEA, ' ', 0xE0, ' ', 0xE7, ' ', 0xF4, ' ', 0xF9}},
		{"œŒ«»€’–—…", []byte{0x9C, 0x8C, 0xAB, 0xBB, 0x80, 0x92, 0x96, 0x97, 0x85}},
		{"a\tb", []byte("a b")},
		{"a\x00b\x1bc\u0085d\x7f", []byte("abcd")},
		{"日本 ✓", []byte("?? ?")},
		{"\xff\xfe", []byte("??")},
		{"12\u202Fmm", []byte{'1', '2', 0xA0, 'm', 'm'}},
		{"", []byte{}},
	}
	for _, tt := range tests {
		if got := Encode(tt.in); !bytes.Equal(got, tt.want) {
			t.Errorf("Encode(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestWidth(t *testing.T) {
	tests := []struct {
		font Font
		text string
		size float64
		want float64
	}{
		{Helvetica, "Hello", 10, (722 + 556 + 222 + 222 + 556) * 10.0 / 1000},
		{HelveticaOblique, "Hello", 10, (722 + 556 + 222 + 222 + 556) * 10.0 / 1000},
		{HelveticaBold, "Hello", 10, (722 + 556 + 278 + 278 + 611) * 10.0 / 1000},
		{Helvetica, "é'’", 1000, 556 + 191 + 222},
		{HelveticaBold, "W€œ", 1000, 944 + 556 + 944},
		{Helvetica, "\x01", 12, 0},
	}
	for _, tt := range tests {
		if got := tt.font.Width(tt.text, tt.size); got != tt.want {
			t.Errorf("%s.Width(%q, %v) = %v, want %v", tt.font.BaseFont(), tt.text, tt.size, got, tt.want)
		}
	}
}

func TestWrap(t *testing.T) {
	tests := []struct {
		name  string
		font  Font
		text  string
		width float64
		want  []string // nil: only check the invariants
	}{
		{"fits", Helvetica, "un deux trois", 200, []string{"un deux trois"}},
		// "un deux" is 31.68 pt at 10 pt; "un deux trois" 53.9.
		{"exact", Helvetica, "un deux trois", Helvetica.Width("un deux", 10), []string{"un deux", "trois"}},
		{"one unit short", Helvetica, "un deux trois", Helvetica.Width("un deux", 10) - 0.01, []string{"un", "deux", "trois"}},
		{"spaces collapse", Helvetica, "  a   b  ", 200, []string{"a b"}},
		{"blank", Helvetica, "   ", 200, nil},
		// Â then a no-break space is C2 A0 in WinAnsi, which is U+00A0 in UTF-8: not a break.
		{"no-break space", Helvetica, "Â\u00a0Â\u0085 b", 200, []string{string(Encode("Â\u00a0Â b"))}},
		{"no-break keeps together", Helvetica, "un deux\u00a0trois", Helvetica.Width("deux\u00a0trois", 10), []string{"un", "deux\xa0trois"}},
		{"long word cut", HelveticaBold, strings.Repeat("m", 30), HelveticaBold.Width("mmmmmmmmmm", 10), []string{"mmmmmmmmmm", "mmmmmmmmmm", "mmmmmmmmmm"}},
		{"narrower than a glyph", Helvetica, "WW", 1, []string{"W", "W"}},
		{"french", Helvetica, strings.Repeat("Opacité en « verre dépoli » du lobe supérieur — à contrôler. ", 20), 300, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := wrap(tt.font, Encode(tt.text), 10, tt.width)
			var got []string
			for _, l := range lines {
				got = append(got, string(l))
				if w := float64(tt.font.units(l)) * 10 / 1000; w > tt.width && len(l) > 1 {
					t.Errorf("line %q is %v pt, wider than %v", l, w, tt.width)
				}
			}
			if tt.want != nil && strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if tt.want == nil && strings.TrimSpace(tt.text) == "" && len(got) != 0 {
				t.Errorf("blank text gave lines %q", got)
			}
			// No text is lost: the words come back in order.
			if j := strings.Join(got, " "); tt.name != "long word cut" && tt.name != "narrower than a glyph" &&
				j != string(bytes.Join(words(Encode(tt.text)), []byte(" "))) {
				t.Errorf("words changed: %q", j)
			}
		})
	}
}

func TestText(t *testing.T) {
	tests := []struct {
		name string
		add  func(d *Document)
		want []string // in the text pdftotext extracts, white space collapsed
	}{
		{"accents", func(d *Document) {
			d.Paragraph("Opacité en « verre dépoli » : à contrôler à 3 mois ; œdème péri-lésionnel.")
		}, []string{"Opacité en « verre dépoli » : à contrôler à 3 mois ; œdème péri-lésionnel."}},
		{"punctuation", func(d *Document) {
			d.Paragraph("Coût : 25 € – CR d’imagerie — Œil droit, ç, ù, ô, ê, è, É, À, Ç, Ô.")
		}, []string{"Coût : 25 € – CR d’imagerie — Œil droit, ç, ù, ô, ê, è, É, À, Ç, Ô."}},
		{"escaping", func(d *Document) {
			d.Paragraph(`Parenthèses (ouvrante et fermante) et \ antislash ((imbriquées)) \(`)
		}, []string{`Parenthèses (ouvrante et fermante) et \ antislash ((imbriquées)) \(`}},
		{"outside WinAnsi", func(d *Document) { d.Paragraph("Kanji 日本 fin") }, []string{"Kanji ?? fin"}},
		{"layout", func(d *Document) {
			d.Title("Compte rendu d’imagerie")
			d.Heading("Résultats")
			d.Field("Nom de naissance", "PAT-TROIS")
			d.Rule()
			d.Note("Identité non qualifiée")
		}, []string{"Compte rendu d’imagerie", "Résultats", "Nom de naissance", "PAT-TROIS", "Identité non qualifiée", "page 1 / 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := New(Info{Title: "Essai", Created: created})
			tt.add(d)
			b := d.Bytes()
			if err := checkXref(b); err != nil {
				t.Fatal(err)
			}
			text := squash(strings.Join(pdftotext(t, b), "\n"))
			for _, w := range tt.want {
				if !strings.Contains(text, w) {
					t.Errorf("text lacks %q:\n%s", w, text)
				}
			}
		})
	}
}

func TestPages(t *testing.T) {
	long := strings.Repeat("Le parenchyme pulmonaire est normal, sans nodule ni épanchement pleural. ", 12)
	tests := []struct {
		name      string
		paras     int
		footer    string
		wantPages int // 0: at least 2
	}{
		{"empty", 0, "", 1},
		{"one page", 3, "PAT-TROIS Dominique", 1},
		{"several pages", 60, "PAT-TROIS Dominique, née le 28/03/1979", 0},
		{"reserve", -1, "", 2},
		{"long footer", 30, strings.Repeat("Très long pied de page ", 30), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := New(Info{Title: "Essai", Created: created})
			d.Footer = tt.footer
			if tt.paras < 0 {
				// Reserve moves what follows to the next page only when it does not fit.
				d.Paragraph("un")
				d.Reserve(PageHeight)                              // larger than a page: ignored
				d.Reserve(PageHeight - Margin - BottomMargin - 10) // more than is left after "un"
				d.Paragraph("deux")
				tt.paras = 0
			}
			for i := 0; i < tt.paras; i++ {
				d.Heading(fmt.Sprintf("Section %d", i+1))
				d.Paragraph(long)
			}
			b := d.Bytes()
			if err := checkXref(b); err != nil {
				t.Fatal(err)
			}
			n, err := strconv.Atoi(pdfinfo(t, b)["Pages"])
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantPages != 0 && n != tt.wantPages || tt.wantPages == 0 && n < 2 {
				t.Fatalf("pdfinfo Pages = %d, want %d (0: at least 2)", n, tt.wantPages)
			}
			if want := max(d.Pages(), 1); n != want {
				t.Errorf("pdfinfo Pages = %d, Document.Pages() = %d", n, want)
			}
			pages := pdftotext(t, b)
			if len(pages) != n {
				t.Fatalf("pdftotext found %d pages, pdfinfo %d", len(pages), n)
			}
			footer := squash(tt.footer)
			if len(footer) > 40 {
				footer = footer[:40]
			}
			seen := 0
			for i, p := range pages {
				p = squash(p)
				if want := fmt.Sprintf("page %d / %d", i+1, n); !strings.Contains(p, want) {
					t.Errorf("page %d lacks footer %q:\n%s", i+1, want, p)
				}
				if !strings.Contains(p, footer) {
					t.Errorf("page %d lacks footer text %q", i+1, footer)
				}
				seen += strings.Count(p, "Section ")
			}
			if seen != tt.paras {
				t.Errorf("%d headings extracted, want %d", seen, tt.paras)
			}
		})
	}
}

func TestInfo(t *testing.T) {
	d := New(Info{Title: "CR d’imagerie médicale", Author: "Dr Jacques BIDEAULT", Subject: "Scanner (crâne)", Created: created, Lang: "fr-FR"})
	d.Paragraph("x")
	b := d.Bytes()
	info := pdfinfo(t, b)
	for k, want := range map[string]string{
		"Title": "CR d’imagerie médicale", "Author": "Dr Jacques BIDEAULT", "Subject": "Scanner (crâne)",
		"Creator": "Relais", "PDF version": "1.4", "Pages": "1",
	} {
		if info[k] != want {
			t.Errorf("pdfinfo %s = %q, want %q", k, info[k], want)
		}
	}
	if !strings.Contains(info["CreationDate"], "2026") {
		t.Errorf("pdfinfo CreationDate = %q", info["CreationDate"])
	}
	if !bytes.Contains(b, []byte("/CreationDate (D:20260108111700+01'00')")) {
		t.Error("CreationDate not in the PDF date format")
	}
	if !strings.Contains(info["Page size"], "595.28 x 841.89") {
		t.Errorf("page size %q, want A4", info["Page size"])
	}
	if !bytes.Equal(b, d.Bytes()) {
		t.Error("Bytes is not deterministic")
	}
	d2 := New(d.Info)
	d2.Paragraph("x")
	if !bytes.Equal(b, d2.Bytes()) {
		t.Error("the same calls give different files")
	}
}

var (
	startxrefRE = regexp.MustCompile(`startxref\n(\d+)\n%%EOF\n$`)
	sizeRE      = regexp.MustCompile(`trailer\n<< /Size (\d+) `)
)

// checkXref checks the cross-reference table: startxref points at it, it
// has one entry per object up to the trailer's /Size, and every in-use entry
// points at "N 0 obj".
func checkXref(b []byte) error {
	if !bytes.HasPrefix(b, []byte("%PDF-1.4\n")) {
		return fmt.Errorf("no PDF header")
	}
	m := startxrefRE.FindSubmatch(b)
	if m == nil {
		return fmt.Errorf("no startxref at the end")
	}
	off, _ := strconv.Atoi(string(m[1]))
	if off >= len(b) || !bytes.HasPrefix(b[off:], []byte("xref\n0 ")) {
		return fmt.Errorf("startxref %d does not point at xref", off)
	}
	rest := b[off+len("xref\n0 "):]
	nl := bytes.IndexByte(rest, '\n')
	count, err := strconv.Atoi(string(rest[:nl]))
	if err != nil {
		return fmt.Errorf("xref subsection header: %v", err)
	}
	rest = rest[nl+1:]
	if len(rest) < 20*count {
		return fmt.Errorf("xref truncated")
	}
	if string(rest[:20]) != "0000000000 65535 f \n" {
		return fmt.Errorf("entry 0: %q", rest[:20])
	}
	for i := 1; i < count; i++ {
		e := string(rest[20*i : 20*i+20])
		if len(e) != 20 || e[10:] != " 00000 n \n" {
			return fmt.Errorf("entry %d malformed: %q", i, e)
		}
		o, err := strconv.Atoi(e[:10])
		if err != nil || o >= off {
			return fmt.Errorf("entry %d: bad offset %q", i, e[:10])
		}
		if want := fmt.Sprintf("%d 0 obj\n", i); !bytes.HasPrefix(b[o:], []byte(want)) {
			return fmt.Errorf("entry %d: offset %d points at %q", i, o, b[o:min(o+20, len(b))])
		}
	}
	s := sizeRE.FindSubmatch(rest[20*count:])
	if s == nil || string(s[1]) != strconv.Itoa(count) {
		return fmt.Errorf("trailer /Size does not match %d entries", count)
	}
	return nil
}

// FuzzText lays out arbitrary text with every layout method: it must never
// panic, always give a file whose cross-reference offsets point at their
// objects, and keep every content line within the page.
func FuzzText(f *testing.F) {
	for _, s := range []string{"", "Opacité « verre dépoli » (x) \\", strings.Repeat("m", 500), "a\nb\n\n\tc\r\n)", "\xff\x00日本€", strings.Repeat("mot ", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := New(Info{Title: s, Author: s, Subject: s, Created: created})
		d.Footer = s
		d.Title(s)
		d.Heading(s)
		d.Paragraph(s)
		d.Field(s, s)
		d.Rule()
		d.Reserve(float64(len(s)))
		d.Note(s)
		d.Text(HelveticaBold, 0, s)
		b := d.Bytes()
		if err := checkXref(b); err != nil {
			t.Fatalf("%v\n%q", err, b)
		}
		if got := bytes.Count(b, []byte("/Type /Page ")); got != max(d.Pages(), 1) {
			t.Fatalf("%d page objects, %d pages", got, d.Pages())
		}
	})
}

// FuzzWrap checks the line breaker on arbitrary text and widths: no line is
// wider than asked unless it is a single character, and no character is lost
// or reordered (the lines hold the words' bytes in order).
func FuzzWrap(f *testing.F) {
	f.Add("Opacité en « verre dépoli » du lobe supérieur", 100.0, uint8(0))
	f.Add(strings.Repeat("m", 80), 30.0, uint8(1))
	f.Add("a\u00a0b  c\td", 0.5, uint8(2))
	f.Fuzz(func(t *testing.T, s string, width float64, font uint8) {
		if width != width || width < 0.01 || width > 10000 {
			return
		}
		ft := Font(font % 3)
		text := Encode(s)
		lines := wrap(ft, text, BodySize, width)
		var got, want []byte
		for _, l := range lines {
			if len(l) == 0 {
				t.Fatalf("empty line in %q", lines)
			}
			if w := float64(ft.units(l)) * BodySize / 1000; w > width && len(l) > 1 {
				t.Fatalf("line %q is %v pt, wider than %v", l, w, width)
			}
			got = append(got, bytes.ReplaceAll(l, []byte(" "), nil)...)
		}
		for _, w := range words(text) {
			want = append(want, w...)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("lines %q lose or reorder text %q", lines, text)
		}
	})
}
