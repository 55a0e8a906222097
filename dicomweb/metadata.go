package dicomweb

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"container/list"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dicomjson"
	"github.com/relais-health/relais/storage"
)

// metadataInline is the largest value written inline in metadata; larger
// ones (and the pixel data) are Bulk Data URIs. OHIF and other viewers
// fetch pixel data through /frames anyway.
const metadataInline = 4096

// metadata is WADO-RS Retrieve Metadata at study, series and instance
// level: a JSON array with one object per instance (PS3.18 F), read from
// each blob's header up to the pixel data (never the pixels), several
// blobs at a time, with a cache of recent instances: OHIF asks for the
// metadata of a whole study before showing anything, and gives up on slow
// answers.
func (s *Server) metadata(c *gin.Context) {
	start := time.Now()
	study, series, sop := c.Param("study"), c.Param("series"), c.Param("instance")
	ranges := parseAccept(acceptOf(c.Request))
	if _, _, ok := acceptsAny(ranges, "application/dicom+json", "application/json"); !ok {
		s.fail(c, http.StatusNotAcceptable, "metadata is served as application/dicom+json only (Accept: %s)", acceptOf(c.Request))
		return
	}
	ctx := c.Request.Context()
	insts, err := s.instancesOf(ctx, study, series, sop)
	if err != nil {
		s.fail(c, http.StatusInternalServerError, "index: %v", err)
		return
	}
	if len(insts) == 0 {
		s.fail(c, http.StatusNotFound, "no such %s", resourceName(study, series, sop))
		return
	}
	base := s.baseURL(c.Request)
	// The first chunk is computed before the status is sent, so that an
	// unreadable first blob is a 500, not a cut stream.
	const chunk = 64
	first, err := s.instanceJSONs(ctx, base, insts[:min(chunk, len(insts))])
	if err != nil {
		s.fail(c, http.StatusInternalServerError, "metadata: %v", err)
		return
	}
	w := c.Writer
	w.Header().Set("Content-Type", "application/dicom+json")
	var out io.Writer = w
	var gz *gzip.Writer
	if acceptsGzip(c.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Add("Vary", "Accept-Encoding")
		gz, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		out = gz
	}
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(out, 64<<10)
	bw.WriteByte('[')
	batch := first
	for i := 0; i < len(insts); i += chunk {
		if i > 0 {
			if batch, err = s.instanceJSONs(ctx, base, insts[i:min(i+chunk, len(insts))]); err != nil {
				s.Logger.Warn("WADO-RS metadata failed while streaming", "study", study, "error", err)
				panic(http.ErrAbortHandler)
			}
		}
		for j, b := range batch {
			if i+j > 0 {
				bw.WriteByte(',')
			}
			bw.Write(b)
		}
	}
	bw.WriteByte(']')
	err = bw.Flush()
	if err == nil && gz != nil {
		err = gz.Close()
	}
	if err != nil {
		s.Logger.Debug("metadata: client went away", "error", err)
	}
	s.audit(c, "dicomweb.metadata", study, series, sop, fmt.Sprintf("instances=%d", len(insts)), http.StatusOK)
	s.Metrics.observe("metadata", http.StatusOK, time.Since(start))
}

// writeMaybeGzip writes a whole answer, gzipped when the client accepts it
// and it is worth it.
func writeMaybeGzip(c *gin.Context, status int, contentType string, body []byte) {
	h := c.Writer.Header()
	h.Set("Content-Type", contentType)
	h.Add("Vary", "Accept-Encoding")
	if len(body) < 1024 || !acceptsGzip(c.Request) {
		c.Data(status, contentType, body)
		return
	}
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
	zw.Write(body)
	zw.Close()
	h.Set("Content-Encoding", "gzip")
	c.Data(status, contentType, z.Bytes())
}

func acceptsGzip(r *http.Request) bool {
	for _, p := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		name, q, _ := strings.Cut(strings.TrimSpace(p), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// instanceJSONs returns the metadata objects of insts, in order, reading
// up to Workers blobs at a time.
func (s *Server) instanceJSONs(ctx context.Context, base string, insts []*storage.Instance) ([][]byte, error) {
	out := make([][]byte, len(insts))
	errs := make([]error, len(insts))
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(s.Workers, len(insts)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i], errs[i] = s.instanceJSON(ctx, base, insts[i])
			}
		}()
	}
	for i := range insts {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("instance %s: %w", insts[i].SOPInstanceUID, err)
		}
	}
	return out, nil
}

// wantMetadata extracts every attribute but the pixel data, whose header
// ends the scan.
func wantMetadata(t dicom.Tag) bool { return t != dicom.TagPixelData }

// instanceJSON is one instance's metadata object.
func (s *Server) instanceJSON(ctx context.Context, base string, in *storage.Instance) ([]byte, error) {
	key := base + "\x00" + in.SOPInstanceUID + "\x00" + in.BlobKey
	if s.cache != nil {
		if b, ok := s.cache.get(key); ok {
			return b, nil
		}
	}
	res, _, err := s.scanBlob(ctx, in, dicom.DefaultLimits(), dicom.ScanOptions{
		Want: wantMetadata, StopAtPixelData: true, RecordSkipped: true, SkipLarger: metadataInline,
	})
	if err != nil {
		return nil, err
	}
	instURL := base + "/studies/" + in.StudyInstanceUID + "/series/" + in.SeriesInstanceUID + "/instances/" + in.SOPInstanceUID
	var b bytes.Buffer
	b.Grow(8 << 10)
	err = dicomjson.WriteDataset(&b, res, dicomjson.Options{
		BulkDataURI: func(t dicom.Tag) string { return instURL + "/bulkdata/" + hexTag(t) },
	})
	if err != nil {
		return nil, err
	}
	out := b.Bytes()
	if s.cache != nil {
		s.cache.put(key, out)
	}
	return out, nil
}

// metaCache is an LRU of metadata objects bounded in bytes.
type metaCache struct {
	mu    sync.Mutex
	max   int64
	size  int64
	ll    *list.List
	items map[string]*list.Element
}

type cacheEntry struct {
	key string
	val []byte
}

func newMetaCache(max int64) *metaCache {
	return &metaCache{max: max, ll: list.New(), items: map[string]*list.Element{}}
}

func (c *metaCache) get(k string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*cacheEntry).val, true
	}
	return nil, false
}

func (c *metaCache) put(k string, v []byte) {
	n := int64(len(k) + len(v))
	if n > c.max/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[k]; ok {
		return
	}
	c.items[k] = c.ll.PushFront(&cacheEntry{k, v})
	c.size += n
	for c.size > c.max {
		e := c.ll.Back()
		ce := e.Value.(*cacheEntry)
		c.ll.Remove(e)
		delete(c.items, ce.key)
		c.size -= int64(len(ce.key) + len(ce.val))
	}
}
