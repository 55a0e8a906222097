package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"time"
)

// STOWSender delivers with STOW-RS (PS3.18 10.5): one POST {URL}/studies
// per batch, multipart/related; type="application/dicom", with the Bearer
// token read (at every request, so a rotated token is picked up) from
// TokenFile or the TokenEnv environment variable. The PS3.18 JSON answer
// decides each instance: listed in the Referenced SOP Sequence (0008,1199)
// → delivered; in the Failed SOP Sequence (0008,1198) → failed with its
// Failure Reason (0008,1197); absent → failed. HTTP and network errors
// fail the whole batch (retried later).
type STOWSender struct {
	URL                 string
	TokenFile, TokenEnv string
	// Client defaults to an http.Client with a 10 min timeout.
	Client *http.Client
}

func (s *STOWSender) token() (string, error) {
	if s.TokenFile != "" {
		b, err := os.ReadFile(s.TokenFile)
		if err != nil {
			return "", fmt.Errorf("reading the destination's token: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if s.TokenEnv != "" {
		v := strings.TrimSpace(os.Getenv(s.TokenEnv))
		if v == "" {
			return "", fmt.Errorf("environment variable %s (the destination's token) is empty", s.TokenEnv)
		}
		return v, nil
	}
	return "", nil
}

var stowClient = &http.Client{Timeout: 10 * time.Minute}

// Send implements Sender.
func (s *STOWSender) Send(ctx context.Context, dest string, items []Item) []error {
	errs := make([]error, len(items))
	all := func(err error) []error {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs
	}
	tok, err := s.token()
	if err != nil {
		return all(err)
	}
	// Open every item first: one that cannot be read fails alone.
	bodies := make([]io.ReadCloser, len(items))
	var idx []int
	for i, it := range items {
		rc, err := it.Open(ctx)
		if err != nil {
			errs[i] = err
			continue
		}
		bodies[i] = rc
		idx = append(idx, i)
	}
	defer func() {
		for _, b := range bodies {
			if b != nil {
				b.Close()
			}
		}
	}()
	if len(idx) == 0 {
		return errs
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		for _, i := range idx {
			h := textproto.MIMEHeader{}
			h.Set("Content-Type", "application/dicom")
			part, err := mw.CreatePart(h)
			if err == nil {
				_, err = io.Copy(part, bodies[i])
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(mw.Close())
	}()
	url := strings.TrimRight(s.URL, "/") + "/studies"
	rq, err := http.NewRequestWithContext(ctx, http.MethodPost, url, pr)
	if err != nil {
		pr.Close()
		return all(Permanent(fmt.Errorf("STOW-RS request: %w", err)))
	}
	rq.Header.Set("Content-Type", `multipart/related; type="application/dicom"; boundary=`+mw.Boundary())
	rq.Header.Set("Accept", "application/dicom+json")
	if tok != "" {
		rq.Header.Set("Authorization", "Bearer "+tok)
	}
	c := s.Client
	if c == nil {
		c = stowClient
	}
	resp, err := c.Do(rq)
	if err != nil {
		pr.Close()
		if ctx.Err() != nil {
			return all(ctx.Err())
		}
		return all(fmt.Errorf("STOW-RS to %s: %w", url, err))
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	switch resp.StatusCode {
	case http.StatusOK, http.StatusAccepted, http.StatusConflict:
	default:
		return all(fmt.Errorf("STOW-RS to %s: HTTP %s: %s", url, resp.Status, snippet(body)))
	}
	ok, failed, err := parseSTOWResponse(body)
	if err != nil {
		return all(fmt.Errorf("STOW-RS to %s: HTTP %s with an unreadable answer: %w", url, resp.Status, err))
	}
	for _, i := range idx {
		uid := items[i].Instance.SOPInstanceUID
		switch reason, f := failed[uid]; {
		case ok[uid]:
			errs[i] = nil
		case f:
			errs[i] = fmt.Errorf("STOW-RS: %s refused %s: failure reason %s", dest, uid, reason)
			if code, err := strconv.ParseUint(strings.TrimPrefix(reason, "0x"), 16, 16); err == nil && permanentStatus(uint16(code)) {
				errs[i] = Permanent(errs[i])
			}
		default:
			errs[i] = fmt.Errorf("STOW-RS: %s's answer (HTTP %s) does not mention %s", dest, resp.Status, uid)
		}
	}
	return errs
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

type jsonAttr struct {
	VR    string            `json:"vr"`
	Value []json.RawMessage `json:"Value"`
}

// parseSTOWResponse reads a PS3.18 Store Instances Response Module in DICOM
// JSON: SOP Instance UIDs referenced as stored, and failed ones with their
// Failure Reason (hex).
func parseSTOWResponse(b []byte) (ok map[string]bool, failed map[string]string, err error) {
	ok, failed = map[string]bool{}, map[string]string{}
	if len(strings.TrimSpace(string(b))) == 0 {
		return ok, failed, errors.New("empty body")
	}
	var ds map[string]jsonAttr
	if err := json.Unmarshal(b, &ds); err != nil {
		// Some servers wrap the data set in an array.
		var arr []map[string]jsonAttr
		if err2 := json.Unmarshal(b, &arr); err2 != nil || len(arr) == 0 {
			return nil, nil, err
		}
		ds = arr[0]
	}
	items := func(tag string) []map[string]jsonAttr {
		var out []map[string]jsonAttr
		for _, raw := range ds[tag].Value {
			var it map[string]jsonAttr
			if json.Unmarshal(raw, &it) == nil {
				out = append(out, it)
			}
		}
		return out
	}
	str := func(it map[string]jsonAttr, tag string) string {
		if a, okk := it[tag]; okk && len(a.Value) > 0 {
			var s string
			if json.Unmarshal(a.Value[0], &s) == nil {
				return s
			}
			var n float64
			if json.Unmarshal(a.Value[0], &n) == nil {
				return fmt.Sprintf("%04X", int(n))
			}
		}
		return ""
	}
	for _, it := range items("00081199") {
		if uid := str(it, "00081155"); uid != "" {
			ok[uid] = true
		}
	}
	for _, it := range items("00081198") {
		if uid := str(it, "00081155"); uid != "" {
			r := str(it, "00081197")
			if r == "" {
				r = "not given"
			} else {
				r = "0x" + r
			}
			failed[uid] = r
		}
	}
	return ok, failed, nil
}
