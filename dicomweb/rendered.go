package dicomweb

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/imaging"
	"github.com/relais-health/relais/storage"
)

// thumbnailSize is the box a thumbnail fits in when no viewport is asked.
const thumbnailSize = 200

// renderParams are the query parameters of /rendered and /thumbnail
// (PS3.18 8.3.5.1).
type renderParams struct {
	opt     imaging.RenderOptions
	quality int
}

func parseRenderParams(c *gin.Context, thumbnail bool) (renderParams, error) {
	p := renderParams{quality: 90}
	q := c.Request.URL.Query()
	if v := q.Get("window"); v != "" {
		parts := strings.Split(v, ",")
		if len(parts) < 2 || len(parts) > 3 {
			return p, fmt.Errorf("window=%q: want center,width[,function]", v)
		}
		wc, err1 := strconv.ParseFloat(strings.TrimSpace(parts[0]), 64)
		ww, err2 := strconv.ParseFloat(strings.TrimSpace(parts[1]), 64)
		if err1 != nil || err2 != nil || ww < 1 {
			return p, fmt.Errorf("window=%q: center and width must be numbers, width at least 1", v)
		}
		p.opt.WindowCenter, p.opt.WindowWidth = &wc, &ww
		if len(parts) == 3 {
			f := strings.ToUpper(strings.TrimSpace(parts[2]))
			switch f {
			case "LINEAR", "LINEAR_EXACT", "SIGMOID":
				p.opt.Function = f
			default:
				return p, fmt.Errorf("window function %q is not linear, linear-exact or sigmoid", parts[2])
			}
		}
	}
	if v := q.Get("viewport"); v != "" {
		parts := strings.Split(v, ",")
		if len(parts) != 2 && len(parts) != 6 {
			return p, fmt.Errorf("viewport=%q: want vw,vh (source regions are not supported)", v)
		}
		vw, err1 := strconv.Atoi(strings.TrimSpace(parts[0]))
		vh, err2 := strconv.Atoi(strings.TrimSpace(parts[1]))
		if err1 != nil || err2 != nil || vw < 1 || vh < 1 || vw > 8192 || vh > 8192 {
			return p, fmt.Errorf("viewport=%q: width and height must be 1..8192", v)
		}
		p.opt.MaxWidth, p.opt.MaxHeight = vw, vh
	} else if thumbnail {
		p.opt.MaxWidth, p.opt.MaxHeight = thumbnailSize, thumbnailSize
	}
	if v := q.Get("quality"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return p, fmt.Errorf("quality=%q: want 1..100", v)
		}
		p.quality = n
	}
	return p, nil
}

// rendered is WADO-RS Retrieve Rendered and Retrieve Thumbnail: a frame as
// a consumer image (JPEG by default, PNG, GIF), windowed.
func (s *Server) rendered(thumbnail bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		p, err := parseRenderParams(c, thumbnail)
		if err != nil {
			s.fail(c, http.StatusBadRequest, "%v", err)
			return
		}
		_, media, ok := acceptsAny(parseAccept(acceptOf(c.Request)), "image/jpeg", "image/png", "image/gif")
		if !ok {
			s.fail(c, http.StatusNotAcceptable, "rendered images are image/jpeg, image/png or image/gif (Accept: %s)", acceptOf(c.Request))
			return
		}
		frame := 1
		if f := c.Param("frames"); f != "" {
			list, err := parseFrameList(f)
			if err != nil || len(list) != 1 {
				s.fail(c, http.StatusBadRequest, "render one frame at a time (frames %q)", f)
				return
			}
			frame = list[0]
		}
		var in *storage.Instance
		if c.Param("instance") != "" {
			insts, err := s.instancesOf(c.Request.Context(), c.Param("study"), c.Param("series"), c.Param("instance"))
			if err != nil || len(insts) == 0 {
				s.fail(c, http.StatusNotFound, "no such %s", resourceName(c.Param("study"), c.Param("series"), c.Param("instance")))
				return
			}
			in = insts[0]
		} else {
			in = s.representative(c, c.Param("study"), c.Param("series"))
			if in == nil {
				s.fail(c, http.StatusNotFound, "no image to show in %s", resourceName(c.Param("study"), c.Param("series"), ""))
				return
			}
			frame = 0 // the middle frame
		}
		_, b, im, ok := s.openInstanceImage(c, in)
		if !ok {
			return
		}
		defer b.Close()
		if frame == 0 {
			frame = (im.NumberOfFrames + 1) / 2
		}
		if frame > im.NumberOfFrames {
			s.fail(c, http.StatusNotFound, "frame %d: the instance has %d frames", frame, im.NumberOfFrames)
			return
		}
		img, err := im.Render(frame, p.opt)
		if err != nil {
			s.fail(c, http.StatusNotAcceptable, "cannot render %s frame %d: %v", in.SOPInstanceUID, frame, err)
			return
		}
		var buf bytes.Buffer
		if err := imaging.Encode(&buf, img, media, p.quality); err != nil {
			s.fail(c, http.StatusInternalServerError, "encode %s: %v", media, err)
			return
		}
		c.Header("Cache-Control", "private, max-age=3600")
		c.Data(http.StatusOK, media, buf.Bytes())
		kind := "dicomweb.rendered"
		if thumbnail {
			kind = "dicomweb.thumbnail"
		}
		s.audit(c, kind, in.StudyInstanceUID, in.SeriesInstanceUID, in.SOPInstanceUID, fmt.Sprintf("frame=%d", frame), http.StatusOK)
		s.Metrics.observe(strings.TrimPrefix(kind, "dicomweb."), http.StatusOK, time.Since(start))
	}
}

// representative picks the instance whose image stands for a study or a
// series: the middle image of the series (or of the study's first series
// that has images).
func (s *Server) representative(c *gin.Context, study, series string) *storage.Instance {
	insts, err := s.instancesOf(c.Request.Context(), study, series, "")
	if err != nil {
		return nil
	}
	bySeries := map[string][]*storage.Instance{}
	var order []string
	for _, in := range insts {
		if in.Attrs[hexTag(dicom.TagRows)] == "" {
			continue // no pixel data: SR, KOS, presentation states
		}
		if _, ok := bySeries[in.SeriesInstanceUID]; !ok {
			order = append(order, in.SeriesInstanceUID)
		}
		bySeries[in.SeriesInstanceUID] = append(bySeries[in.SeriesInstanceUID], in)
	}
	if len(order) == 0 {
		return nil
	}
	list := bySeries[order[0]]
	// Sort by Instance Number so the middle is the middle of the volume.
	num := func(in *storage.Instance) int {
		n, _ := strconv.Atoi(strings.TrimSpace(in.Attrs[hexTag(dicom.TagInstanceNumber)]))
		return n
	}
	for i := 1; i < len(list); i++ {
		for j := i; j > 0 && num(list[j]) < num(list[j-1]); j-- {
			list[j], list[j-1] = list[j-1], list[j]
		}
	}
	return list[len(list)/2]
}
