package node

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/relais-health/relais/dicomweb"
	"github.com/relais-health/relais/retrieve"
)

// Metrics are the node's Prometheus collectors, on their own registry so
// that tests can run several nodes in one process.
type Metrics struct {
	Registry       *prometheus.Registry
	Associations   *prometheus.CounterVec
	Instances      *prometheus.CounterVec
	Bytes          *prometheus.CounterVec
	Failures       *prometheus.CounterVec
	IngestDuration *prometheus.HistogramVec
	DurableWait    *prometheus.HistogramVec

	// Queries counts C-FIND requests by information model ("patient",
	// "study"), Query/Retrieve Level and final status (4 hex digits).
	Queries *prometheus.CounterVec
	// QueryResults counts the matches sent (pending responses) by model
	// and level.
	QueryResults *prometheus.CounterVec
	// QueryDuration is the time to answer a C-FIND, by model and level.
	QueryDuration *prometheus.HistogramVec
	// Retrieves counts C-MOVE and C-GET requests by operation ("move",
	// "get") and final status (4 hex digits).
	Retrieves *prometheus.CounterVec
	// RetrieveSubOps counts C-STORE sub-operations by operation,
	// destination (the Move Destination AE; the requestor's AE for a
	// C-GET) and outcome ("completed", "failed", "warning").
	RetrieveSubOps *prometheus.CounterVec
}

// NewMetrics registers the collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		Associations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relais_dimse_associations_total", Help: "DICOM associations by outcome (accepted, rejected, released, aborted, protocol_error).",
		}, []string{"outcome"}),
		Instances: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relais_instances_stored_total", Help: "Instances made durable, by arrival channel.",
		}, []string{"channel"}),
		Bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relais_bytes_stored_total", Help: "Bytes of instances made durable, by arrival channel.",
		}, []string{"channel"}),
		Failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relais_ingest_failures_total", Help: "Instances refused, by channel and cause.",
		}, []string{"channel", "cause"}),
		IngestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "relais_ingest_duration_seconds", Help: "From the first data set byte to durability, per instance.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10, 30},
		}, []string{"channel"}),
	}
	m.DurableWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "relais_ingest_durability_wait_seconds", Help: "Part of the ingest spent waiting for the blob and journal fsyncs.",
		Buckets: []float64{.0001, .0002, .0005, .001, .002, .005, .01, .02, .05, .1, .5, 1},
	}, []string{"channel"})
	m.Queries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "relais_queries_total", Help: "C-FIND requests by information model, query level and final status.",
	}, []string{"model", "level", "status"})
	m.QueryResults = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "relais_query_results_total", Help: "C-FIND matches returned (pending responses), by information model and query level.",
	}, []string{"model", "level"})
	m.QueryDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "relais_query_duration_seconds", Help: "Time to answer a C-FIND, by information model and query level.",
		Buckets: []float64{.001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10, 30},
	}, []string{"model", "level"})
	m.Retrieves = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "relais_retrieves_total", Help: "C-MOVE and C-GET requests by operation (move, get) and final status.",
	}, []string{"op", "status"})
	m.RetrieveSubOps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "relais_retrieve_suboperations_total", Help: "C-STORE sub-operations of C-MOVE and C-GET by operation, destination AE and outcome (completed, failed, warning).",
	}, []string{"op", "destination", "outcome"})
	m.Registry.MustRegister(m.Associations, m.Instances, m.Bytes, m.Failures, m.IngestDuration, m.DurableWait,
		m.Queries, m.QueryResults, m.QueryDuration, m.Retrieves, m.RetrieveSubOps,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Stored implements ingest.Observer.
func (m *Metrics) Stored(channel string, bytes int64, elapsed, durability time.Duration) {
	m.DurableWait.WithLabelValues(channel).Observe(durability.Seconds())
	m.Instances.WithLabelValues(channel).Inc()
	m.Bytes.WithLabelValues(channel).Add(float64(bytes))
	m.IngestDuration.WithLabelValues(channel).Observe(elapsed.Seconds())
}

// Refused implements ingest.Observer.
func (m *Metrics) Refused(channel, cause string) {
	m.Failures.WithLabelValues(channel, cause).Inc()
}

// queried records one answered C-FIND.
func (m *Metrics) queried(model, level string, status uint16, results int, elapsed time.Duration) {
	if m == nil {
		return
	}
	if level == "" {
		level = "unknown"
	}
	if model == "" {
		model = "unknown"
	}
	m.Queries.WithLabelValues(model, level, fmt.Sprintf("%04X", status)).Inc()
	if results > 0 {
		m.QueryResults.WithLabelValues(model, level).Add(float64(results))
	}
	m.QueryDuration.WithLabelValues(model, level).Observe(elapsed.Seconds())
}

// retrieved records one answered C-MOVE or C-GET (op "move" or "get") and
// its sub-operations (out is nil when none were attempted).
func (m *Metrics) retrieved(op, dest string, status uint16, out *retrieve.Outcome) {
	if m == nil {
		return
	}
	m.Retrieves.WithLabelValues(op, fmt.Sprintf("%04X", status)).Inc()
	if out == nil {
		return
	}
	for _, o := range []struct {
		outcome string
		n       int
	}{{"completed", out.Completed}, {"failed", out.Failed}, {"warning", out.Warning}} {
		if o.n > 0 {
			m.RetrieveSubOps.WithLabelValues(op, dest, o.outcome).Add(float64(o.n))
		}
	}
}

func (n *Node) httpHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		st, err := n.Index.Stats(r.Context())
		w.Header().Set("Content-Type", "application/json")
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(map[string]string{"status": "unhealthy", "error": err.Error()})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"status": "ok", "ae_title": n.Config.AETitle, "journal_seq": n.Journal.LastSeq(), "index": st})
	})
	if n.DICOMweb != nil {
		base := n.DICOMweb.BasePath
		if base == "" {
			base = dicomweb.DefaultBasePath
		}
		h := n.DICOMweb.Handler()
		mux.Handle(base+"/", h)
		mux.Handle(base, h)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.Metrics.Registry, promhttp.HandlerOpts{}))
	if n.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
