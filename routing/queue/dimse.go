package queue

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/dimse"
	"github.com/relais-health/relais/retrieve"
	"github.com/relais-health/relais/storage"
)

// DIMSESender delivers with C-STORE to a DICOM destination. Presentation
// contexts are proposed as a C-MOVE does (retrieve.ProposeContexts): per
// SOP class, the stored transfer syntax (sent byte for byte) plus explicit
// and implicit VR little endian for uncompressed data (converted among
// themselves). An instance whose SOP class and syntax the destination
// accepts in no form fails permanently for that destination.
//
// Associations are kept open between Sends and closed after IdleClose
// without work, so a steady flow of tasks uses one association per worker.
// An idle association is reused when it proposed every (class, syntax) a
// batch needs; otherwise a new one proposes everything seen so far.
type DIMSESender struct {
	Addr                string
	CalledAE, CallingAE string
	// IdleClose defaults to 2 s.
	IdleClose time.Duration
	// DialTimeout bounds the association setup (default 10 s).
	DialTimeout time.Duration
	// StallTimeout aborts an association on which nothing moved for this
	// long, e.g. a peer that stopped reading mid data set (default 2 min).
	StallTimeout time.Duration
	Logger       *slog.Logger

	mu     sync.Mutex
	idle   []*pooled
	seen   map[pkey]bool
	closed bool
}

type pkey struct{ class, ts string }

type pooled struct {
	a        *dimse.Association
	proposed map[pkey]bool
	timer    *time.Timer
}

func keysOf(items []Item) []pkey {
	var ks []pkey
	for _, it := range items {
		ks = append(ks, pkey{it.Instance.SOPClassUID, it.Instance.TransferSyntaxUID})
	}
	return ks
}

func (s *DIMSESender) idleClose() time.Duration {
	if s.IdleClose <= 0 {
		return 2 * time.Second
	}
	return s.IdleClose
}

// get returns an association proposing every key of items.
func (s *DIMSESender) get(ctx context.Context, items []Item) (*pooled, error) {
	need := keysOf(items)
	s.mu.Lock()
	if s.seen == nil {
		s.seen = map[pkey]bool{}
	}
	for _, k := range need {
		s.seen[k] = true
	}
	for i := len(s.idle) - 1; i >= 0; i-- {
		p := s.idle[i]
		ok := p.a.Err() == nil
		for _, k := range need {
			ok = ok && p.proposed[k]
		}
		if !ok {
			continue
		}
		s.idle = append(s.idle[:i], s.idle[i+1:]...)
		p.timer.Stop()
		s.mu.Unlock()
		return p, nil
	}
	s.mu.Unlock()
	return s.dial(ctx, items)
}

// dial opens an association proposing what items need, then what earlier
// batches needed.
func (s *DIMSESender) dial(ctx context.Context, items []Item) (*pooled, error) {
	need := keysOf(items)
	s.mu.Lock()
	// Propose what this batch needs, then what others needed, within the
	// 128 contexts of PS3.8.
	var insts []*storage.Instance
	proposed := map[pkey]bool{}
	add := func(k pkey) {
		if !proposed[k] {
			proposed[k] = true
			insts = append(insts, &storage.Instance{SOPClassUID: k.class, TransferSyntaxUID: k.ts})
		}
	}
	for _, k := range need {
		add(k)
	}
	var rest []pkey
	for k := range s.seen {
		rest = append(rest, k)
	}
	sort.Slice(rest, func(i, j int) bool { return rest[i].class+rest[i].ts < rest[j].class+rest[j].ts })
	for _, k := range rest {
		if len(retrieve.ProposeContexts(insts)) >= 100 {
			break
		}
		add(k)
	}
	s.mu.Unlock()
	pcs := retrieve.ProposeContexts(insts)
	// Keys whose contexts were cut by the 128 limit are not "proposed".
	have := map[string]bool{}
	for _, pc := range pcs {
		for _, ts := range pc.TransferSyntaxes {
			have[pc.AbstractSyntax+"|"+ts] = true
		}
	}
	for k := range proposed {
		if !have[k.class+"|"+k.ts] {
			delete(proposed, k)
		}
	}
	timeout := s.DialTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	stall := s.StallTimeout
	if stall <= 0 {
		stall = 2 * time.Minute
	}
	a, err := dimse.Dial(dctx, s.Addr, dimse.DialOptions{CallingAE: s.CallingAE, CalledAE: s.CalledAE, Contexts: pcs, Logger: s.Logger,
		IdleTimeout: max(stall, 2*s.idleClose())})
	if err != nil {
		return nil, fmt.Errorf("associating with %s at %s: %w", s.CalledAE, s.Addr, err)
	}
	return &pooled{a: a, proposed: proposed}, nil
}

// put keeps an association for reuse, closing it after IdleClose.
func (s *DIMSESender) put(p *pooled) {
	if p.a.Err() != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		go release(p.a)
		return
	}
	s.idle = append(s.idle, p)
	p.timer = time.AfterFunc(s.idleClose(), func() {
		s.mu.Lock()
		for i, q := range s.idle {
			if q == p {
				s.idle = append(s.idle[:i], s.idle[i+1:]...)
				s.mu.Unlock()
				release(p.a)
				return
			}
		}
		s.mu.Unlock()
	})
}

func release(a *dimse.Association) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Release(ctx); err != nil {
		a.Abort()
	}
}

// Close releases the idle associations.
func (s *DIMSESender) Close() error {
	s.mu.Lock()
	idle := s.idle
	s.idle, s.closed = nil, true
	s.mu.Unlock()
	for _, p := range idle {
		p.timer.Stop()
		release(p.a)
	}
	return nil
}

// Send implements Sender.
func (s *DIMSESender) Send(ctx context.Context, dest string, items []Item) []error {
	errs := make([]error, len(items))
	p, err := s.get(ctx, items)
	if err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	// A data set in flight is finished even when ctx ends.
	storeCtx := context.WithoutCancel(ctx)
	fresh := p.timer == nil // dialed for this Send, not reused
	// The next item is read ahead while the current one is on the wire:
	// blobs were written with O_DIRECT and are read from the disk.
	next := prefetch(ctx, items[0])
	for i, it := range items {
		cur := next
		next = nil
		if i+1 < len(items) {
			next = prefetch(ctx, items[i+1])
		}
		stored := false
		func() {
			defer func() {
				if !stored {
					drop(cur)
				}
			}()
			errs[i] = s.sendOne(ctx, storeCtx, &p, &fresh, items, it, cur, &stored)
		}()
	}
	s.put(p)
	return errs
}

// sendOne sends one item on *p (reassociating once when a reused
// association turns out dead); stored says whether cur was consumed.
func (s *DIMSESender) sendOne(ctx, storeCtx context.Context, pp **pooled, fresh *bool, items []Item, it Item, cur <-chan opened, stored *bool) error {
	p := *pp
	defer func() { *pp = p }()
	if err := ctx.Err(); err != nil {
		return err
	}
	if p.a.Err() != nil && !*fresh {
		// The reused idle association ended meanwhile: associate again.
		*fresh = true
		np, err := s.dial(ctx, items)
		if err != nil {
			return err
		}
		p = np
	}
	if p.a.Err() != nil {
		return fmt.Errorf("association with %s ended: %w", s.CalledAE, p.a.Err())
	}
	inst := it.Instance
	pc, ok := retrieve.PickContext(p.a.Accepted(), inst.SOPClassUID, inst.TransferSyntaxUID)
	if !ok {
		err := fmt.Errorf("destination %s accepts none of %s for SOP class %s", s.CalledAE, syntaxesFor(inst.TransferSyntaxUID), inst.SOPClassUID)
		if p.proposed[pkey{inst.SOPClassUID, inst.TransferSyntaxUID}] {
			err = Permanent(err)
		}
		return err
	}
	*stored = true
	st, err := storeItem(storeCtx, p.a, pc, it, func(context.Context) (io.ReadCloser, error) {
		o := <-cur
		return o.rc, o.err
	})
	if err != nil && !*fresh {
		// The peer may have closed the idle association we reused
		// (its own idle timeout; the write fails before the end is
		// noticed): associate again once and resend.
		p.a.Abort()
		*fresh = true
		if np, derr := s.dial(ctx, items); derr == nil {
			p = np
			if pc, ok = retrieve.PickContext(p.a.Accepted(), inst.SOPClassUID, inst.TransferSyntaxUID); ok {
				st, err = storeItem(storeCtx, p.a, pc, it, it.Open)
			}
		}
	}
	*fresh = true
	switch {
	case err != nil:
		return err
	case st.Category() == dimse.CategorySuccess || st.Category() == dimse.CategoryWarning:
		return nil
	default:
		err := fmt.Errorf("C-STORE refused by %s: status %s", s.CalledAE, st)
		if permanentStatus(st.Code) {
			err = Permanent(err)
		}
		return err
	}
}

// prefetchSize is how much of the next item is read ahead.
const prefetchSize = 1 << 20

type opened struct {
	rc  io.ReadCloser
	err error
}

// prefetch opens it and reads up to prefetchSize bytes in the background.
func prefetch(ctx context.Context, it Item) <-chan opened {
	ch := make(chan opened, 1)
	go func() {
		rc, err := it.Open(ctx)
		if err != nil {
			ch <- opened{err: err}
			return
		}
		buf := make([]byte, prefetchSize)
		n, err := io.ReadFull(rc, buf)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			rc.Close()
			ch <- opened{err: fmt.Errorf("reading %s: %w", it.Instance.SOPInstanceUID, err)}
			return
		}
		ch <- opened{rc: readCloser{io.MultiReader(bytes.NewReader(buf[:n]), rc), rc.Close}}
	}()
	return ch
}

// drop closes a prefetched item that will not be sent.
func drop(ch <-chan opened) {
	if ch == nil {
		return
	}
	go func() {
		if o := <-ch; o.rc != nil {
			o.rc.Close()
		}
	}()
}

func syntaxesFor(ts string) string {
	name := func(uid string) string {
		if t, ok := dicom.LookupTransferSyntax(uid); ok && t.Name != "" {
			return t.Name + " (" + uid + ")"
		}
		return uid
	}
	if retrieve.Uncompressed(ts) {
		seen := map[string]bool{ts: true}
		out := []string{name(ts)}
		for _, o := range []string{dicom.ExplicitVRLittleEndian, dicom.ImplicitVRLittleEndian} {
			if !seen[o] {
				out = append(out, name(o))
			}
		}
		return strings.Join(out, ", ")
	}
	return name(ts)
}

// storeItem streams one item's data set on pc, transcoded between
// uncompressed syntaxes when pc's differs from the stored one.
func storeItem(ctx context.Context, a *dimse.Association, pc dimse.PresentationContext, it Item, open func(context.Context) (io.ReadCloser, error)) (dimse.Status, error) {
	rc, err := open(ctx)
	if err != nil {
		return dimse.Status{}, err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 64<<10)
	if _, _, err := dicom.ReadFileMeta(br); err != nil {
		return dimse.Status{}, Permanent(fmt.Errorf("reading file meta of %s: %w", it.Instance.SOPInstanceUID, err))
	}
	var data io.Reader = br
	if pc.TransferSyntax != it.Instance.TransferSyntaxUID {
		from, _ := dicom.LookupTransferSyntax(it.Instance.TransferSyntaxUID)
		to, _ := dicom.LookupTransferSyntax(pc.TransferSyntax)
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(dicom.Transcode(pw, br, from, to, dicom.DefaultLimits())) }()
		defer pr.Close()
		data = pr
	}
	st, err := a.Store(ctx, pc, it.Instance.SOPClassUID, it.Instance.SOPInstanceUID, data)
	if err != nil && errors.Is(err, dimse.ErrAssociationEnded) {
		return st, fmt.Errorf("C-STORE of %s: %w", it.Instance.SOPInstanceUID, err)
	}
	return st, err
}

// permanentStatus reports whether a C-STORE status or STOW-RS Failure
// Reason means the destination will never take the instance as it is:
// 0122 (SOP class not supported) and A9xx (data set does not match the
// SOP class). The others (A7xx out of resources, 0110 processing failure,
// Cxxx cannot understand, ...) are retried.
func permanentStatus(code uint16) bool {
	return code == 0x0122 || code&0xFF00 == 0xA900
}
