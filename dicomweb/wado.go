package dicomweb

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/storage"
)

// instancesOf lists the instances a WADO-RS path names (study, series or
// one instance), checking that the path's UIDs belong together.
func (s *Server) instancesOf(ctx context.Context, study, series, sop string) ([]*storage.Instance, error) {
	var out []*storage.Instance
	switch {
	case sop != "":
		in, err := s.Index.GetInstance(ctx, sop)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if in.StudyInstanceUID != study || in.SeriesInstanceUID != series {
			return nil, nil
		}
		return []*storage.Instance{in}, nil
	case series != "":
		err := s.Index.SeriesInstances(ctx, series, func(in *storage.Instance) error {
			if in.StudyInstanceUID == study {
				out = append(out, in)
			}
			return nil
		})
		return out, err
	default:
		err := s.Index.StudyInstances(ctx, study, func(in *storage.Instance) error {
			out = append(out, in)
			return nil
		})
		return out, err
	}
}

// uncompressed reports whether Transcode converts between ts and the
// other uncompressed, non-deflated syntaxes.
func uncompressed(ts dicom.TransferSyntax) bool { return !ts.Encapsulated && !ts.Deflated }

// outputSyntax picks the transfer syntax an instance stored in stored is
// sent in, for a client asking for asked ("" when the media range names
// none, "*" for any): the stored syntax when it is asked or any is
// accepted; a conversion between uncompressed syntaxes; otherwise none
// (ok false).
//
// Without a transfer-syntax parameter PS3.18 8.7.3.5.2 makes Explicit VR
// Little Endian the default: uncompressed data is converted to it;
// compressed data, which Relais does not decompress, is sent as stored
// (like Orthanc and dcm4chee do) rather than refused, since viewers send
// no parameter and can decode it. The part's Content-Type names the syntax.
func outputSyntax(stored, asked string) (string, bool) {
	st, ok := dicom.LookupTransferSyntax(stored)
	if !ok {
		return "", false
	}
	switch asked {
	case "*":
		return st.UID, true
	case "":
		if uncompressed(st) {
			return dicom.ExplicitVRLittleEndian, true
		}
		return st.UID, true
	}
	if asked == st.UID {
		return st.UID, true
	}
	at, ok := dicom.LookupTransferSyntax(asked)
	if ok && uncompressed(at) && uncompressed(st) {
		return at.UID, true
	}
	return "", false
}

// planned is an instance and the syntax it is sent in.
type planned struct {
	inst *storage.Instance
	ts   string
}

// retrieve is WADO-RS Retrieve Study, Series and Instance: the instances
// as multipart/related; type="application/dicom", streamed one blob at a
// time (memory does not depend on the study size).
func (s *Server) retrieve(c *gin.Context) {
	start := time.Now()
	study, series, sop := c.Param("study"), c.Param("series"), c.Param("instance")
	ranges := parseAccept(acceptOf(c.Request))
	var dicomRanges []mediaRange
	for _, r := range ranges {
		if r.matches("multipart/related", "application/dicom") || (sop != "" && r.matches("application/dicom", "")) {
			dicomRanges = append(dicomRanges, r)
		}
	}
	if len(dicomRanges) == 0 {
		s.fail(c, http.StatusNotAcceptable, "WADO-RS retrieve answers multipart/related; type=\"application/dicom\" (Accept: %s)", acceptOf(c.Request))
		return
	}
	insts, err := s.instancesOf(c.Request.Context(), study, series, sop)
	if err != nil {
		s.fail(c, http.StatusInternalServerError, "index: %v", err)
		return
	}
	if len(insts) == 0 {
		s.fail(c, http.StatusNotFound, "no such %s", resourceName(study, series, sop))
		return
	}
	single := false
	var plan []planned
	skipped := 0
	for _, in := range insts {
		chosen := ""
		for _, r := range dicomRanges {
			if ts, ok := outputSyntax(in.TransferSyntaxUID, r.TransferSyntax); ok {
				chosen = ts
				single = sop != "" && r.Type == "application/dicom"
				break
			}
		}
		if chosen == "" {
			skipped++
			continue
		}
		plan = append(plan, planned{in, chosen})
	}
	if len(plan) == 0 {
		s.fail(c, http.StatusNotAcceptable, "the stored transfer syntax %s cannot be converted to the one asked (Relais converts between uncompressed syntaxes only)", insts[0].TransferSyntaxUID)
		return
	}
	if skipped > 0 {
		c.Writer.Header().Add("Warning", fmt.Sprintf("299 relais: %q", fmt.Sprintf("%d instances could not be sent in the transfer syntax asked and were left out", skipped)))
	}
	w := c.Writer
	var total int64
	if !single && allAsStored(plan) {
		total = s.retrieveAsStored(c, plan)
	} else if single {
		p := plan[0]
		w.Header().Set("Content-Type", "application/dicom; transfer-syntax="+p.ts)
		w.WriteHeader(http.StatusOK)
		n, err := s.writeInstance(c.Request.Context(), w, p)
		total += n
		if err != nil {
			s.Logger.Warn("WADO-RS instance failed while streaming", "sop", p.inst.SOPInstanceUID, "error", err)
			panic(http.ErrAbortHandler)
		}
	} else {
		bw := bufio.NewWriterSize(w, 64<<10)
		mw := multipart.NewWriter(bw)
		mw.SetBoundary(newBoundary())
		w.Header().Set("Content-Type", fmt.Sprintf(`multipart/related; type="application/dicom"; boundary=%s`, mw.Boundary()))
		w.WriteHeader(http.StatusOK)
		for _, p := range plan {
			h := textproto.MIMEHeader{}
			h.Set("Content-Type", "application/dicom; transfer-syntax="+p.ts)
			pw, err := mw.CreatePart(h)
			if err == nil {
				var n int64
				n, err = s.writeInstance(c.Request.Context(), pw, p)
				total += n
			}
			if err != nil {
				s.Logger.Warn("WADO-RS retrieve failed while streaming", "sop", p.inst.SOPInstanceUID, "error", err)
				panic(http.ErrAbortHandler)
			}
		}
		if err := mw.Close(); err != nil || bw.Flush() != nil {
			panic(http.ErrAbortHandler)
		}
	}
	s.audit(c, "dicomweb.retrieve", study, series, sop, fmt.Sprintf("instances=%d bytes=%d", len(plan), total), http.StatusOK)
	s.Metrics.observe("wado", http.StatusOK, time.Since(start))
}

// allAsStored reports whether every instance goes out as stored (so the
// answer's length is known in advance).
func allAsStored(plan []planned) bool {
	for _, p := range plan {
		if p.ts != p.inst.TransferSyntaxUID || p.inst.Size <= 0 {
			return false
		}
	}
	return true
}

// retrieveAsStored writes the multipart answer of instances sent as stored
// with a Content-Length, so that Go's HTTP server is not chunking and hands
// each blob file to the kernel (sendfile): a study goes out without being
// copied through Relais (the copies were three quarters of the CPU of a
// study retrieval). The framing is multipart.Writer's, written by hand.
func (s *Server) retrieveAsStored(c *gin.Context, plan []planned) int64 {
	boundary := newBoundary()
	heads := make([]string, len(plan))
	length := int64(0)
	for i, p := range plan {
		h := "--" + boundary + "\r\nContent-Type: application/dicom; transfer-syntax=" + p.ts + "\r\n\r\n"
		if i > 0 {
			h = "\r\n" + h
		}
		heads[i] = h
		length += int64(len(h)) + p.inst.Size
	}
	tail := "\r\n--" + boundary + "--\r\n"
	length += int64(len(tail))
	h := c.Writer.Header()
	h.Set("Content-Type", fmt.Sprintf(`multipart/related; type="application/dicom"; boundary=%s`, boundary))
	h.Set("Content-Length", fmt.Sprint(length))
	c.Writer.WriteHeader(http.StatusOK)
	c.Writer.WriteHeaderNow()
	var w io.Writer = c.Writer
	if u, ok := c.Writer.(interface{ Unwrap() http.ResponseWriter }); ok {
		w = u.Unwrap()
	}
	ctx := c.Request.Context()
	for i, p := range plan {
		if _, err := io.WriteString(w, heads[i]); err != nil {
			panic(http.ErrAbortHandler)
		}
		if err := s.copyBlob(ctx, w, p.inst); err != nil {
			s.Logger.Warn("WADO-RS retrieve failed while streaming", "sop", p.inst.SOPInstanceUID, "error", err)
			panic(http.ErrAbortHandler)
		}
	}
	if _, err := io.WriteString(w, tail); err != nil {
		panic(http.ErrAbortHandler)
	}
	return length
}

// copyBlob writes a blob that must be inst.Size bytes long (the announced
// Content-Length counts on it), through sendfile when the store has files.
func (s *Server) copyBlob(ctx context.Context, w io.Writer, inst *storage.Instance) error {
	b, err := s.Blobs.Open(ctx, inst.BlobKey)
	if err != nil {
		return fmt.Errorf("open blob %s: %w", inst.BlobKey, err)
	}
	defer b.Close()
	if b.Size() != inst.Size {
		return fmt.Errorf("blob %s is %d bytes, the index says %d", inst.BlobKey, b.Size(), inst.Size)
	}
	var src io.Reader = b
	if f, ok := b.(interface{ OSFile() *os.File }); ok {
		src = f.OSFile()
	}
	n, err := io.Copy(w, src)
	if err == nil && n != inst.Size {
		err = fmt.Errorf("blob %s: copied %d of %d bytes", inst.BlobKey, n, inst.Size)
	}
	return err
}

func resourceName(study, series, sop string) string {
	switch {
	case sop != "":
		return "instance " + sop + " in series " + series + " of study " + study
	case series != "":
		return "series " + series + " in study " + study
	}
	return "study " + study
}

// writeInstance writes an instance as a Part 10 file in p.ts: the blob
// as it is when the syntax is the stored one, else a new file meta and the
// data set transcoded on the fly.
func (s *Server) writeInstance(ctx context.Context, w io.Writer, p planned) (int64, error) {
	b, err := s.Blobs.Open(ctx, p.inst.BlobKey)
	if err != nil {
		return 0, fmt.Errorf("open blob %s: %w", p.inst.BlobKey, err)
	}
	defer b.Close()
	if p.ts == p.inst.TransferSyntaxUID {
		return io.Copy(w, b)
	}
	from, _ := dicom.LookupTransferSyntax(p.inst.TransferSyntaxUID)
	to, _ := dicom.LookupTransferSyntax(p.ts)
	br := bufio.NewReaderSize(b, 64<<10)
	meta, _, err := dicom.ReadFileMeta(br)
	if err != nil {
		return 0, fmt.Errorf("blob %s: %w", p.inst.BlobKey, err)
	}
	meta.TransferSyntaxUID = to.UID
	cw := &countWriter{w: w}
	if _, err := dicom.WriteFileMeta(cw, meta); err != nil {
		return cw.n, err
	}
	err = dicom.Transcode(cw, br, from, to, dicom.DefaultLimits())
	return cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func newBoundary() string {
	var b [16]byte
	rand.Read(b[:])
	return "relais-" + hex.EncodeToString(b[:])
}
