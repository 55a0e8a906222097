package queue

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the delivery collectors. NewMetrics does not register them:
// call Register with the node's registry.
type Metrics struct {
	// Tasks is the number of tasks by state.
	Tasks *prometheus.GaugeVec
	// Deliveries counts attempts by destination and outcome (sent, failed,
	// failover, dead).
	Deliveries *prometheus.CounterVec
	// Latency is the time from task creation (the route firing, right
	// after the instance was acknowledged) to its delivery, by destination.
	Latency *prometheus.HistogramVec
	// Redeliveries counts instances sent again because the outcome of an
	// earlier attempt was lost in a crash (at-least-once delivery).
	Redeliveries *prometheus.CounterVec
	// Up is 1 when the last attempt to the destination succeeded.
	Up *prometheus.GaugeVec
	// LastSuccess is the Unix time of the last delivery to the destination.
	LastSuccess *prometheus.GaugeVec
	// Backlog is the number of pending tasks of the destination.
	Backlog *prometheus.GaugeVec
	// OldestAge is the age in seconds of the destination's oldest pending
	// task (0 when none).
	OldestAge *prometheus.GaugeVec
}

// NewMetrics returns unregistered collectors.
func NewMetrics() *Metrics {
	dest := []string{"destination"}
	return &Metrics{
		Tasks: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "relais_delivery_tasks", Help: "Delivery tasks by state (pending, done, dead, cancelled).",
		}, []string{"state"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relais_deliveries_total", Help: "Delivery attempts by destination and outcome (sent, failed, failover, dead).",
		}, []string{"destination", "outcome"}),
		Latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "relais_delivery_latency_seconds", Help: "From the task's creation (route fired after the acknowledgement) to the destination's acceptance.",
			Buckets: []float64{.005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600},
		}, dest),
		Redeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relais_delivery_redeliveries_total", Help: "Instances possibly sent twice: an earlier attempt's outcome was lost in a crash.",
		}, dest),
		Up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "relais_destination_up", Help: "1 if the last delivery attempt to the destination succeeded, else 0.",
		}, dest),
		LastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "relais_destination_last_success_timestamp_seconds", Help: "Unix time of the last successful delivery to the destination.",
		}, dest),
		Backlog: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "relais_destination_backlog", Help: "Pending delivery tasks of the destination.",
		}, dest),
		OldestAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "relais_destination_oldest_task_age_seconds", Help: "Age of the destination's oldest pending task (0 if none).",
		}, dest),
	}
}

// Register registers every collector with r.
func (m *Metrics) Register(r prometheus.Registerer) error {
	var errs []error
	for _, c := range []prometheus.Collector{m.Tasks, m.Deliveries, m.Latency, m.Redeliveries, m.Up, m.LastSuccess, m.Backlog, m.OldestAge} {
		errs = append(errs, r.Register(c))
	}
	return errors.Join(errs...)
}

func (m *Metrics) refresh(now time.Time, states map[State]int, dests map[string]DestStats, known []string) {
	if m == nil {
		return
	}
	for _, st := range States {
		m.Tasks.WithLabelValues(string(st)).Set(float64(states[st]))
	}
	seen := map[string]bool{}
	for _, d := range known {
		seen[d] = true
	}
	for d := range dests {
		seen[d] = true
	}
	for d := range seen {
		ds := dests[d]
		m.Backlog.WithLabelValues(d).Set(float64(ds.Backlog))
		age := 0.0
		if !ds.Oldest.IsZero() {
			age = max(0, now.Sub(ds.Oldest).Seconds())
		}
		m.OldestAge.WithLabelValues(d).Set(age)
	}
}
