package dicomweb

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/stow"
)

// maxWarningHeaders bounds the Warning header fields of one STOW answer.
const maxWarningHeaders = 20

// stow is STOW-RS (PS3.18 10.5): the parts stream through the ingest
// pipeline C-STORE uses; the answer is sent once every stored instance is
// durable.
func (s *Server) stow(c *gin.Context) {
	start := time.Now()
	study := c.Param("study")
	_, answer, ok := acceptsAny(parseAccept(acceptOf(c.Request)), "application/dicom+json", "application/json", "application/dicom+xml")
	if !ok {
		s.fail(c, http.StatusNotAcceptable, "the STOW-RS answer is application/dicom+json or application/dicom+xml (Accept: %s)", acceptOf(c.Request))
		return
	}
	if s.Full != nil && s.Full() {
		c.Header("Retry-After", "60")
		s.fail(c, http.StatusServiceUnavailable, "the data disk is full: nothing can be stored until space is freed")
		return
	}
	user, _ := c.Get(userKey)
	u, _ := user.(string)
	base := s.baseURL(c.Request)
	body := http.MaxBytesReader(c.Writer, c.Request.Body, s.maxSTOW())
	resp, err := stow.Store(c.Request.Context(), s.Ingest, c.GetHeader("Content-Type"), body, stow.Options{
		StudyInstanceUID: study,
		Source:           storage.Source{Channel: "stow", RemoteAddr: c.Request.RemoteAddr, User: u},
		RetrieveURL: func(st, se, sop string) string {
			switch {
			case sop != "":
				return base + "/studies/" + st + "/series/" + se + "/instances/" + sop
			case se != "":
				return base + "/studies/" + st + "/series/" + se
			}
			return base + "/studies/" + st
		},
		Logger: s.Logger,
	})
	if err != nil {
		var re *stow.RequestError
		if errors.As(err, &re) {
			s.fail(c, re.HTTPStatus, "%s", re.Reason)
		} else {
			s.fail(c, http.StatusInternalServerError, "%v", err)
		}
		s.Metrics.observe("stow", c.Writer.Status(), time.Since(start))
		return
	}
	h := c.Writer.Header()
	write := resp.WriteJSON
	if answer == "application/dicom+xml" {
		write = resp.WriteXML
	}
	h.Set("Content-Type", answer)
	if answer == "application/json" {
		h.Set("Content-Type", "application/dicom+json")
	}
	for i, r := range resp.Reasons() {
		if i == maxWarningHeaders {
			h.Add("Warning", fmt.Sprintf("299 relais: %q", fmt.Sprintf("%d more", len(resp.Reasons())-i)))
			break
		}
		h.Add("Warning", fmt.Sprintf("299 relais: %q", r))
	}
	c.Status(resp.HTTPStatus)
	if err := write(c.Writer); err != nil {
		s.Logger.Debug("stow: client went away before the answer", "error", err)
	}
	s.Logger.Info("STOW-RS", "user", u, "remote", c.ClientIP(), "study", study, "stored", resp.Stored, "failed", resp.Failed,
		"warnings", resp.Warnings, "status", resp.HTTPStatus, "elapsed", time.Since(start))
	s.Metrics.observe("stow", resp.HTTPStatus, time.Since(start))
}

func (s *Server) maxSTOW() int64 {
	if s.MaxSTOWSize <= 0 {
		return 4 << 30
	}
	return s.MaxSTOWSize
}
