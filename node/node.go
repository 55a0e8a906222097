// Package node assembles a running Relais node from its configuration: it
// opens the journal, the index and the blob store, recovers what the journal
// holds beyond the index, and serves DIMSE and HTTP. It owns the policy that
// binds protocols to storage (who may associate, what a C-STORE becomes);
// the protocol engines themselves know nothing of it.
package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relais-health/relais/auth"
	"github.com/relais-health/relais/config"
	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dicomweb"
	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/directory"
	"github.com/relais-health/relais/ingest"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/query"
	"github.com/relais-health/relais/report"
	"github.com/relais-health/relais/retrieve"
	"github.com/relais-health/relais/storage"
	"github.com/relais-health/relais/storage/badgerindex"
	"github.com/relais-health/relais/storage/fsblob"
	"github.com/relais-health/relais/storage/s3blob"
	"github.com/relais-health/relais/telerequest"
	"github.com/relais-health/relais/worklist"
)

// ImplementationClassUID identifies Relais in associations and file meta.
const ImplementationClassUID = dicom.DefaultImplementationClassUID

// ImplementationVersionName is sent in associations (16 chars max).
const ImplementationVersionName = "RELAIS_0.1"

// Node is a running Relais node.
type Node struct {
	Config  *config.Config
	Logger  *slog.Logger
	Journal *journal.Journal
	Index   storage.Index
	Blobs   storage.Blobs
	Ingest  *ingest.Pipeline
	Metrics *Metrics
	// DICOMweb serves PS3.18 under /dicom-web on the HTTP listener.
	DICOMweb *dicomweb.Server
	// Tokens holds the API tokens (nil when http.auth is none).
	Tokens *auth.Store
	// Pprof mounts /debug/pprof on the HTTP listener (profiling only:
	// never on a node reachable by others).
	Pprof bool

	directory *directory.Directory // node/directory.go

	disk     *diskGuard
	apis     []apiRoute
	reports  *report.Service
	worklist *worklist.Worklist
	requests *telerequest.Service
	// webSessions are the web app's sessions (nil without the web app).
	webSessions *auth.Sessions
	// studySites caches StudySite (study UID → studySite).
	studySites     sync.Map
	studySiteCount atomic.Int64
	routing        *nodeRouting
	dimse          *dimse.Server
	http           *http.Server
	dicomLn        net.Listener
	httpLn         net.Listener
	closers        []func() error
	serveErr       chan error
	once           sync.Once
}

// Open opens storage and recovers it; it does not listen yet.
func Open(ctx context.Context, cfg *config.Config, log *slog.Logger) (*Node, error) {
	n := &Node{Config: cfg, Logger: log, Metrics: NewMetrics()}
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("node: data dir: %w", err)
	}
	j, err := journal.Open(filepath.Join(cfg.DataDir, "journal"), journal.Options{})
	if err != nil {
		return nil, fmt.Errorf("node: journal: %w", err)
	}
	n.Journal = j
	n.closers = append(n.closers, j.Close)
	ix, err := badgerindex.Open(filepath.Join(cfg.DataDir, "index"), badgerindex.Options{})
	if err != nil {
		n.Close()
		return nil, fmt.Errorf("node: index: %w", err)
	}
	n.Index = ix
	n.closers = append(n.closers, ix.Close)
	switch cfg.Storage.Blobs.Backend {
	case "s3":
		s := cfg.Storage.Blobs.S3
		ak, sk, err := s.S3Credentials()
		if err != nil {
			n.Close()
			return nil, err
		}
		b, err := s3blob.New(ctx, s3blob.Config{Endpoint: s.Endpoint, Bucket: s.Bucket, Region: s.Region, AccessKey: ak, SecretKey: sk, Secure: s.Secure, Prefix: s.Prefix})
		if err != nil {
			n.Close()
			return nil, fmt.Errorf("node: s3 blobs: %w", err)
		}
		n.Blobs = b
	default:
		dir := cfg.Storage.Blobs.FS.Dir
		if dir == "" {
			dir = filepath.Join(cfg.DataDir, "blobs")
		}
		b, err := fsblob.New(dir)
		if err != nil {
			n.Close()
			return nil, fmt.Errorf("node: blobs: %w", err)
		}
		n.Blobs = b
		n.closers = append(n.closers, b.Close)
	}
	dup, err := ingest.ParseDuplicatePolicy(cfg.DICOM.DuplicatePolicy)
	if err != nil {
		n.Close()
		return nil, err
	}
	lim := dicom.DefaultLimits()
	lim.MaxValueLength = cfg.Limits.MaxValueLength
	lim.MaxDatasetSize = int64(cfg.Limits.MaxDatasetSize)
	n.Ingest = &ingest.Pipeline{
		Blobs: n.Blobs, Index: n.Index, Journal: n.Journal, Limits: lim, Duplicates: dup,
		AETitle: cfg.AETitle, ImplementationClassUID: ImplementationClassUID, ImplementationVersion: ImplementationVersionName,
		Observer: n.Metrics, Logger: log,
	}
	replayed, skipped, err := n.Ingest.Recover(ctx)
	if err != nil {
		n.Close()
		return nil, err
	}
	if replayed > 0 || skipped > 0 {
		log.Info("recovered index from journal", "replayed", replayed, "skipped_unacknowledged", skipped)
	}
	n.disk = &diskGuard{dir: cfg.DataDir, min: uint64(cfg.Routing.MinFreeSpace),
		onLow: func(free, min uint64) {
			log.Error("data disk almost full: refusing new associations and instances until space is freed", "free_bytes", free, "min_free_space", min)
			n.Journal.AppendAsync(&journal.Event{Kind: "disk.low", Reason: fmt.Sprintf("free %d bytes < routing.min_free_space %d", free, min)})
		},
		onClear: func(free uint64) {
			log.Info("data disk has room again: accepting instances", "free_bytes", free)
			n.Journal.AppendAsync(&journal.Event{Kind: "disk.ok", Reason: fmt.Sprintf("free %d bytes", free)})
		},
	}
	if err := n.openRouting(); err != nil {
		n.Close()
		return nil, err
	}
	if err := n.openDICOMweb(); err != nil {
		n.Close()
		return nil, fmt.Errorf("node: dicomweb: %w", err)
	}
	if err := n.openDirectory(); err != nil {
		n.Close()
		return nil, fmt.Errorf("node: directory: %w", err)
	}
	if err := n.openManifests(); err != nil {
		n.Close()
		return nil, fmt.Errorf("node: manifests: %w", err)
	}
	if err := n.openReports(); err != nil {
		n.Close()
		return nil, fmt.Errorf("node: reports: %w", err)
	}
	if err := n.openWorklist(); err != nil {
		n.Close()
		return nil, fmt.Errorf("node: worklist: %w", err)
	}
	if err := n.openAdmin(); err != nil {
		n.Close()
		return nil, fmt.Errorf("node: admin: %w", err)
	}
	if err := n.openUPS(); err != nil {
		n.Close()
		return nil, fmt.Errorf("node: ups: %w", err)
	}
	if err := n.openRequests(); err != nil {
		n.Close()
		return nil, fmt.Errorf("node: requests: %w", err)
	}
	if err := n.openWebApp(); err != nil {
		n.Close()
		return nil, fmt.Errorf("node: web app: %w", err)
	}
	return n, nil
}

// Listen binds the DICOM and HTTP listeners.
func (n *Node) Listen() error {
	cfg := n.Config
	ln, err := net.Listen("tcp", cfg.Listen.DICOM)
	if err != nil {
		return fmt.Errorf("node: listen.dicom: %w", err)
	}
	n.dicomLn = ln
	if cfg.Listen.HTTP != "" {
		hl, err := net.Listen("tcp", cfg.Listen.HTTP)
		if err != nil {
			ln.Close()
			return fmt.Errorf("node: listen.http: %w", err)
		}
		n.httpLn = hl
	}
	return nil
}

// DICOMAddr is the bound DICOM address (after Listen).
func (n *Node) DICOMAddr() net.Addr { return n.dicomLn.Addr() }

// HTTPAddr is the bound HTTP address (after Listen), nil if none.
func (n *Node) HTTPAddr() net.Addr {
	if n.httpLn == nil {
		return nil
	}
	return n.httpLn.Addr()
}

// Serve serves until ctx ends or a listener fails, then shuts down.
func (n *Node) Serve(ctx context.Context) error {
	cfg := n.Config
	if len(cfg.DICOM.AllowedCallers) == 0 {
		n.Logger.Warn("no dicom.allowed_callers configured: any calling AE may C-ECHO and C-STORE (fine for a first run; list your modalities to restrict)")
	}
	if cfg.HTTP.Auth == config.AuthNone && n.httpLn != nil {
		n.Logger.Warn("http.auth is none: DICOMweb serves patient data to anyone who can reach " + addrString(n.httpLn) + " without authentication")
	}
	mux := dimse.NewServeMux()
	mux.Handle(dimse.CEchoRQ, dicom.VerificationSOPClass, dimse.EchoHandler)
	mux.HandleClasses(dimse.CStoreRQ, dicom.StorageSOPClasses, dimse.HandlerFunc(n.serveStore))
	n.registerRetrieve(mux)
	n.registerFind(mux)
	n.dimse = &dimse.Server{
		AETitle:                   cfg.AETitle,
		Handler:                   mux,
		Admit:                     n.admit,
		TransferSyntaxes:          cfg.DICOM.TransferSyntaxes,
		MaxPDULength:              cfg.Limits.MaxPDULength,
		ARTIMTimeout:              time.Duration(cfg.Limits.ARTIMTimeout),
		IdleTimeout:               time.Duration(cfg.Limits.IdleTimeout),
		MaxAssociations:           cfg.Limits.MaxAssociations,
		ImplementationClassUID:    ImplementationClassUID,
		ImplementationVersionName: ImplementationVersionName,
		ExtendedNegotiation:       extendedNegotiation,
		OnEvent:                   n.onEvent,
		Logger:                    n.Logger,
	}
	stopRouting := n.startRouting()
	rctx, stopReports := context.WithCancel(context.Background())
	reportsDone := make(chan struct{})
	go func() { defer close(reportsDone); n.runReports(rctx) }()
	errc := make(chan error, 2)
	go func() { errc <- n.dimse.Serve(n.dicomLn) }()
	if n.httpLn != nil {
		n.http = &http.Server{Handler: n.routingHandler(n.apiHandler(n.httpHandler())), ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- n.http.Serve(n.httpLn) }()
	}
	n.Logger.Info("relais serving", "ae", cfg.AETitle, "dicom", n.dicomLn.Addr().String(), "http", addrString(n.httpLn), "data", cfg.DataDir)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		if errors.Is(err, dimse.ErrServerClosed) || errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if n.http != nil {
		n.http.Shutdown(sctx)
	}
	if serr := n.dimse.Shutdown(sctx); serr != nil && err == nil && !errors.Is(serr, dimse.ErrServerClosed) {
		err = serr
	}
	stopReports()
	<-reportsDone
	stopRouting()
	return err
}

func addrString(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// Close closes storage. Call after Serve returns.
func (n *Node) Close() error {
	var errs []error
	n.once.Do(func() {
		for i := len(n.closers) - 1; i >= 0; i-- {
			if err := n.closers[i](); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}

// admit applies the association policy: called AE, then calling AE and host.
func (n *Node) admit(ctx context.Context, rq *dimse.AssociateRequest) *dimse.Rejection {
	cfg := n.Config
	if !cfg.DICOM.AcceptAnyCalledAE && strings.TrimSpace(rq.CalledAE) != cfg.AETitle {
		return &dimse.Rejection{Result: dimse.RejectedPermanent, Source: dimse.SourceServiceUser, Reason: dimse.ReasonCalledAENotRecognized}
	}
	if n.disk.full() {
		return &dimse.Rejection{Result: dimse.RejectedTransient, Source: dimse.SourceServiceProviderPresentation, Reason: dimse.ReasonLocalLimitExceeded}
	}
	if len(cfg.DICOM.AllowedCallers) == 0 {
		return nil
	}
	host := hostOf(rq.RemoteAddr)
	for _, c := range cfg.DICOM.AllowedCallers {
		if c.AE != strings.TrimSpace(rq.CallingAE) {
			continue
		}
		if len(c.Hosts) == 0 || hostAllowed(ctx, host, c.Hosts) {
			return nil
		}
	}
	return &dimse.Rejection{Result: dimse.RejectedPermanent, Source: dimse.SourceServiceUser, Reason: dimse.ReasonCallingAENotRecognized}
}

func hostOf(a net.Addr) net.IP {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP
	}
	if a == nil {
		return nil
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return nil
	}
	return net.ParseIP(h)
}

// hostAllowed matches an address against IPs, CIDR ranges and host names.
func hostAllowed(ctx context.Context, ip net.IP, hosts []string) bool {
	if ip == nil {
		return false
	}
	for _, h := range hosts {
		if strings.Contains(h, "/") {
			if _, nw, err := net.ParseCIDR(h); err == nil && nw.Contains(ip) {
				return true
			}
			continue
		}
		if hip := net.ParseIP(h); hip != nil {
			if hip.Equal(ip) {
				return true
			}
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		addrs, err := net.DefaultResolver.LookupIPAddr(rctx, h)
		cancel()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if a.IP.Equal(ip) {
				return true
			}
		}
	}
	return false
}

// serveStore is the C-STORE SCP: the data set streams into the ingest
// pipeline; the response is sent only once the instance is durable.
func (n *Node) serveStore(ctx context.Context, w dimse.ResponseWriter, r *dimse.Request) {
	rq := &ingest.Request{
		Source: storage.Source{
			Channel: "dimse", CallingAE: r.Assoc.CallingAE, CalledAE: r.Assoc.CalledAE,
			RemoteAddr: addrOf(r.Assoc.RemoteAddr), Association: r.Assoc.ID,
		},
		SOPClassUID:       r.Command.AffectedSOPClassUID,
		SOPInstanceUID:    r.Command.AffectedSOPInstanceUID,
		TransferSyntaxUID: r.Context.TransferSyntax,
		Data:              r.Data,
	}
	if rq.Data == nil {
		w.Respond(dimse.Status{Code: dimse.StatusCannotUnderstand, Comment: "C-STORE-RQ without a data set"}, nil)
		return
	}
	if n.disk.full() {
		io.Copy(io.Discard, rq.Data)
		w.Respond(dimse.Status{Code: ingest.StatusOutOfResources, Comment: "data disk full: instance not stored"}, nil)
		return
	}
	res, err := n.Ingest.Store(ctx, rq)
	if err != nil {
		var ie *ingest.Error
		st := dimse.Status{Code: dimse.StatusProcessingFailure, Comment: comment(err.Error())}
		if errors.As(err, &ie) {
			st = dimse.Status{Code: ie.Status, Comment: comment(ie.Err.Error())}
		}
		w.Respond(st, nil)
		return
	}
	w.Respond(dimse.Status{Code: res.Status, Comment: comment(res.Comment)}, nil)
}

// comment fits an Error Comment (LO, 64 characters).
func comment(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return s
}

func addrOf(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// onEvent journals association events and counts them.
func (n *Node) onEvent(ev dimse.Event) {
	je := &journal.Event{Time: ev.Time}
	if ev.Assoc != nil {
		je.AE, je.CalledAE, je.Addr, je.Association = ev.Assoc.CallingAE, ev.Assoc.CalledAE, addrOf(ev.Assoc.RemoteAddr), ev.Assoc.ID
	}
	outcome := ""
	switch ev.Kind {
	case dimse.AssociationAccepted:
		je.Kind, outcome = "association.accepted", "accepted"
	case dimse.AssociationRejected:
		je.Kind, outcome = "association.rejected", "rejected"
		if ev.Rejection != nil {
			je.Reason = ev.Rejection.Error()
		}
	case dimse.AssociationReleased:
		je.Kind, outcome = "association.released", "released"
	case dimse.AssociationAborted:
		je.Kind, outcome = "association.aborted", "aborted"
		je.Reason = fmt.Sprintf("source %d reason %d", ev.AbortSource, ev.AbortReason)
	case dimse.ProtocolError:
		je.Kind, outcome = "association.protocol_error", "protocol_error"
	default:
		return
	}
	if ev.Detail != "" {
		je.Reason = strings.TrimSpace(je.Reason + " " + ev.Detail)
	}
	if ev.Err != nil {
		je.Reason = strings.TrimSpace(je.Reason + " " + ev.Err.Error())
	}
	n.Metrics.Associations.WithLabelValues(outcome).Inc()
	n.Journal.AppendAsync(je)
	if outcome == "rejected" || outcome == "protocol_error" {
		n.Logger.Warn("association "+outcome, "calling_ae", je.AE, "called_ae", je.CalledAE, "addr", je.Addr, "reason", je.Reason)
	} else {
		n.Logger.Debug("association "+outcome, "calling_ae", je.AE, "addr", je.Addr, "assoc", je.Association)
	}
}

// extendedNegotiation answers SOP Class Extended Negotiation for the
// query/retrieve SOP classes (query.ExtendedNegotiation for C-FIND,
// retrieve.ExtendedNegotiation for C-MOVE and C-GET); other classes get no
// answer.
func extendedNegotiation(sopClass string, requested []byte) []byte {
	if b := query.ExtendedNegotiation(sopClass, requested); b != nil {
		return b
	}
	return retrieve.ExtendedNegotiation(sopClass, requested)
}
