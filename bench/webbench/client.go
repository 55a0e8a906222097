package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// study names the UIDs the requests use.
type study struct {
	patientID, study, series, sop string
	n                             int   // instances
	bytes                         int64 // total size of the Part 10 files sent
}

// kind is one kind of request.
type kind struct {
	name  string
	label string
	path  func(st *study) string
	hdr   map[string]string
	reps  int // requests per run (small requests are repeated so a run is not a single ms)
	// cold: also measured as the first request after a restart with the
	// server's files evicted from the page cache.
	cold bool
	// wantParts: the number of multipart parts expected (0: not multipart).
	wantParts func(st *study) int
}

const (
	acceptDICOM = `multipart/related; type="application/dicom"; transfer-syntax=*`
	acceptJSON  = "application/dicom+json"
)

func kinds() []kind {
	inst := func(st *study) string {
		return "/studies/" + st.study + "/series/" + st.series + "/instances/" + st.sop
	}
	return []kind{
		{name: "retrieve", label: "WADO-RS Retrieve Study (multipart, transfer-syntax=*)", reps: 1, cold: true,
			path: func(st *study) string { return "/studies/" + st.study },
			hdr:  map[string]string{"Accept": acceptDICOM}, wantParts: func(st *study) int { return st.n }},
		{name: "metadata", label: "Retrieve Study Metadata (identity)", reps: 1, cold: true,
			path: func(st *study) string { return "/studies/" + st.study + "/metadata" },
			hdr:  map[string]string{"Accept": acceptJSON}},
		{name: "metadata-gzip", label: "Retrieve Study Metadata (Accept-Encoding: gzip)", reps: 1, cold: true,
			path: func(st *study) string { return "/studies/" + st.study + "/metadata" },
			hdr:  map[string]string{"Accept": acceptJSON, "Accept-Encoding": "gzip"}},
		{name: "qido", label: "QIDO-RS /studies?PatientID=", reps: 20,
			path: func(st *study) string { return "/studies?PatientID=" + st.patientID },
			hdr:  map[string]string{"Accept": acceptJSON}},
		{name: "frames", label: "WADO-RS frames/1 of one instance", reps: 20,
			path:      func(st *study) string { return inst(st) + "/frames/1" },
			hdr:       map[string]string{"Accept": `multipart/related; type="application/octet-stream"; transfer-syntax=*`},
			wantParts: func(*study) int { return 1 }},
		{name: "rendered", label: "WADO-RS /rendered of one instance (JPEG)", reps: 20,
			path: func(st *study) string { return inst(st) + "/rendered" },
			hdr:  map[string]string{"Accept": "image/jpeg"}},
	}
}

// result is one timed request.
type result struct {
	dur      time.Duration
	bytes    int64 // body bytes as sent (compressed when the server compressed)
	parts    int   // multipart parts, -1 when not multipart
	encoding string
	status   int
	ctype    string
	client   time.Duration // CPU time of this process (the client) during the request
}

// selfCPU is the user+system CPU time of this process.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// do sends one request and reads the whole body, counting multipart parts
// on the fly (no other decoding).
func do(s *server, k kind, st *study) (result, error) {
	req, err := http.NewRequest(http.MethodGet, s.base+k.path(st), nil)
	if err != nil {
		return result{}, err
	}
	for h, v := range k.hdr {
		req.Header.Set(h, v)
	}
	c0, t0 := selfCPU(), time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		return result{}, err
	}
	r := result{parts: -1, status: resp.StatusCode, encoding: resp.Header.Get("Content-Encoding"), ctype: resp.Header.Get("Content-Type")}
	var w io.Writer = io.Discard
	var pc *partCounter
	if mt, params, err := mime.ParseMediaType(r.ctype); err == nil && strings.HasPrefix(mt, "multipart/") && params["boundary"] != "" {
		pc = newPartCounter(params["boundary"])
		w = pc
	}
	r.bytes, err = io.Copy(w, resp.Body)
	resp.Body.Close()
	r.dur = time.Since(t0)
	r.client = selfCPU() - c0
	if pc != nil {
		r.parts = pc.parts()
	}
	if err != nil {
		return r, err
	}
	if r.status != http.StatusOK {
		return r, fmt.Errorf("%s %s: HTTP %d", s.name, k.name, r.status)
	}
	if k.wantParts != nil && r.parts != k.wantParts(st) {
		return r, fmt.Errorf("%s %s: %d parts, want %d", s.name, k.name, r.parts, k.wantParts(st))
	}
	return r, nil
}

// partCounter counts occurrences of the multipart delimiter in a stream.
type partCounter struct {
	delim []byte
	carry []byte
	n     int
}

func newPartCounter(boundary string) *partCounter {
	return &partCounter{delim: []byte("--" + boundary)}
}

func (p *partCounter) Write(b []byte) (int, error) {
	k := len(p.delim) - 1
	// Delimiters that start in the carry (shorter than one) and end in b.
	span := append(p.carry, b[:min(len(b), k)]...)
	if len(p.carry) > 0 {
		p.n += bytes.Count(span, p.delim)
	}
	p.n += bytes.Count(b, p.delim)
	// Keep the last k bytes of the stream, for the next call.
	if len(b) >= k {
		p.carry = append(span[:0], b[len(b)-k:]...)
	} else {
		p.carry = span[max(len(span)-k, 0):]
	}
	return len(b), nil
}

// parts is the number of delimiters minus the closing one.
func (p *partCounter) parts() int { return max(p.n-1, 0) }

// --- verification (not timed) -------------------------------------------------

// retrieveCheck is what a full multipart retrieve returned.
type retrieveCheck struct {
	parts      int
	total      int64
	datasets   map[[32]byte]int // SHA-256 of each part after its file meta group
	metaTotal  int64            // bytes of the file meta groups (preamble included)
	partTypes  map[string]int
	badPreable int
}

// checkRetrieve fetches the study and hashes each part's data set (the
// bytes after the File Meta Information), so that both servers can be
// shown to return the same data sets whatever file meta they write.
func checkRetrieve(s *server, st *study) (*retrieveCheck, error) {
	req, _ := http.NewRequest(http.MethodGet, s.base+"/studies/"+st.study, nil)
	req.Header.Set("Accept", acceptDICOM)
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		return nil, err
	}
	mr := multipart.NewReader(resp.Body, params["boundary"])
	c := &retrieveCheck{datasets: map[[32]byte]int{}, partTypes: map[string]int{}}
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return nil, err
		}
		c.parts++
		c.total += int64(len(b))
		c.partTypes[p.Header.Get("Content-Type")]++
		ds, err := afterFileMeta(b)
		if err != nil {
			c.badPreable++
			continue
		}
		c.metaTotal += int64(len(b) - len(ds))
		c.datasets[sha256.Sum256(ds)]++
	}
	return c, nil
}

// afterFileMeta returns the data set of a Part 10 file: the bytes after
// the group 0002 elements (explicit VR little endian, whatever the group
// length says).
func afterFileMeta(b []byte) ([]byte, error) {
	if len(b) < 132 || string(b[128:132]) != "DICM" {
		return nil, fmt.Errorf("no DICM preamble")
	}
	i := 132
	for i+8 <= len(b) {
		if binary.LittleEndian.Uint16(b[i:]) != 0x0002 {
			return b[i:], nil
		}
		vr := string(b[i+4 : i+6])
		switch vr {
		case "OB", "OW", "OF", "SQ", "UT", "UN", "UC", "UR", "OD", "OL", "OV", "SV", "UV":
			if i+12 > len(b) {
				return nil, fmt.Errorf("truncated file meta")
			}
			i += 12 + int(binary.LittleEndian.Uint32(b[i+8:]))
		default:
			i += 8 + int(binary.LittleEndian.Uint16(b[i+6:]))
		}
	}
	return nil, fmt.Errorf("truncated file meta")
}

// metadataCheck is what a metadata answer held.
type metadataCheck struct {
	objects  int
	withSOP  int
	wire     int64
	json     int64
	encoding string
	tags     map[string]int // attributes of the first object and their JSON size
	compact  int64          // size of the JSON without insignificant white space
}

func checkMetadata(s *server, st *study, gz bool) (*metadataCheck, error) {
	req, _ := http.NewRequest(http.MethodGet, s.base+"/studies/"+st.study+"/metadata", nil)
	req.Header.Set("Accept", acceptJSON)
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %s", resp.StatusCode, tail(string(raw), 200))
	}
	c := &metadataCheck{wire: int64(len(raw)), encoding: resp.Header.Get("Content-Encoding")}
	body := raw
	if c.encoding == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		if body, err = io.ReadAll(zr); err != nil {
			return nil, err
		}
	}
	c.json = int64(len(body))
	var cb bytes.Buffer
	if err := json.Compact(&cb, body); err == nil {
		c.compact = int64(cb.Len())
	}
	var arr []map[string]json.RawMessage
	if err := json.Unmarshal(body, &arr); err != nil {
		return nil, fmt.Errorf("metadata JSON: %v", err)
	}
	c.objects = len(arr)
	if len(arr) > 0 {
		c.tags = map[string]int{}
		for t, v := range arr[0] {
			c.tags[t] = len(v)
		}
	}
	for _, o := range arr {
		if _, ok := o["00080018"]; ok {
			c.withSOP++
		}
	}
	return c, nil
}

// countStudyInstances asks QIDO-RS for NumberOfStudyRelatedInstances.
func countStudyInstances(s *server, st *study) (int, error) {
	req, _ := http.NewRequest(http.MethodGet, s.base+"/studies?StudyInstanceUID="+st.study+"&includefield=00201208", nil)
	req.Header.Set("Accept", acceptJSON)
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		return 0, nil
	}
	var arr []map[string]struct {
		Value []any
	}
	if err := json.NewDecoder(resp.Body).Decode(&arr); err != nil {
		return 0, fmt.Errorf("HTTP %d: %v", resp.StatusCode, err)
	}
	if len(arr) == 0 || len(arr[0]["00201208"].Value) == 0 {
		return 0, nil
	}
	switch v := arr[0]["00201208"].Value[0].(type) {
	case float64:
		return int(v), nil
	case string: // IS as a string
		var n int
		_, err := fmt.Sscan(v, &n)
		return n, err
	}
	return 0, fmt.Errorf("NumberOfStudyRelatedInstances: %v", arr[0]["00201208"].Value[0])
}

// checkRendered saves the /rendered JPEG of the instance in work and
// describes it (size, dimensions).
func checkRendered(s *server, st *study, work string) string {
	req, _ := http.NewRequest(http.MethodGet, s.base+"/studies/"+st.study+"/series/"+st.series+"/instances/"+st.sop+"/rendered", nil)
	req.Header.Set("Accept", "image/jpeg")
	resp, err := s.client.Do(req)
	if err != nil {
		return fmt.Sprintf("%s rendered: %v", s.name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("%s rendered: HTTP %d %v", s.name, resp.StatusCode, err)
	}
	p := filepath.Join(work, "rendered-"+s.name+".jpg")
	_ = os.WriteFile(p, b, 0o644)
	cfg, format, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return fmt.Sprintf("%s rendered: %d bytes, %s, not decodable: %v", s.name, len(b), resp.Header.Get("Content-Type"), err)
	}
	return fmt.Sprintf("%s rendered: %d bytes %s %dx%d (%s)", s.name, len(b), format, cfg.Width, cfg.Height, p)
}
