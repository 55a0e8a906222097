package routing

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/relais-health/relais/coerce"
	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/routing/queue"
	"github.com/relais-health/relais/storage"
)

type engineMetrics struct {
	evaluated      prometheus.Counter
	fired          *prometheus.CounterVec
	tasks          prometheus.Counter
	errors         prometheus.Counter
	backpressure   prometheus.Counter
	reloads        *prometheus.CounterVec
	webhooks       *prometheus.CounterVec
	pendingStudies prometheus.Gauge
}

func newEngineMetrics() *engineMetrics {
	return &engineMetrics{
		evaluated: prometheus.NewCounter(prometheus.CounterOpts{Name: "relais_routing_instances_evaluated_total",
			Help: "Instances the routing rules were evaluated for (replays included)."}),
		fired: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relais_route_fired_total",
			Help: "Routes fired, by route and mode (per instance for immediate, per study for stable)."}, []string{"route", "mode"}),
		tasks: prometheus.NewCounter(prometheus.CounterOpts{Name: "relais_routing_tasks_created_total",
			Help: "Delivery tasks created by the routing engine (replays of existing tasks not counted)."}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "relais_routing_errors_total",
			Help: "Failures to write routing tasks or state (retried)."}),
		backpressure: prometheus.NewCounter(prometheus.CounterOpts{Name: "relais_routing_backpressure_total",
			Help: "Times ingest waited because the routing engine's channel was full."}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relais_routing_reloads_total",
			Help: "Rule reloads by outcome (ok, refused)."}, []string{"outcome"}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "relais_route_webhooks_total",
			Help: "Route webhooks by outcome (ok, failed)."}, []string{"outcome"}),
		pendingStudies: prometheus.NewGauge(prometheus.GaugeOpts{Name: "relais_routing_pending_studies",
			Help: "Stable (route, study) pairs waiting for their stability delay."}),
	}
}

func (m *engineMetrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.evaluated, m.fired, m.tasks, m.errors, m.backpressure, m.reloads, m.webhooks, m.pendingStudies} {
		if err := r.Register(c); err != nil {
			return fmt.Errorf("routing: metrics: %w", err)
		}
	}
	return nil
}

// studyActions runs the per-study actions of a route that fired: study
// ready event, webhook, priors. It runs after the tasks are committed and
// never blocks the engine (webhooks and priors run in the background).
func (e *Engine) studyActions(route, prio string, rc config.Route, study, patient string, sops []string, immediate bool) {
	now := e.deps.Clock().UTC()
	if rc.Ready {
		ev := StudyReady{Route: route, Study: study, Patient: patient, Priority: prio, Instances: len(sops), Time: now,
			Mode: config.ModeStable, Reader: rc.Reader, Pool: rc.Pool}
		if immediate {
			ev.Mode = config.ModeImmediate
		}
		data, _ := json.Marshal(ev)
		e.journal(&journal.Event{Kind: "study.ready", StudyUID: study, Reason: fmt.Sprintf("route %q, priority %s", route, prio), Data: data})
		if e.deps.OnReady != nil {
			e.deps.OnReady(ev)
		}
	}
	if rc.Webhook != "" {
		payload := map[string]any{"route": route, "study": study, "priority": prio, "instances": sops, "time": now}
		if immediate {
			payload["mode"] = config.ModeImmediate
		} else {
			payload["mode"] = config.ModeStable
		}
		e.bg.Add(1)
		go func() {
			defer e.bg.Done()
			e.webhook(rc.Webhook, route, study, payload)
		}()
	}
	if rc.Priors != nil {
		e.bg.Add(1)
		go func() {
			defer e.bg.Done()
			e.priors(rc, prio, study, patient)
		}()
	}
	if rc.KOS {
		if immediate {
			e.log.Debug("routing: kos needs a stable route: no manifest for an immediate firing", "route", route, "study", study)
			return
		}
		build := e.deps.Manifest
		if build == nil {
			e.log.Warn("routing: route has kos but no manifest builder is configured", "route", route)
			return
		}
		rq := ManifestRequest{Route: route, Priority: prio, Study: study,
			Forward: append([]string(nil), rc.Forward...), Failover: append([]string(nil), rc.Failover...)}
		if r := e.ruleByName(route); r != nil {
			rq.Coerce = r.coerce
		}
		e.bg.Add(1)
		go func() {
			defer e.bg.Done()
			e.manifest(build, rq)
		}()
	}
}

// SetOnReady sets Deps.OnReady (what receives the "study ready for
// reading" events), for a worklist created after the engine. It must not
// block. Call it before Run.
func (e *Engine) SetOnReady(f func(StudyReady)) { e.deps.OnReady = f }

// SetClock sets Deps.Clock (an injected clock, see RELAIS_CLOCK). Call it
// before Run.
func (e *Engine) SetClock(c func() time.Time) {
	if c != nil {
		e.deps.Clock = c
	}
}

// Rota returns the on-call rota of a configured calendar (as loaded by the
// rules in force, refreshed by the engine), for the worklist's pools.
func (e *Engine) Rota(name string) (OnCall, bool) {
	rs := e.rules.Load()
	if rs == nil {
		return nil, false
	}
	r, ok := rs.rotas[name]
	return r, ok && r != nil
}

// ManifestRequest is what a route with kos: true asks of the manifest
// builder when it fires: the route, its priority, the study, where the
// study went (each forward destination with the failovers behind it) and
// the route's coercion (a coerce.Spec, for the tasks' Coerce: the manifest
// must name the patient as the forwarded images do).
type ManifestRequest struct {
	Route, Priority, Study string
	Forward, Failover      []string
	Coerce                 json.RawMessage
}

// ManifestBuilder builds the study's KOS manifest, stores it and queues it
// to the request's destinations with its priority and coercion. It must be
// idempotent (it is retried).
type ManifestBuilder func(ctx context.Context, rq ManifestRequest) error

// SetManifestBuilder sets Deps.Manifest. Call it before Run.
func (e *Engine) SetManifestBuilder(b ManifestBuilder) { e.deps.Manifest = b }

// manifestAttempts bounds the tries of a route's manifest build.
var manifestAttempts = 4

// manifest runs the route's manifest builder, retrying a few times, and
// journals a failure.
func (e *Engine) manifest(build ManifestBuilder, rq ManifestRequest) {
	route, study := rq.Route, rq.Study
	var lastErr error
	for attempt := 0; attempt < manifestAttempts; attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt*attempt) * 500 * time.Millisecond):
			case <-e.bgCtx.Done():
			}
			if e.bgCtx.Err() != nil {
				lastErr = fmt.Errorf("stopped before attempt %d: %w (last: %v)", attempt+1, e.bgCtx.Err(), lastErr)
				break
			}
		}
		ctx, cancel := context.WithTimeout(e.bgCtx, 5*time.Minute)
		err := build(ctx, rq)
		cancel()
		if err == nil {
			return
		}
		lastErr = err
		e.log.Warn("routing: manifest build failed", "route", route, "study", study, "attempt", attempt+1, "err", err)
	}
	e.log.Error("routing: manifest not built", "route", route, "study", study, "err", lastErr)
	e.journal(&journal.Event{Kind: "route.manifest", StudyUID: study, Status: "failed",
		Reason: fmt.Sprintf("route %q: KOS manifest: %v", route, lastErr)})
}

// webhook POSTs the payload, retrying a few times, and journals the outcome.
func (e *Engine) webhook(url, route, study string, payload any) {
	body, _ := json.Marshal(payload)
	var lastErr error
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt*attempt) * 500 * time.Millisecond):
			case <-e.bgCtx.Done():
			}
			if e.bgCtx.Err() != nil {
				lastErr = fmt.Errorf("stopped before attempt %d: %w (last: %v)", attempt+1, e.bgCtx.Err(), lastErr)
				break
			}
		}
		ctx, cancel := context.WithTimeout(e.bgCtx, 10*time.Second)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			cancel()
			lastErr = err
			break
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.deps.HTTPClient.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
			resp.Body.Close()
			if resp.StatusCode < 300 {
				cancel()
				e.m.webhooks.WithLabelValues("ok").Inc()
				e.journal(&journal.Event{Kind: "route.webhook", StudyUID: study, Status: fmt.Sprint(resp.StatusCode),
					Reason: fmt.Sprintf("route %q: POST %s: %s", route, redactURL(url), resp.Status)})
				return
			}
			err = fmt.Errorf("HTTP %s", resp.Status)
		}
		cancel()
		lastErr = err
	}
	e.m.webhooks.WithLabelValues("failed").Inc()
	e.log.Warn("routing: webhook failed", "route", route, "study", study, "err", lastErr)
	e.journal(&journal.Event{Kind: "route.webhook", StudyUID: study, Status: "failed",
		Reason: fmt.Sprintf("route %q: POST %s: %v", route, redactURL(url), lastErr)})
}

func redactURL(u string) string {
	if i := bytes.IndexByte([]byte(u), '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}

// priors fetches the patient's prior studies and queues them to the
// route's destinations (same priority, no stability wait: the study they
// accompany already fired).
func (e *Engine) priors(rc config.Route, prio, study, patient string) {
	if e.deps.Priors == nil || patient == "" {
		if e.deps.Priors == nil {
			e.log.Warn("routing: route has priors but no priors fetcher is configured", "route", rc.Name)
		}
		return
	}
	ctx, cancel := context.WithTimeout(e.bgCtx, 10*time.Minute)
	defer cancel()
	insts, err := e.deps.Priors.FetchPriors(ctx, *rc.Priors, patient, study)
	if err != nil {
		e.log.Warn("routing: priors fetch failed", "route", rc.Name, "patient", patient, "err", err)
		e.journal(&journal.Event{Kind: "route.priors", StudyUID: study, Status: "failed", Reason: fmt.Sprintf("route %q: %v", rc.Name, err)})
		return
	}
	var tasks []queue.Task
	var coerceRaw json.RawMessage
	if r := e.ruleByName(rc.Name); r != nil {
		coerceRaw = r.coerce
	}
	for _, in := range insts {
		tasks = append(tasks, tasksFor(rc.Name, prio, rc.Forward, rc.Failover, coerceRaw,
			instRef{in.StudyInstanceUID, in.SeriesInstanceUID, in.SOPInstanceUID}, "prior:"+study)...)
	}
	if len(tasks) > 0 {
		if _, err := e.deps.Queue.Enqueue(ctx, tasks, nil); err != nil {
			e.log.Error("routing: queueing priors failed", "route", rc.Name, "err", err)
			return
		}
		if e.deps.Dispatcher != nil {
			for _, d := range rc.Forward {
				e.deps.Dispatcher.Notify(d)
			}
		}
	}
	e.journal(&journal.Event{Kind: "route.priors", StudyUID: study, Reason: fmt.Sprintf("route %q: %d prior instance(s) queued", rc.Name, len(insts))})
}

// Prepare is the queue.Dispatcher's Prepare hook: it applies the task's
// coercion (a coerce.Spec, from the route) to the data set with dicom.Edit,
// streaming. Tasks without coercion are sent as stored.
func Prepare(t *queue.Task, inst *storage.Instance, r io.Reader) (io.Reader, error) {
	if len(t.Coerce) == 0 || string(t.Coerce) == "null" {
		return r, nil
	}
	var spec coerce.Spec
	if err := json.Unmarshal(t.Coerce, &spec); err != nil {
		return nil, queue.Permanent(fmt.Errorf("coerce spec of route %q: %w", t.Route, err))
	}
	ops, err := spec.Compile(coerce.AttrsFromMap(inst.Attrs))
	if err != nil {
		return nil, queue.Permanent(fmt.Errorf("coerce (route %q): %w", t.Route, err))
	}
	if len(ops) == 0 {
		return r, nil
	}
	ts, ok := dicom.LookupTransferSyntax(inst.TransferSyntaxUID)
	if !ok {
		return nil, queue.Permanent(fmt.Errorf("coerce: unknown transfer syntax %s", inst.TransferSyntaxUID))
	}
	pr, pw := io.Pipe()
	pw2 := &progressWriter{w: pw}
	pw2.touch()
	done := make(chan struct{})
	go func() {
		_, err := dicom.Edit(pw2, r, ts, dicom.DefaultLimits(), ops)
		pw.CloseWithError(err)
		close(done)
	}()
	// The Dispatcher does not tell when it gives up reading (an aborted
	// send): a reader that stops consuming for prepareStall frees the
	// editing goroutine.
	go func() {
		t := time.NewTicker(prepareStall / 4)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if time.Since(pw2.last()) > prepareStall {
					pr.CloseWithError(fmt.Errorf("coerce: the sender stopped reading for %v", prepareStall))
					return
				}
			}
		}
	}()
	return pr, nil
}

// prepareStall bounds how long a coerced data set waits for its sender.
var prepareStall = 2 * time.Minute

type progressWriter struct {
	w  io.Writer
	ns atomic.Int64
}

func (p *progressWriter) touch()          { p.ns.Store(time.Now().UnixNano()) }
func (p *progressWriter) last() time.Time { return time.Unix(0, p.ns.Load()) }

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.touch()
	return n, err
}
