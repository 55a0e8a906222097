package node

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
	m.Registry.MustRegister(m.Associations, m.Instances, m.Bytes, m.Failures, m.IngestDuration, m.DurableWait,
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
	mux.Handle("GET /metrics", promhttp.HandlerFor(n.Metrics.Registry, promhttp.HandlerOpts{}))
	if n.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
