package worklist

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relais-health/relais/config"
)

type metrics struct {
	items       *prometheus.GaugeVec
	created     *prometheus.CounterVec
	toClaim     *prometheus.HistogramVec
	toReport    *prometheus.HistogramVec
	escalations *prometheus.CounterVec
	unassigned  *prometheus.CounterVec
	lockExpired prometheus.Counter
	webhooks    *prometheus.CounterVec
}

func newMetrics() *metrics {
	buckets := []float64{10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400}
	return &metrics{
		items: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "relais_worklist_items",
			Help: "Worklist items by state and priority."}, []string{"state", "priority"}),
		created: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relais_worklist_items_created_total",
			Help: "Worklist items created, by priority."}, []string{"priority"}),
		toClaim: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "relais_worklist_time_to_claim_seconds",
			Help: "From the study's ready time to its first claim, by priority.", Buckets: buckets}, []string{"priority"}),
		toReport: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "relais_worklist_time_to_report_seconds",
			Help: "From the study's ready time to its signed report, by priority.", Buckets: buckets}, []string{"priority"}),
		escalations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relais_worklist_escalations_total",
			Help: "Items escalated before their deadline, by priority and activity (claim, report)."}, []string{"priority", "activity"}),
		unassigned: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relais_worklist_unassigned_total",
			Help: "Items left in their pool unassigned because nobody of the directory was on call, by pool."}, []string{"pool"}),
		lockExpired: prometheus.NewCounter(prometheus.CounterOpts{Name: "relais_worklist_lock_expirations_total",
			Help: "Claims that expired without renewal (the item went back to scheduled)."}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relais_worklist_webhooks_total",
			Help: "Escalation webhooks by outcome (ok, failed)."}, []string{"outcome"}),
	}
}

func (m *metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.items, m.created, m.toClaim, m.toReport, m.escalations, m.unassigned, m.lockExpired, m.webhooks} {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("worklist: metrics: %w", err)
		}
	}
	return nil
}

// refreshGauges recomputes relais_worklist_items (w.mu held).
func (w *Worklist) refreshGauges() {
	counts := map[[2]string]int{}
	for _, it := range w.items {
		counts[[2]string{it.State, it.Priority}]++
	}
	for _, s := range States {
		for _, p := range []string{config.PriorityStat, config.PriorityUrgent, config.PriorityRoutine} {
			w.m.items.WithLabelValues(s, p).Set(float64(counts[[2]string{s, p}]))
		}
	}
}
