// Package stow implements the core of the DICOMweb Store Transaction
// (STOW-RS, PS3.18 10.5) independently of the HTTP router: it reads a
// multipart/related body of application/dicom parts and streams each part
// into the ingest pipeline, the same one C-STORE uses (same durability,
// journal and index), then builds the Store Instances Response (PS3.18
// 10.5.3 and its response module: Retrieve URL, Failed SOP Sequence,
// Referenced SOP Sequence, Other Failures Sequence).
//
// Nothing is buffered per instance: a part's bytes pass through the
// multipart reader into the pipeline, which writes them to the blob while
// it scans the header. A part is stored only when it is complete (its
// closing boundary was read) and its data set is valid; parts stored before
// a failure stay stored, as they were complete and durable.
//
// Binary instances only: the metadata + bulk data form of the request
// (application/dicom+json or +xml parts, PS3.18 10.5.1.4) is answered 415.
package stow

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/ingest"
	"github.com/relais-health/relais/storage"
)

// Failure Reason (0008,1197) and Warning Reason (0008,1196) values, PS3.18
// Store Instances Response Module (Table I.2-2 "Failure Reason Values" and
// Table I.2-1 "Warning Reason Values" in the editions that have the module
// as Annex I; the same tables under 10.5.3 in the others). The table allows
// implementation specific codes; the ones used here beyond the table are
// marked.
const (
	FailureOutOfResources         uint16 = 0xA700 // A7xx: refused, out of resources
	FailureDataSetMismatch        uint16 = 0xA900 // A9xx: data set does not match SOP class
	FailureCannotUnderstand       uint16 = 0xC000 // Cxxx: cannot understand
	FailureTransferSyntaxNotSupp  uint16 = 0xC122 // referenced transfer syntax not supported
	FailureProcessing             uint16 = 0x0110 // processing failure
	FailureSOPClassNotSupported   uint16 = 0x0122 // referenced SOP class not supported
	FailureDuplicate              uint16 = 0x0111 // implementation specific: duplicate SOP instance (PS3.7 C.4.1.1.3, duplicate policy "reject")
	WarningCoercion               uint16 = 0xB000 // coercion of data elements
	WarningElementsDiscarded      uint16 = 0xB006 // elements discarded
	WarningDataSetDoesNotMatchSOP uint16 = 0xB007 // data set does not match SOP class
)

// FailureStudyMismatch is the Failure Reason of an instance whose Study
// Instance UID differs from the study of the target resource
// (/studies/{study}). PS3.18 10.5.3.1 (Table 10.5.3-1, Status Code Meaning)
// names "Study Instance UID mismatch" as a reason for 409 Conflict but the
// Failure Reason table defines no dedicated code (it allows additional
// ones). We use A900, the "data set does not match" class: the data set
// does not match the target of the request. The Microsoft DICOM service
// answers the same (43264, A900); dcm4chee answers an implementation
// specific C409. The ingest pipeline refuses such an instance before commit
// (ingest.Request.ExpectStudyInstanceUID).
const FailureStudyMismatch uint16 = 0xA900

// DefaultMaxParts bounds the parts of one request when Options.MaxParts is 0.
const DefaultMaxParts = 10000

// Options are the per-request parameters of Store.
type Options struct {
	// StudyInstanceUID is the study of the target resource
	// (POST /studies/{study}); "" for POST /studies.
	StudyInstanceUID string
	// Source identifies the client; Channel defaults to "stow".
	Source storage.Source
	// RetrieveURL builds the Retrieve URL (0008,1190) of a study (series
	// and sop "") or of an instance. Nil: no URLs (the attribute is sent
	// empty, it is Type 2).
	RetrieveURL func(study, series, sop string) string
	// MaxParts bounds the number of parts read (0: DefaultMaxParts); the
	// parts beyond are not read and reported in the Other Failures
	// Sequence. The caller bounds the body size (http.MaxBytesReader).
	MaxParts int
	// AcceptSOPClass says whether a SOP class may be stored (nil:
	// dicom.IsStorageSOPClass, the classes C-STORE accepts); an instance of
	// another class fails with 0122.
	AcceptSOPClass func(uid string) bool
	// Logger receives one line per failed part; nil: slog.Default().
	Logger *slog.Logger
}

// RequestError is a request refused as a whole: HTTPStatus is 415 (media
// type not supported) or 400 (no boundary, malformed, no instance).
type RequestError struct {
	HTTPStatus int
	Reason     string
}

func (e *RequestError) Error() string {
	return fmt.Sprintf("stow: %d %s: %s", e.HTTPStatus, http.StatusText(e.HTTPStatus), e.Reason)
}

// Stored is an instance that was stored (Referenced SOP Sequence item).
type Stored struct {
	Part                                             int // 1-based index of the part in the request
	SOPClassUID, SOPInstanceUID, StudyUID, SeriesUID string
	RetrieveURL                                      string
	WarningReason                                    uint16 // 0 when none
	Warning                                          string // human-readable warning
	Duplicate                                        bool   // already stored (duplicate policy)
}

// Failed is a part that was not stored. With both UIDs known it is a Failed
// SOP Sequence item; otherwise (the part could not be read as DICOM, or
// failures not tied to one part, Part 0) an Other Failures Sequence item.
type Failed struct {
	Part                        int
	SOPClassUID, SOPInstanceUID string
	FailureReason               uint16
	Reason                      string // human-readable, for logs and the Warning header
}

// Response is the outcome of a Store Transaction.
type Response struct {
	// HTTPStatus is 200 (all stored), 202 (some stored, with failures or
	// warnings) or 409 (none stored); PS3.18 10.5.3.1.
	HTTPStatus int
	// Stored counts stored instances, Failed failed parts (and parts not
	// read), Warnings stored instances with a Warning Reason.
	Stored, Failed, Warnings int
	// RetrieveURL of the study: the target study, or the one study of all
	// the stored instances; "" otherwise.
	RetrieveURL string
	Referenced  []Stored
	FailedSOPs  []Failed // Failed SOP Sequence (0008,1198)
	Other       []Failed // Other Failures Sequence (0008,119A)
}

// Reasons returns the human-readable reasons of failures and warnings, one
// per line, for logs or a Warning header field.
func (r *Response) Reasons() []string {
	var out []string
	for _, f := range r.FailedSOPs {
		out = append(out, fmt.Sprintf("part %d (%s): %04X %s", f.Part, f.SOPInstanceUID, f.FailureReason, f.Reason))
	}
	for _, f := range r.Other {
		out = append(out, fmt.Sprintf("part %d: %04X %s", f.Part, f.FailureReason, f.Reason))
	}
	for _, s := range r.Referenced {
		if s.WarningReason != 0 {
			out = append(out, fmt.Sprintf("part %d (%s): warning %04X %s", s.Part, s.SOPInstanceUID, s.WarningReason, s.Warning))
		}
	}
	return out
}

// Store reads a multipart/related body and ingests each part; it never
// buffers a whole instance in memory (parts stream into the pipeline). Each
// instance is durable before Store returns. A request refused as a whole
// returns a *RequestError (415 or 400) and stores nothing (or ctx's error
// when it is done before the first part); otherwise the Response says what
// was stored and what failed.
func Store(ctx context.Context, p *ingest.Pipeline, contentType string, body io.Reader, opt Options) (*Response, error) {
	boundary, partType, err := checkContentType(contentType)
	if err != nil {
		return nil, err
	}
	if opt.MaxParts <= 0 {
		opt.MaxParts = DefaultMaxParts
	}
	if opt.Source.Channel == "" {
		opt.Source.Channel = "stow"
	}
	opt.StudyInstanceUID = strings.TrimRight(strings.TrimSpace(opt.StudyInstanceUID), "\x00")
	log := opt.Logger
	if log == nil {
		log = slog.Default()
	}
	s := &storer{p: p, opt: opt, log: log, partType: partType, resp: &Response{}}
	mr := multipart.NewReader(body, boundary)
	n := 0
	for {
		if err := ctx.Err(); err != nil {
			if n == 0 {
				return nil, err
			}
			s.other(n+1, FailureProcessing, "request cancelled: "+err.Error()+"; the remaining parts were not read")
			break
		}
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil && n > 0 && errors.Is(err, io.EOF) {
			// The body ends right after a boundary, without the "--" of
			// the close-delimiter: every part read was complete.
			log.Debug("stow: multipart body without close-delimiter", "parts", n, "err", err)
			break
		}
		if err != nil {
			if n == 0 {
				return nil, &RequestError{HTTPStatus: http.StatusBadRequest, Reason: "malformed multipart body: " + err.Error()}
			}
			s.other(n+1, FailureCannotUnderstand, "malformed multipart body after part "+fmt.Sprint(n)+": "+err.Error()+"; the remaining parts were not read")
			break
		}
		n++
		if n > opt.MaxParts {
			part.Close()
			s.other(n, FailureOutOfResources, fmt.Sprintf("more than %d parts; the remaining parts were not read", opt.MaxParts))
			break
		}
		broken := s.part(ctx, n, part)
		part.Close()
		if broken {
			break
		}
	}
	if n == 0 {
		return nil, &RequestError{HTTPStatus: http.StatusBadRequest, Reason: "the multipart body has no part"}
	}
	s.finish()
	return s.resp, nil
}

// checkContentType accepts multipart/related with type="application/dicom"
// (or no type parameter, each part then declaring application/dicom) and
// returns the boundary and the type parameter.
func checkContentType(ct string) (boundary, partType string, err error) {
	if strings.TrimSpace(ct) == "" {
		return "", "", &RequestError{HTTPStatus: http.StatusUnsupportedMediaType, Reason: `no Content-Type; expected multipart/related; type="application/dicom"`}
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		if mt == "" {
			return "", "", &RequestError{HTTPStatus: http.StatusBadRequest, Reason: fmt.Sprintf("malformed Content-Type %q: %v", ct, err)}
		}
		if mt != "multipart/related" {
			return "", "", &RequestError{HTTPStatus: http.StatusUnsupportedMediaType, Reason: fmt.Sprintf("media type %s is not supported; expected multipart/related; type=\"application/dicom\"", mt)}
		}
		return "", "", &RequestError{HTTPStatus: http.StatusBadRequest, Reason: fmt.Sprintf("malformed Content-Type parameters %q: %v", ct, err)}
	}
	switch mt {
	case "multipart/related":
	case "application/dicom":
		return "", "", &RequestError{HTTPStatus: http.StatusUnsupportedMediaType, Reason: `a single application/dicom body is not supported; send multipart/related; type="application/dicom"`}
	default:
		return "", "", &RequestError{HTTPStatus: http.StatusUnsupportedMediaType, Reason: fmt.Sprintf("media type %s is not supported; expected multipart/related; type=\"application/dicom\"", mt)}
	}
	partType = params["type"]
	if i := strings.IndexByte(partType, ';'); i >= 0 {
		partType = partType[:i] // type="application/dicom; transfer-syntax=…" (lenient)
	}
	partType = strings.ToLower(strings.TrimSpace(partType))
	switch partType {
	case "", "application/dicom":
	case "application/dicom+json", "application/dicom+xml":
		return "", "", &RequestError{HTTPStatus: http.StatusUnsupportedMediaType, Reason: fmt.Sprintf("STOW-RS of metadata and bulk data (type=%q) is not supported; send binary instances, type=\"application/dicom\"", partType)}
	default:
		return "", "", &RequestError{HTTPStatus: http.StatusUnsupportedMediaType, Reason: fmt.Sprintf("multipart/related type %q is not supported; expected type=\"application/dicom\"", partType)}
	}
	boundary = params["boundary"]
	if boundary == "" {
		return "", "", &RequestError{HTTPStatus: http.StatusBadRequest, Reason: "multipart/related Content-Type without a boundary parameter"}
	}
	if len(boundary) > 70 {
		return "", "", &RequestError{HTTPStatus: http.StatusBadRequest, Reason: "multipart boundary longer than 70 characters (RFC 2046 5.1.1)"}
	}
	return boundary, partType, nil
}

type storer struct {
	p        *ingest.Pipeline
	opt      Options
	log      *slog.Logger
	partType string
	resp     *Response
}

// partReader records the first error of the part's reader other than EOF:
// the multipart framing broke inside the part (body ends before the
// closing boundary) or the body could not be read (size cap, client gone).
type partReader struct {
	r   io.Reader
	err error
}

func (p *partReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if err != nil && err != io.EOF && p.err == nil {
		p.err = err
	}
	return n, err
}

// part ingests part n. It reports whether the body can no longer be read.
func (s *storer) part(ctx context.Context, n int, part *multipart.Part) (broken bool) {
	if reason := s.checkPartType(part.Header.Get("Content-Type")); reason != "" {
		s.other(n, FailureCannotUnderstand, reason)
		return false
	}
	pr := &partReader{r: part}
	var r io.Reader = pr
	if strings.EqualFold(strings.TrimSpace(part.Header.Get("Content-Transfer-Encoding")), "base64") {
		r = base64.NewDecoder(base64.StdEncoding, pr)
	}
	br := bufio.NewReaderSize(r, 64<<10)
	meta, _, err := dicom.ReadFileMeta(br)
	if err != nil {
		if pr.err != nil {
			return s.broken(n, "", "", pr.err)
		}
		s.other(n, FailureCannotUnderstand, "not a DICOM Part 10 instance: "+err.Error())
		return false
	}
	cls := strings.TrimRight(meta.MediaStorageSOPClassUID, " \x00")
	sop := strings.TrimRight(meta.MediaStorageSOPInstanceUID, " \x00")
	ts := strings.TrimRight(meta.TransferSyntaxUID, " \x00")
	if cls == "" || sop == "" {
		s.other(n, FailureCannotUnderstand, "file meta information without Media Storage SOP Class or Instance UID")
		return false
	}
	accept := s.opt.AcceptSOPClass
	if accept == nil {
		accept = dicom.IsStorageSOPClass
	}
	if !accept(cls) {
		s.failed(n, cls, sop, FailureSOPClassNotSupported, fmt.Sprintf("SOP class %s is not supported for storage", cls))
		io.Copy(io.Discard, br)
		if pr.err != nil {
			// The part is reported already; the body cannot be read further.
			if !errors.Is(pr.err, io.ErrUnexpectedEOF) {
				_, msg := bodyFailure(pr.err)
				s.other(0, FailureProcessing, msg+"; the remaining parts, if any, were not read")
			}
			return true
		}
		return false
	}
	res, err := s.p.Store(ctx, &ingest.Request{
		Source: s.opt.Source, SOPClassUID: cls, SOPInstanceUID: sop, TransferSyntaxUID: ts,
		Data: br, ExpectStudyInstanceUID: s.opt.StudyInstanceUID,
	})
	if pr.err != nil {
		// The part was cut: whatever the pipeline said, it stored nothing
		// (a read error fails the scan).
		if err == nil {
			// Cannot happen (the scan reads to EOF); never report an
			// incomplete part as stored.
			s.log.Error("stow: pipeline accepted a part whose read failed", "part", n, "sop", sop, "err", pr.err)
		}
		return s.broken(n, cls, sop, pr.err)
	}
	if err != nil {
		reason, msg := failureOf(err)
		s.failed(n, cls, sop, reason, msg)
		return false
	}
	st := Stored{Part: n, SOPClassUID: cls, SOPInstanceUID: sop, Duplicate: res.Duplicate}
	if res.Instance != nil {
		st.SOPClassUID = res.Instance.SOPClassUID
		st.StudyUID, st.SeriesUID = res.Instance.StudyInstanceUID, res.Instance.SeriesInstanceUID
	}
	if res.Status != ingest.StatusSuccess {
		st.WarningReason, st.Warning = res.Status, res.Comment
		if res.Status == ingest.StatusWarningMismatch {
			st.WarningReason = WarningDataSetDoesNotMatchSOP
		}
	}
	if s.opt.RetrieveURL != nil && st.StudyUID != "" {
		st.RetrieveURL = s.opt.RetrieveURL(st.StudyUID, st.SeriesUID, st.SOPInstanceUID)
	}
	s.resp.Referenced = append(s.resp.Referenced, st)
	return false
}

// checkPartType returns why a part's media type is refused, "" if it is
// application/dicom (a part without Content-Type takes the type parameter
// of the multipart/related body, RFC 2387 3.1).
func (s *storer) checkPartType(ct string) string {
	if strings.TrimSpace(ct) == "" {
		if s.partType == "application/dicom" {
			return ""
		}
		return "part without Content-Type (expected application/dicom)"
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil && mt == "" {
		return fmt.Sprintf("part with malformed Content-Type %q", ct)
	}
	if mt != "application/dicom" {
		return fmt.Sprintf("part of media type %s (expected application/dicom)", mt)
	}
	return ""
}

// broken records a part whose bytes could not all be read.
func (s *storer) broken(n int, cls, sop string, err error) bool {
	reason, msg := bodyFailure(err)
	if cls != "" && sop != "" {
		s.failed(n, cls, sop, reason, msg)
	} else {
		s.other(n, reason, msg)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		s.other(0, reason, msg+"; the remaining parts, if any, were not read")
	}
	return true
}

// bodyFailure is the Failure Reason of a part cut by a read error.
func bodyFailure(err error) (uint16, string) {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return FailureOutOfResources, fmt.Sprintf("request body over the %d bytes limit", mbe.Limit)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return FailureCannotUnderstand, "part truncated: the body ends before the part's closing boundary"
	}
	return FailureProcessing, "reading the request body: " + err.Error()
}

// failureOf maps an ingest refusal to a Failure Reason.
func failureOf(err error) (uint16, string) {
	var ie *ingest.Error
	if !errors.As(err, &ie) {
		return FailureProcessing, err.Error()
	}
	msg := ie.Cause
	if ie.Err != nil {
		msg += ": " + ie.Err.Error()
	}
	switch {
	case ie.Cause == "study-mismatch":
		return FailureStudyMismatch, msg
	case ie.Cause == "transfer-syntax":
		return FailureTransferSyntaxNotSupp, msg
	case ie.Status&0xFF00 == 0xA700:
		return ie.Status, msg
	case ie.Status&0xFF00 == 0xA900:
		return FailureDataSetMismatch, msg
	case ie.Status&0xF000 == 0xC000:
		return ie.Status, msg
	case ie.Status == ingest.StatusDuplicate:
		return FailureDuplicate, msg
	}
	return FailureProcessing, msg
}

func (s *storer) failed(n int, cls, sop string, reason uint16, msg string) {
	s.resp.FailedSOPs = append(s.resp.FailedSOPs, Failed{Part: n, SOPClassUID: cls, SOPInstanceUID: sop, FailureReason: reason, Reason: msg})
	s.log.Warn("stow: instance not stored", "part", n, "sop", sop, "failure_reason", fmt.Sprintf("%04X", reason), "reason", msg,
		"remote", s.opt.Source.RemoteAddr)
}

func (s *storer) other(n int, reason uint16, msg string) {
	s.resp.Other = append(s.resp.Other, Failed{Part: n, FailureReason: reason, Reason: msg})
	s.log.Warn("stow: part not stored", "part", n, "failure_reason", fmt.Sprintf("%04X", reason), "reason", msg,
		"remote", s.opt.Source.RemoteAddr)
}

// finish counts and sets the HTTP status and the study Retrieve URL.
func (s *storer) finish() {
	r := s.resp
	r.Stored = len(r.Referenced)
	r.Failed = len(r.FailedSOPs) + len(r.Other)
	study := s.opt.StudyInstanceUID
	for i, st := range r.Referenced {
		if st.WarningReason != 0 {
			r.Warnings++
		}
		if s.opt.StudyInstanceUID == "" {
			if i == 0 {
				study = st.StudyUID
			} else if st.StudyUID != study {
				study = ""
			}
		}
	}
	if study != "" && s.opt.RetrieveURL != nil && (r.Stored > 0 || s.opt.StudyInstanceUID != "") {
		r.RetrieveURL = s.opt.RetrieveURL(study, "", "")
	}
	switch {
	case r.Stored == 0:
		r.HTTPStatus = http.StatusConflict
	case r.Failed > 0 || r.Warnings > 0:
		r.HTTPStatus = http.StatusAccepted
	default:
		r.HTTPStatus = http.StatusOK
	}
}
