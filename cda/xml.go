package cda

import (
	"bytes"
	"encoding/xml"
)

// node is a minimal XML element tree. Names are written as given (so a
// prefixed name like "ps3-20:accessionNumber" works); every attribute value and
// text is escaped with encoding/xml.
type node struct {
	name     string
	attrs    []string // name, value pairs
	kids     []*node
	text     string
	hasText  bool
	leafText bool // text-only element: written on one line
}

// el makes an element with attribute pairs; an attribute whose value is ""
// is left out.
func el(name string, attrs ...string) *node {
	n := &node{name: name}
	for i := 0; i+1 < len(attrs); i += 2 {
		if attrs[i+1] != "" {
			n.attrs = append(n.attrs, attrs[i], attrs[i+1])
		}
	}
	return n
}

// textEl makes an element holding only text.
func textEl(name, text string, attrs ...string) *node {
	n := el(name, attrs...)
	n.text, n.hasText, n.leafText = text, true, true
	return n
}

func (n *node) add(kids ...*node) *node {
	for _, k := range kids {
		if k != nil {
			n.kids = append(n.kids, k)
		}
	}
	return n
}

func (n *node) write(b *bytes.Buffer, depth int) {
	indent := func(d int) {
		for i := 0; i < d; i++ {
			b.WriteString("  ")
		}
	}
	indent(depth)
	b.WriteByte('<')
	b.WriteString(n.name)
	for i := 0; i < len(n.attrs); i += 2 {
		b.WriteByte(' ')
		b.WriteString(n.attrs[i])
		b.WriteString(`="`)
		xml.EscapeText(b, []byte(n.attrs[i+1]))
		b.WriteByte('"')
	}
	if len(n.kids) == 0 && !n.hasText {
		b.WriteString("/>\n")
		return
	}
	b.WriteByte('>')
	if n.hasText {
		xml.EscapeText(b, []byte(n.text))
	}
	if len(n.kids) > 0 {
		b.WriteByte('\n')
		for _, k := range n.kids {
			k.write(b, depth+1)
		}
		indent(depth)
	}
	b.WriteString("</")
	b.WriteString(n.name)
	b.WriteString(">\n")
}
