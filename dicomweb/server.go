// Package dicomweb serves DICOMweb (PS3.18): QIDO-RS searches through the
// query engine that answers C-FIND, WADO-RS retrievals streamed from the
// blob store, and STOW-RS stores through the ingest pipeline that C-STORE
// uses (same durability, same journal). It owns the HTTP side only: media
// type negotiation, URLs, status codes, CORS and the access check hook;
// storage, matching, JSON encoding (package dicomjson), pixel access
// (package imaging) and multipart stores (package stow) live elsewhere.
//
// Routes are served under a base path (Orthanc's "/dicom-web" by default,
// so viewers' usual settings work).
package dicomweb

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/relais-health/relais/ingest"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/query"
	"github.com/relais-health/relais/storage"
)

// DefaultBasePath is where DICOMweb is served.
const DefaultBasePath = "/dicom-web"

// Access is what a request wants to do, for the access check.
type Access int

// The kinds of access.
const (
	// Read covers QIDO-RS and WADO-RS: patient data leaves Relais.
	Read Access = iota
	// Store covers STOW-RS.
	Store
)

func (a Access) String() string {
	if a == Store {
		return "store"
	}
	return "read"
}

// Authorizer decides whether a request may proceed. When it may not, it
// writes the answer (401 with a challenge, 403) itself and returns false;
// otherwise it returns who asks (recorded in the journal) and which studies
// they may see.
type Authorizer func(w http.ResponseWriter, r *http.Request, a Access) (p Principal, ok bool)

// Principal is an authorized caller.
type Principal struct {
	User string
	// Study, when set, says whether the caller may see a study: a
	// requester sees its site's studies only. Searches leave the others
	// out; a retrieval of another study is answered 404, as if it did not
	// exist. Nil: every study.
	Study func(studyUID string) bool
}

// Server serves DICOMweb. Set its fields, then call Handler.
type Server struct {
	Index   storage.Index
	Blobs   storage.Blobs
	Ingest  *ingest.Pipeline
	Journal *journal.Journal
	Logger  *slog.Logger
	Metrics *Metrics
	// Authorize is called before every route that reads or stores patient
	// data. nil lets every request through (http.auth: none).
	Authorize Authorizer
	// BasePath is the path prefix (DefaultBasePath when empty).
	BasePath string
	// PublicURL is the scheme and host clients use ("https://relais.example"),
	// for Retrieve URLs and Bulk Data URIs; empty: from each request.
	PublicURL string
	// AllowedOrigins is the CORS policy ("*" for any origin); empty: none.
	AllowedOrigins []string
	// CORSMaxAge is how long a preflight answer may be cached.
	CORSMaxAge time.Duration
	// MaxResults bounds one QIDO-RS answer (0: unlimited); a client asking
	// more gets this many and a Warning header.
	MaxResults int
	// MaxSTOWSize bounds one STOW-RS request body.
	MaxSTOWSize int64
	// Full, when set, reports that the data disk is too full to store:
	// STOW-RS then answers 503 (with Retry-After) before reading the body.
	Full func() bool
	// Workers is the parallelism of metadata reads (default 8: blob reads
	// wait on the disk or S3, not the CPU).
	Workers int
	// MetadataCacheBytes bounds the cache of instance metadata (default
	// 64 MiB; negative disables it).
	MetadataCacheBytes int64

	cache *metaCache
}

func (s *Server) base() string {
	if s.BasePath == "" {
		return DefaultBasePath
	}
	return strings.TrimRight(s.BasePath, "/")
}

// Handler returns the HTTP handler of every DICOMweb route under the base
// path (paths outside it get 404).
func (s *Server) Handler() http.Handler {
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	if s.Metrics == nil {
		s.Metrics = NewMetrics()
	}
	if s.Workers <= 0 {
		s.Workers = 8
	}
	if s.MetadataCacheBytes == 0 {
		s.MetadataCacheBytes = 64 << 20
	}
	if s.MetadataCacheBytes > 0 {
		s.cache = newMetaCache(s.MetadataCacheBytes)
	}
	gin.SetMode(gin.ReleaseMode)
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.Use(s.recover, s.cors)
	e.NoRoute(func(c *gin.Context) { s.fail(c, http.StatusNotFound, "no DICOMweb resource at %s", c.Request.URL.Path) })
	e.NoMethod(func(c *gin.Context) {
		s.fail(c, http.StatusMethodNotAllowed, "method %s not allowed on %s", c.Request.Method, c.Request.URL.Path)
	})
	g := e.Group(s.base())
	read := s.guard(Read)
	store := s.guard(Store)

	// QIDO-RS
	g.GET("/studies", read, s.qido(query.Study))
	g.GET("/series", read, s.qido(query.Series))
	g.GET("/instances", read, s.qido(query.Image))
	g.GET("/studies/:study/series", read, s.qido(query.Series))
	g.GET("/studies/:study/instances", read, s.qido(query.Image))
	g.GET("/studies/:study/series/:series/instances", read, s.qido(query.Image))

	// WADO-RS
	g.GET("/studies/:study", read, s.retrieve)
	g.GET("/studies/:study/series/:series", read, s.retrieve)
	g.GET("/studies/:study/series/:series/instances/:instance", read, s.retrieve)
	g.GET("/studies/:study/metadata", read, s.metadata)
	g.GET("/studies/:study/series/:series/metadata", read, s.metadata)
	g.GET("/studies/:study/series/:series/instances/:instance/metadata", read, s.metadata)
	g.GET("/studies/:study/series/:series/instances/:instance/frames/:frames", read, s.frames)
	g.GET("/studies/:study/series/:series/instances/:instance/bulkdata/:tag", read, s.bulkdata)
	g.GET("/studies/:study/series/:series/instances/:instance/rendered", read, s.rendered(false))
	g.GET("/studies/:study/series/:series/instances/:instance/frames/:frames/rendered", read, s.rendered(false))
	g.GET("/studies/:study/series/:series/instances/:instance/thumbnail", read, s.rendered(true))
	g.GET("/studies/:study/series/:series/instances/:instance/frames/:frames/thumbnail", read, s.rendered(true))
	g.GET("/studies/:study/series/:series/thumbnail", read, s.rendered(true))
	g.GET("/studies/:study/thumbnail", read, s.rendered(true))

	// STOW-RS
	g.POST("/studies", store, s.stow)
	g.POST("/studies/:study", store, s.stow)
	return e
}

// guard runs the access check.
func (s *Server) guard(a Access) gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.Authorize == nil {
			return
		}
		p, ok := s.Authorize(c.Writer, c.Request, a)
		if !ok {
			s.Metrics.observe("denied", c.Writer.Status(), 0)
			s.Logger.Warn("DICOMweb request refused", "method", c.Request.Method, "path", c.Request.URL.Path,
				"remote", c.ClientIP(), "status", c.Writer.Status(), "access", a.String())
			c.Abort()
			return
		}
		c.Set(userKey, p.User)
		if p.Study != nil {
			c.Set(scopeKey, p.Study)
			if study := c.Param("study"); study != "" && !p.Study(study) {
				s.Logger.Warn("DICOMweb: a study outside the caller's site", "user", p.User, "study", study, "path", c.Request.URL.Path, "remote", c.ClientIP())
				s.audit(c, "dicomweb.denied", study, "", "", "study outside the caller's site", http.StatusNotFound)
				s.fail(c, http.StatusNotFound, "no study %s", study)
				c.Abort()
				return
			}
		}
	}
}

const (
	userKey  = "relais.user"
	scopeKey = "relais.scope"
)

// allowed reports whether the request's caller may see study.
func allowed(c *gin.Context, study string) bool {
	v, ok := c.Get(scopeKey)
	if !ok {
		return true
	}
	return v.(func(string) bool)(study)
}

// recover turns a panic in a handler into a 500 and a log line: a bug in
// one request must not take the node (and its DIMSE side) down.
// http.ErrAbortHandler is re-raised: it is how a handler cuts a response
// that already started.
func (s *Server) recover(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.Logger.Error("DICOMweb handler panic", "panic", v, "path", c.Request.URL.Path)
			if !c.Writer.Written() {
				s.fail(c, http.StatusInternalServerError, "internal error")
			}
			c.Abort()
		}
	}()
	c.Next()
}

// cors applies the CORS policy. Preflight requests are answered here
// (before authentication: browsers never send credentials with them).
func (s *Server) cors(c *gin.Context) {
	origin := c.Request.Header.Get("Origin")
	if origin == "" || len(s.AllowedOrigins) == 0 {
		return
	}
	allowed := ""
	for _, o := range s.AllowedOrigins {
		if o == "*" {
			allowed = "*"
			break
		}
		if strings.EqualFold(strings.TrimRight(o, "/"), origin) {
			allowed = origin
			break
		}
	}
	if allowed == "" {
		if c.Request.Method == http.MethodOptions {
			c.AbortWithStatus(http.StatusForbidden)
		}
		return
	}
	h := c.Writer.Header()
	h.Set("Access-Control-Allow-Origin", allowed)
	if allowed != "*" {
		h.Add("Vary", "Origin")
	}
	h.Set("Access-Control-Expose-Headers", "Content-Type, Content-Length, Content-Encoding, Warning, Location")
	if c.Request.Method == http.MethodOptions && c.Request.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Accept, Content-Type, Cache-Control, X-Requested-With")
		if s.CORSMaxAge > 0 {
			h.Set("Access-Control-Max-Age", fmt.Sprint(int(s.CORSMaxAge.Seconds())))
		}
		c.AbortWithStatus(http.StatusNoContent)
	}
}

// fail answers an error: the status, a Warning header with the reason
// (PS3.18 8.6.3) and a small JSON body; it is logged.
func (s *Server) fail(c *gin.Context, status int, format string, a ...any) {
	msg := fmt.Sprintf(format, a...)
	c.Writer.Header().Add("Warning", fmt.Sprintf("299 relais: %q", msg))
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	s.Logger.Log(c.Request.Context(), level, "DICOMweb request failed", "method", c.Request.Method, "path", c.Request.URL.Path,
		"status", status, "reason", msg, "remote", c.ClientIP())
	c.AbortWithStatusJSON(status, gin.H{"error": msg})
}

// baseURL is the absolute URL of the base path, for Retrieve URLs.
func (s *Server) baseURL(r *http.Request) string {
	if s.PublicURL != "" {
		return strings.TrimRight(s.PublicURL, "/") + s.base()
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "https" || p == "http" {
		scheme = p
	}
	return scheme + "://" + r.Host + s.base()
}

// audit journals an access to patient data: who, what, from where.
func (s *Server) audit(c *gin.Context, kind, study, series, sop, detail string, status int) {
	if s.Journal == nil {
		return
	}
	user, _ := c.Get(userKey)
	u, _ := user.(string)
	addr := c.Request.RemoteAddr
	if h, _, err := net.SplitHostPort(addr); err == nil {
		addr = h
	}
	s.Journal.AppendAsync(&journal.Event{
		Kind: kind, User: u, Addr: addr, StudyUID: study, SeriesUID: series, SOPInstanceUID: sop,
		Status: fmt.Sprint(status), Reason: detail,
	})
}

// acceptOf is the Accept header, or the "accept" query parameter that
// PS3.18 8.3.3.1 allows in its place.
func acceptOf(r *http.Request) string {
	if v := r.URL.Query().Get("accept"); v != "" {
		return v
	}
	return r.Header.Get("Accept")
}

// Metrics counts DICOMweb requests.
type Metrics struct {
	Requests *prometheus.CounterVec
	Latency  *prometheus.HistogramVec
}

// NewMetrics creates unregistered metrics (Register adds them).
func NewMetrics() *Metrics {
	return &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relais_dicomweb_requests_total", Help: "DICOMweb requests by service (qido, wado, metadata, frames, rendered, stow, denied) and HTTP status.",
		}, []string{"service", "status"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "relais_dicomweb_request_seconds", Help: "DICOMweb request duration by service, until the last byte.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"service"}),
	}
}

// Register adds the metrics to a registry.
func (m *Metrics) Register(r prometheus.Registerer) {
	r.MustRegister(m.Requests, m.Latency)
}

func (m *Metrics) observe(service string, status int, d time.Duration) {
	m.Requests.WithLabelValues(service, fmt.Sprint(status)).Inc()
	if d > 0 {
		m.Latency.WithLabelValues(service).Observe(d.Seconds())
	}
}
