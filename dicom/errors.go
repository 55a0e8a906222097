package dicom

import (
	"compress/flate"
	"errors"
	"fmt"
	"io"
)

// Sentinel errors. Errors returned by Scan, Transcode and ReadFileMeta wrap
// one of them (test with errors.Is) or an I/O error of the underlying reader.
var (
	// ErrTruncated means the data ended before a declared value, item,
	// sequence or header was complete.
	ErrTruncated = errors.New("dicom: truncated data")
	// ErrMalformed means the bytes do not follow the encoding rules of PS3.5.
	ErrMalformed = errors.New("dicom: malformed data")
	// ErrLimitExceeded means a declared length, the nesting depth or the
	// dataset size is over the configured Limits.
	ErrLimitExceeded = errors.New("dicom: limit exceeded")
	// ErrNotPart10 means the input has no "DICM" prefix after the preamble.
	ErrNotPart10 = errors.New("dicom: not a DICOM Part 10 file")
	// ErrUnsupportedTransferSyntax means Transcode cannot convert between
	// the requested transfer syntaxes (encapsulated or deflated).
	ErrUnsupportedTransferSyntax = errors.New("dicom: unsupported transfer syntax")
)

// ScanError locates a structural error in a dataset.
type ScanError struct {
	Offset int64  // byte offset in the (inflated) dataset where the offending header starts
	Tag    Tag    // tag being read, 0 if unknown
	Err    error  // one of ErrTruncated, ErrMalformed, ErrLimitExceeded
	Detail string // human-readable explanation
}

// Error names the sentinel, offset and tag.
func (e *ScanError) Error() string {
	msg := fmt.Sprintf("%v at offset %d", e.Err, e.Offset)
	if e.Tag != 0 {
		msg += " in element " + e.Tag.String()
	}
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Unwrap returns the sentinel error.
func (e *ScanError) Unwrap() error { return e.Err }

func scanErr(off int64, tag Tag, sentinel error, format string, args ...any) error {
	return &ScanError{Offset: off, Tag: tag, Err: sentinel, Detail: fmt.Sprintf(format, args...)}
}

// readErr converts an error of the underlying reader into a ScanError when it
// denotes truncation or corrupt deflate data, and wraps it otherwise.
func readErr(off int64, tag Tag, err error, what string) error {
	var ce flate.CorruptInputError
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return scanErr(off, tag, ErrTruncated, "data ends inside %s", what)
	case errors.As(err, &ce):
		return &ScanError{Offset: off, Tag: tag, Err: ErrMalformed, Detail: "corrupt deflate stream: " + ce.Error()}
	}
	return fmt.Errorf("dicom: reading %s at offset %d: %w", what, off, err)
}
