package node

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/routing"
	"github.com/relais-health/relais/routing/queue"
)

// nodeRouting is the routing part of a node: the durable queue under
// DATA/queue, its dispatcher and the rules engine fed by ingest.
type nodeRouting struct {
	Queue      *queue.Store
	Dispatcher *queue.Dispatcher
	Engine     *routing.Engine

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// routingEnabled: a node without destinations and routes runs no queue.
func routingEnabled(cfg *config.Config) bool {
	return len(cfg.Routes) > 0 || len(cfg.Destinations) > 0
}

// openRouting opens the queue store, the dispatcher and the engine, and
// hooks the engine to ingest. Call after ingest recovery (the engine's
// first watermark is ingest's SafeSeq).
func (n *Node) openRouting() error {
	cfg := n.Config
	if !routingEnabled(cfg) {
		return nil
	}
	q, err := queue.Open(queue.DefaultDir(cfg.DataDir), queue.Options{Logger: n.Logger})
	if err != nil {
		return fmt.Errorf("node: queue: %w", err)
	}
	n.closers = append(n.closers, q.Close)
	qm := queue.NewMetrics()
	if err := qm.Register(n.Metrics.Registry); err != nil {
		return err
	}
	d := &queue.Dispatcher{Store: q, Index: n.Index, Blobs: n.Blobs, Destinations: cfg.Destinations, Routing: cfg.Routing,
		CallingAE: cfg.AETitle, Journal: n.Journal, Logger: n.Logger, Metrics: qm, Prepare: routing.Prepare}
	e, err := routing.New(cfg, routing.Deps{Index: n.Index, Journal: n.Journal, Queue: q, Dispatcher: d,
		SafeSeq: n.Ingest.SafeSeq, Logger: n.Logger, Metrics: n.Metrics.Registry,
		Priors: &routing.DIMSEPriors{AETitle: cfg.AETitle, RemoteAEs: cfg.RemoteAEs, Index: n.Index, Logger: n.Logger}})
	if err != nil {
		return err
	}
	n.Ingest.OnDurable = e.OnDurable
	n.routing = &nodeRouting{Queue: q, Dispatcher: d, Engine: e}
	return nil
}

// Routing returns the node's rules engine (nil when no routes nor
// destinations are configured).
func (n *Node) Routing() *routing.Engine {
	if n.routing == nil {
		return nil
	}
	return n.routing.Engine
}

// startRouting runs the engine (journal replay first) and the dispatcher
// until the returned stop is called; stop waits for them (the engine
// routes what ingest handed it before returning).
func (n *Node) startRouting() (stop func()) {
	r := n.routing
	if r == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		if err := r.Engine.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			n.Logger.Error("routing engine stopped", "err", err)
		}
	}()
	go func() {
		defer r.wg.Done()
		if err := r.Dispatcher.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			n.Logger.Error("delivery dispatcher stopped", "err", err)
		}
	}()
	return func() {
		cancel()
		r.wg.Wait()
	}
}

// routingHandler serves the routing admin API (/api/routes...) and the
// queue's (/api/queue/...) behind admin authentication (unless http.auth
// is none), and everything else with h.
func (n *Node) routingHandler(h http.Handler) http.Handler {
	if n.routing == nil {
		return h
	}
	routes := n.routing.Engine.AdminHandler()
	tasks := n.routing.Dispatcher.AdminHandler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var admin http.Handler
		switch {
		case r.URL.Path == "/api/routes" || strings.HasPrefix(r.URL.Path, "/api/routes/"):
			admin = routes
		case strings.HasPrefix(r.URL.Path, queue.AdminPathPrefix):
			admin = tasks
		default:
			h.ServeHTTP(w, r)
			return
		}
		if n.Tokens != nil {
			// A Bearer token or the web app's session (with its CSRF header).
			p, ok := n.Authorize(w, r, auth.Admin)
			if !ok {
				return
			}
			r = r.WithContext(queue.WithUser(r.Context(), p.User))
		}
		admin.ServeHTTP(w, r)
	})
}
