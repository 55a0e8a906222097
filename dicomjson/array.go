package dicomjson

import (
	"io"

	"github.com/relais-health/relais/dicom"
)

// ArrayWriter streams a JSON array of objects ("[obj,obj,...]"), as a
// QIDO-RS or WADO-RS metadata response is sent while instances are read:
//
//	aw := dicomjson.NewArrayWriter(w)
//	for ... {
//		if err := aw.Dataset(res, opt); err != nil { ... }
//	}
//	err := aw.End()
//
// Begin and Next may also be called directly around a custom object. An
// ArrayWriter is not safe for concurrent use. It does not buffer: the
// brackets and commas are one-byte writes and each object is written in
// chunks of about 32 KiB, so give it a buffered writer (bufio.Writer, or
// an http.ResponseWriter, which buffers).
type ArrayWriter struct {
	w     io.Writer
	n     int
	begun bool
	ended bool
	err   error
}

// NewArrayWriter returns an ArrayWriter writing to w.
func NewArrayWriter(w io.Writer) *ArrayWriter { return &ArrayWriter{w: w} }

func (a *ArrayWriter) write(s string) error {
	if a.err == nil {
		_, a.err = io.WriteString(a.w, s)
	}
	return a.err
}

// Begin writes the opening bracket; it is called by Next and End if not
// before, and does nothing the second time.
func (a *ArrayWriter) Begin() error {
	if a.begun {
		return a.err
	}
	a.begun = true
	return a.write("[")
}

// Next prepares for the next element: it writes the opening bracket before
// the first one and a comma before the others. The caller then writes
// exactly one JSON value.
func (a *ArrayWriter) Next() error {
	if err := a.Begin(); err != nil {
		return err
	}
	a.n++
	if a.n > 1 {
		return a.write(",")
	}
	return a.err
}

// End writes the closing bracket (and the opening one if nothing was
// written, giving "[]"); it returns the first error met.
func (a *ArrayWriter) End() error {
	if err := a.Begin(); err != nil {
		return err
	}
	if a.ended {
		return a.err
	}
	a.ended = true
	return a.write("]")
}

// Count returns the number of elements started with Next.
func (a *ArrayWriter) Count() int { return a.n }

// Dataset writes res as the next element (see WriteDataset).
func (a *ArrayWriter) Dataset(res *dicom.ScanResult, opt Options) error {
	if err := a.Next(); err != nil {
		return err
	}
	a.err = WriteDataset(a.w, res, opt)
	return a.err
}

// Attrs writes an index attribute map as the next element (see
// WriteAttrs).
func (a *ArrayWriter) Attrs(attrs map[string]string, extra ...Attr) error {
	if err := a.Next(); err != nil {
		return err
	}
	a.err = WriteAttrs(a.w, attrs, extra...)
	return a.err
}
