package dicomweb

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/imaging"
	"github.com/relais-health/relais/storage"
)

// maxFramesPerRequest bounds the frame list of one request.
const maxFramesPerRequest = 10000

// parseFrameList parses "1,3,5" (1-based frame numbers).
func parseFrameList(s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("frame list %q: %q is not a frame number (1, 2, ...)", s, p)
		}
		out = append(out, n)
		if len(out) > maxFramesPerRequest {
			return nil, fmt.Errorf("frame list has more than %d frames", maxFramesPerRequest)
		}
	}
	return out, nil
}

// openImage finds the instance of the path and opens its pixel data.
func (s *Server) openImage(c *gin.Context) (*storage.Instance, storage.Blob, *imaging.Image, bool) {
	study, series, sop := c.Param("study"), c.Param("series"), c.Param("instance")
	insts, err := s.instancesOf(c.Request.Context(), study, series, sop)
	if err != nil {
		s.fail(c, http.StatusInternalServerError, "index: %v", err)
		return nil, nil, nil, false
	}
	if len(insts) == 0 {
		s.fail(c, http.StatusNotFound, "no such %s", resourceName(study, series, sop))
		return nil, nil, nil, false
	}
	return s.openInstanceImage(c, insts[0])
}

func (s *Server) openInstanceImage(c *gin.Context, in *storage.Instance) (*storage.Instance, storage.Blob, *imaging.Image, bool) {
	b, err := s.Blobs.Open(c.Request.Context(), in.BlobKey)
	if err != nil {
		s.fail(c, http.StatusInternalServerError, "open blob: %v", err)
		return nil, nil, nil, false
	}
	im, err := imaging.Open(b, b.Size())
	if err != nil {
		b.Close()
		if errors.Is(err, imaging.ErrNoPixelData) {
			s.fail(c, http.StatusNotFound, "instance %s has no pixel data", in.SOPInstanceUID)
		} else {
			s.fail(c, http.StatusUnprocessableEntity, "instance %s: pixel data unusable: %v", in.SOPInstanceUID, err)
		}
		return nil, nil, nil, false
	}
	return in, b, im, true
}

// frameOffer is how frames can be sent: their media type, the transfer
// syntax announced and whether they must be decoded (RLE to native).
type frameOffer struct {
	media, ts string
	decode    bool
}

// chooseFrameOffer negotiates the frames' media type (PS3.18 8.7.3.5.2):
// stored bytes under their own media type when the client accepts it (or
// "transfer-syntax=*"), uncompressed bytes as application/octet-stream
// (Explicit VR Little Endian, the default) when the data is uncompressed or
// RLE, which Relais decodes. multipart reports whether the answer is
// multipart/related (a single-part answer needs a single frame).
func chooseFrameOffer(ranges []mediaRange, im *imaging.Image, single bool) (o frameOffer, multi bool, ok bool) {
	storedMedia, storedTS := im.FrameMediaType()
	native := storedMedia == imaging.MediaOctetStream
	canDecode := native || im.TransferSyntax.UID == dicom.RLELossless
	for _, r := range ranges {
		typ, part := r.Type, r.Part
		if typ == "multipart/related" {
			if part == "" {
				part = "application/octet-stream"
			}
		} else if single && typ != "*/*" {
			part, typ = typ, "single"
		} else if typ == "*/*" {
			return frameOffer{storedMedia, storedTS, false}, true, true
		} else {
			continue
		}
		multi := typ == "multipart/related"
		switch {
		case r.TransferSyntax == "*" && (part == storedMedia || part == "*/*" || part == "application/octet-stream" && native):
			return frameOffer{storedMedia, storedTS, false}, multi, true
		case part == storedMedia && !native && (r.TransferSyntax == "" || r.TransferSyntax == storedTS):
			return frameOffer{storedMedia, storedTS, false}, multi, true
		case part == "application/octet-stream" && (r.TransferSyntax == "" || r.TransferSyntax == dicom.ExplicitVRLittleEndian) && canDecode:
			return frameOffer{imaging.MediaOctetStream, dicom.ExplicitVRLittleEndian, !native}, multi, true
		case part == "*/*":
			return frameOffer{storedMedia, storedTS, false}, multi, true
		}
	}
	return frameOffer{}, false, false
}

// frames is WADO-RS Retrieve Frames.
func (s *Server) frames(c *gin.Context) {
	start := time.Now()
	list, err := parseFrameList(c.Param("frames"))
	if err != nil {
		s.fail(c, http.StatusBadRequest, "%v", err)
		return
	}
	in, b, im, ok := s.openImage(c)
	if !ok {
		return
	}
	defer b.Close()
	for _, f := range list {
		if f > im.NumberOfFrames {
			s.fail(c, http.StatusNotFound, "frame %d: the instance has %d frames", f, im.NumberOfFrames)
			return
		}
	}
	offer, multi, ok := chooseFrameOffer(parseAccept(acceptOf(c.Request)), im, len(list) == 1)
	if !ok {
		media, ts := im.FrameMediaType()
		s.fail(c, http.StatusNotAcceptable, "frames are stored as %s (transfer syntax %s); accept it, or transfer-syntax=* (Accept: %s)", media, ts, acceptOf(c.Request))
		return
	}
	frame := func(i int) (io.Reader, error) {
		if offer.decode {
			d, err := im.DecodedFrame(i)
			if err != nil {
				return nil, err
			}
			return bytes.NewReader(d), nil
		}
		return im.Frame(i)
	}
	// The first frame is read before the status is sent: a corrupt frame
	// is a 500 with a reason, not a cut stream.
	first, err := frame(list[0])
	if err != nil {
		s.fail(c, http.StatusInternalServerError, "frame %d: %v", list[0], err)
		return
	}
	w := c.Writer
	ct := offer.media + "; transfer-syntax=" + offer.ts
	if !multi {
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(http.StatusOK)
		if _, err := io.Copy(w, first); err != nil {
			s.Logger.Debug("frames: client went away", "error", err)
		}
	} else {
		bw := bufio.NewWriterSize(w, 64<<10)
		mw := multipart.NewWriter(bw)
		mw.SetBoundary(newBoundary())
		w.Header().Set("Content-Type", fmt.Sprintf(`multipart/related; type=%q; boundary=%s`, offer.media, mw.Boundary()))
		w.WriteHeader(http.StatusOK)
		base := s.baseURL(c.Request)
		for k, f := range list {
			r := first
			if k > 0 {
				if r, err = frame(f); err != nil {
					s.Logger.Warn("WADO-RS frames failed while streaming", "sop", in.SOPInstanceUID, "frame", f, "error", err)
					panic(http.ErrAbortHandler)
				}
			}
			h := textproto.MIMEHeader{}
			h.Set("Content-Type", ct)
			h.Set("Content-Location", fmt.Sprintf("%s/studies/%s/series/%s/instances/%s/frames/%d", base, in.StudyInstanceUID, in.SeriesInstanceUID, in.SOPInstanceUID, f))
			pw, err := mw.CreatePart(h)
			if err == nil {
				_, err = io.Copy(pw, r)
			}
			if err != nil {
				s.Logger.Debug("frames: client went away", "error", err)
				panic(http.ErrAbortHandler)
			}
		}
		if err := mw.Close(); err != nil || bw.Flush() != nil {
			panic(http.ErrAbortHandler)
		}
	}
	s.audit(c, "dicomweb.frames", in.StudyInstanceUID, in.SeriesInstanceUID, in.SOPInstanceUID, fmt.Sprintf("frames=%d", len(list)), http.StatusOK)
	s.Metrics.observe("frames", http.StatusOK, time.Since(start))
}

// bulkdata serves a value that metadata gave as a Bulk Data URI: the pixel
// data as its frames, any other top-level value as it is stored (little
// endian), as multipart/related; type="application/octet-stream".
func (s *Server) bulkdata(c *gin.Context) {
	start := time.Now()
	v, err := strconv.ParseUint(c.Param("tag"), 16, 32)
	if err != nil || len(c.Param("tag")) != 8 {
		s.fail(c, http.StatusBadRequest, "bulk data tag %q is not 8 hex digits", c.Param("tag"))
		return
	}
	tag := dicom.Tag(v)
	if _, _, ok := acceptsAny(parseAccept(acceptOf(c.Request)), "multipart/related;application/octet-stream", "application/octet-stream"); !ok {
		s.fail(c, http.StatusNotAcceptable, "bulk data is served as multipart/related; type=\"application/octet-stream\" (Accept: %s)", acceptOf(c.Request))
		return
	}
	study, series, sop := c.Param("study"), c.Param("series"), c.Param("instance")
	insts, err := s.instancesOf(c.Request.Context(), study, series, sop)
	if err != nil || len(insts) == 0 {
		s.fail(c, http.StatusNotFound, "no such %s", resourceName(study, series, sop))
		return
	}
	in := insts[0]
	if tag == dicom.TagPixelData {
		_, b, im, ok := s.openInstanceImage(c, in)
		if !ok {
			return
		}
		defer b.Close()
		list := make([]int, 0, im.NumberOfFrames)
		for i := 1; i <= im.NumberOfFrames; i++ {
			list = append(list, i)
		}
		parts := make([]func() (io.Reader, error), len(list))
		for i, f := range list {
			parts[i] = func() (io.Reader, error) { return im.Frame(f) }
		}
		media, ts := im.FrameMediaType()
		s.writeParts(c, media, ts, parts)
	} else {
		val, err := s.readValue(c.Request.Context(), in, tag)
		if err != nil {
			s.fail(c, http.StatusNotFound, "bulk data %s of instance %s: %v", hexTag(tag), sop, err)
			return
		}
		s.writeParts(c, "application/octet-stream", dicom.ExplicitVRLittleEndian, []func() (io.Reader, error){
			func() (io.Reader, error) { return bytes.NewReader(val), nil },
		})
	}
	s.audit(c, "dicomweb.bulkdata", study, series, sop, hexTag(tag), http.StatusOK)
	s.Metrics.observe("bulkdata", http.StatusOK, time.Since(start))
}

// maxBulkValue bounds a non-pixel bulk data value served from memory.
const maxBulkValue = 256 << 20

// readValue reads one top-level value of an instance, in little endian.
func (s *Server) readValue(ctx context.Context, in *storage.Instance, tag dicom.Tag) ([]byte, error) {
	lim := dicom.DefaultLimits()
	lim.MaxHeldValue = maxBulkValue
	lim.MaxHeldTotal = maxBulkValue + 1<<20
	res, ts, err := s.scanBlob(ctx, in, lim, dicom.ScanOptions{Want: dicom.WantTags(tag), StopAtPixelData: true})
	if err != nil {
		return nil, err
	}
	e, ok := res.Dataset.Get(tag)
	if !ok || e.Raw == nil {
		return nil, errNotFound
	}
	if ts.BigEndian {
		return swapped(e.Raw, e.VR), nil
	}
	return e.Raw, nil
}

// scanBlob scans the data set of an instance's blob (after its file meta)
// with opt, and returns the syntax it is in.
func (s *Server) scanBlob(ctx context.Context, in *storage.Instance, lim dicom.Limits, opt dicom.ScanOptions) (*dicom.ScanResult, dicom.TransferSyntax, error) {
	b, err := s.Blobs.Open(ctx, in.BlobKey)
	if err != nil {
		return nil, dicom.TransferSyntax{}, err
	}
	defer b.Close()
	br := bufio.NewReaderSize(b, 32<<10)
	meta, _, err := dicom.ReadFileMeta(br)
	if err != nil {
		return nil, dicom.TransferSyntax{}, err
	}
	ts, ok := dicom.LookupTransferSyntax(meta.TransferSyntaxUID)
	if !ok {
		return nil, ts, fmt.Errorf("unknown transfer syntax %s", meta.TransferSyntaxUID)
	}
	res, err := dicom.ScanWith(br, ts, lim, opt)
	return res, ts, err
}

// swapped converts a big endian binary value to little endian.
func swapped(raw []byte, vr dicom.VR) []byte {
	n := 0
	switch vr {
	case dicom.VROW, dicom.VRUS, dicom.VRSS:
		n = 2
	case dicom.VROL, dicom.VROF, dicom.VRUL, dicom.VRSL, dicom.VRFL:
		n = 4
	case dicom.VROD, dicom.VRFD, "OV", "UV", "SV":
		n = 8
	}
	if n == 0 {
		return raw
	}
	out := make([]byte, len(raw))
	copy(out, raw)
	for i := 0; i+n <= len(out); i += n {
		for a, z := i, i+n-1; a < z; a, z = a+1, z-1 {
			out[a], out[z] = out[z], out[a]
		}
	}
	return out
}

// writeParts writes a multipart/related answer whose parts come from fns.
func (s *Server) writeParts(c *gin.Context, media, ts string, fns []func() (io.Reader, error)) {
	w := c.Writer
	bw := bufio.NewWriterSize(w, 64<<10)
	mw := multipart.NewWriter(bw)
	mw.SetBoundary(newBoundary())
	w.Header().Set("Content-Type", fmt.Sprintf(`multipart/related; type=%q; boundary=%s`, media, mw.Boundary()))
	w.WriteHeader(http.StatusOK)
	for _, fn := range fns {
		r, err := fn()
		if err != nil {
			s.Logger.Warn("WADO-RS bulk data failed while streaming", "error", err)
			panic(http.ErrAbortHandler)
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", media+"; transfer-syntax="+ts)
		pw, err := mw.CreatePart(h)
		if err == nil {
			_, err = io.Copy(pw, r)
		}
		if err != nil {
			panic(http.ErrAbortHandler)
		}
	}
	if err := mw.Close(); err != nil || bw.Flush() != nil {
		panic(http.ErrAbortHandler)
	}
}
