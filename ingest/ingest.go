// Package ingest owns the one pipeline every instance goes through, whatever
// its channel (C-STORE, STOW-RS, import): stream the bytes to the blob store
// while the header is scanned and validated, then make the blob and the index
// record durable, and only then let the caller acknowledge.
//
// Durability: the journal is the index's write-ahead log. The blob's fsync
// and the journal append (group-committed across associations) run
// concurrently; the caller is answered once both are durable. The Badger
// index is then written without sync, recording a watermark of the journal
// below which every instance event has been applied; at start, Recover
// replays the journal above that watermark. A journal record whose blob is
// missing or short was never acknowledged (the blob fsync had not returned)
// and is skipped.
package ingest

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/relais-health/relais/dicom"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/storage"
	"github.com/zeebo/xxh3"
)

// DICOM statuses the pipeline answers with (PS3.4 Table B.2-1, PS3.7 C).
const (
	StatusSuccess             uint16 = 0x0000
	StatusWarningMismatch     uint16 = 0xB007 // data set does not match SOP class (stored anyway)
	StatusDuplicate           uint16 = 0x0111 // duplicate SOP instance (policy "reject")
	StatusOutOfResources      uint16 = 0xA700
	StatusIdentifierMismatch  uint16 = 0xA900
	StatusCannotUnderstand    uint16 = 0xC000
	StatusProcessingFailure   uint16 = 0x0110
	statusTooLarge            uint16 = 0xA701 // out of resources: the instance exceeds a configured limit
	maxRecoverMismatchWarning        = 10
)

// Error is a refused instance: the DICOM status the peer gets and why.
type Error struct {
	Status uint16
	Cause  string // short machine-readable cause for metrics: "malformed", "truncated", "limit", "mismatch", "storage", "duplicate"
	Err    error
}

func (e *Error) Error() string {
	return fmt.Sprintf("ingest: status %04X (%s): %v", e.Status, e.Cause, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Request is one instance to ingest.
type Request struct {
	Source storage.Source
	// SOPClassUID and SOPInstanceUID as announced by the channel (C-STORE
	// command, file meta); the dataset must agree.
	SOPClassUID, SOPInstanceUID string
	TransferSyntaxUID           string
	// Data is the data set (without file meta), in TransferSyntaxUID.
	Data io.Reader
	// ExpectStudyInstanceUID, when set, is the study the instance must
	// belong to (STOW-RS to /studies/{study}): an instance of another study
	// is refused before anything is committed (status A900, cause
	// "study-mismatch"), so it is never indexed and its blob is discarded.
	ExpectStudyInstanceUID string
}

// Result is what happened to an accepted instance.
type Result struct {
	Status    uint16 // 0000 or a warning
	Comment   string // why a warning
	Instance  *storage.Instance
	Duplicate bool // an instance with this SOP Instance UID was already stored
	Identical bool // and its data set had the same bytes
	Seq       uint64

	durability time.Duration
}

// Policy for duplicate SOP Instance UIDs.
type DuplicatePolicy int

// Duplicate policies.
const (
	KeepFirst DuplicatePolicy = iota // keep the stored one, answer success, journal the duplicate
	Replace                          // store the new one unless its bytes are identical
	Reject                           // refuse with 0111
)

// ParseDuplicatePolicy maps configuration names to policies.
func ParseDuplicatePolicy(s string) (DuplicatePolicy, error) {
	switch s {
	case "", "keep-first":
		return KeepFirst, nil
	case "replace":
		return Replace, nil
	case "reject":
		return Reject, nil
	}
	return 0, fmt.Errorf("ingest: unknown duplicate policy %q", s)
}

// Observer receives the outcome of each ingest, for metrics. It must not block.
type Observer interface {
	// Stored reports a durable instance: elapsed from the first byte, and
	// the part of it spent waiting for durability (fsyncs).
	Stored(channel string, bytes int64, elapsed, durability time.Duration)
	Refused(channel, cause string)
}

// Pipeline is the ingest pipeline. Its fields are set once before use.
type Pipeline struct {
	Blobs   storage.Blobs
	Index   storage.Index
	Journal *journal.Journal
	Limits  dicom.Limits
	// Duplicates is the duplicate SOP Instance UID policy.
	Duplicates DuplicatePolicy
	// AETitle and ImplementationClassUID go into the stored file meta.
	AETitle                string
	ImplementationClassUID string
	ImplementationVersion  string
	Observer               Observer
	Logger                 *slog.Logger
	// Clock gives the instances' ReceivedAt (default time.Now; an injected
	// clock for tests and demos, see RELAIS_CLOCK).
	Clock func() time.Time
	// Events, if set, is called after each successful ingest.
	Events func(*Result)
	// OnDurable, if set, is called for every instance made durable (kind
	// "instance.stored" or "instance.replaced", with its journal sequence)
	// after it is indexed and before SafeSeq may pass seq: a consumer that
	// records SafeSeq as its own watermark and replays the journal above it
	// at start never misses an instance (the routing engine does). It runs
	// on the ingest's goroutine, before the peer is answered: it must be
	// quick (hand the instance to a channel).
	OnDurable func(inst *storage.Instance, kind string, seq uint64)

	locks   keyedMutex
	wm      watermark
	counter atomic.Uint64
}

// indexed attributes: what query/retrieve and routing need, at every level.
var indexedTags = func() map[dicom.Tag]bool {
	m := map[dicom.Tag]bool{}
	for _, t := range IndexedTags {
		m[t] = true
	}
	return m
}()

// scannedTags are the tags Scan extracts: the indexed ones and the item
// attributes of the kept sequences (storage.SequenceItemTags). Scan's want
// does not know the nesting, so an item tag found at the top level is
// extracted too; instance keeps only indexed tags there.
var scannedTags = func() map[dicom.Tag]bool {
	m := map[dicom.Tag]bool{}
	for t := range indexedTags {
		m[t] = true
	}
	for seq, items := range storage.SequenceItemTags {
		for _, h := range append([]string{seq}, items...) {
			m[parseHexTag(h)] = true
		}
	}
	return m
}()

// parseHexTag parses an 8 hex digit tag of the tag lists (they are
// constants: a bad one is a programming error).
func parseHexTag(h string) dicom.Tag {
	v, err := strconv.ParseUint(h, 16, 32)
	if err != nil || len(h) != 8 {
		panic(fmt.Sprintf("ingest: bad tag %q in storage tag lists", h))
	}
	return dicom.Tag(v)
}

// sequenceItems returns the Attrs value of the kept sequence el (hex tag
// seq): its items with the attributes storage.SequenceItemTags lists for
// it, nested kept sequences included (see storage.SequenceItemTags); ""
// when it has no item.
func sequenceItems(seq string, el *dicom.Element) string {
	if len(el.Items) == 0 {
		return ""
	}
	kept := storage.SequenceItemTags[seq]
	items := make([]map[string]string, 0, min(len(el.Items), storage.MaxSequenceItems))
	for _, it := range el.Items {
		if len(items) == storage.MaxSequenceItems {
			break
		}
		m := map[string]string{}
		for _, h := range kept {
			t := parseHexTag(h)
			e, ok := it.Get(t)
			if !ok {
				continue
			}
			var v string
			if _, nested := storage.SequenceItemTags[h]; nested && (e.VR == dicom.VRSQ || e.Items != nil) {
				v = sequenceItems(h, e)
			} else if e.VR != dicom.VRSQ {
				v, _ = it.String(t)
			}
			if v != "" {
				m[h] = v
			}
		}
		items = append(items, m)
	}
	v, err := storage.EncodeItems(items)
	if err != nil {
		return ""
	}
	return v
}

// IndexedTags are the attributes extracted into the index.
var IndexedTags = []dicom.Tag{
	// patient
	dicom.TagPatientName, dicom.TagPatientID, dicom.TagIssuerOfPatientID, dicom.TagPatientBirthDate, dicom.TagPatientSex,
	dicom.NewTag(0x0010, 0x0024), // Issuer of Patient ID Qualifiers Sequence
	dicom.TagOtherPatientIDsSequence,
	// study
	dicom.NewTag(0x0008, 0x0051), // Issuer of Accession Number Sequence
	dicom.NewTag(0x0008, 0x1110), // Referenced Study Sequence
	dicom.TagStudyInstanceUID, dicom.TagStudyDate, dicom.TagStudyTime, dicom.TagAccessionNumber, dicom.TagStudyID,
	dicom.TagStudyDescription, dicom.TagReferringPhysicianName, dicom.TagInstitutionName,
	dicom.NewTag(0x0008, 0x1032), // Procedure Code Sequence
	dicom.NewTag(0x0032, 0x1060), // Requested Procedure Description
	dicom.NewTag(0x0040, 0x0275), // Request Attributes Sequence
	// series
	dicom.TagSeriesInstanceUID, dicom.TagModality, dicom.TagSeriesNumber, dicom.TagSeriesDescription,
	dicom.TagProtocolName, dicom.TagBodyPartExamined,
	dicom.NewTag(0x0008, 0x0021), // Series Date
	dicom.NewTag(0x0008, 0x0031), // Series Time
	dicom.NewTag(0x0008, 0x0070), // Manufacturer
	dicom.NewTag(0x0018, 0x1030), // (protocol name already) kept for stations that misuse it
	dicom.NewTag(0x0008, 0x1010), // Station Name
	// instance
	dicom.TagSOPClassUID, dicom.TagSOPInstanceUID, dicom.TagInstanceNumber,
	dicom.NewTag(0x0008, 0x0023), // Content Date
	dicom.NewTag(0x0008, 0x0033), // Content Time
	dicom.TagRows, dicom.TagColumns, dicom.TagBitsAllocated, dicom.TagNumberOfFrames,
	dicom.NewTag(0x0020, 0x0013), // Instance Number (dup-safe)
	dicom.NewTag(0x0028, 0x0004), // Photometric Interpretation
	dicom.NewTag(0x0040, 0xA730), // Content Sequence (SR/KOS)
}

// Store runs one instance through the pipeline. On success the instance is
// durable (or was already stored, per the duplicate policy) and the caller
// may acknowledge. On failure the returned *Error carries the DICOM status;
// nothing partial is left behind.
func (p *Pipeline) Store(ctx context.Context, rq *Request) (*Result, error) {
	start := time.Now()
	res, err := p.store(ctx, rq)
	if err != nil {
		var ie *Error
		if !errors.As(err, &ie) {
			ie = &Error{Status: StatusProcessingFailure, Cause: "internal", Err: err}
			err = ie
		}
		if p.Observer != nil {
			p.Observer.Refused(rq.Source.Channel, ie.Cause)
		}
		p.journalRefusal(rq, ie)
		return nil, err
	}
	if p.Observer != nil && !res.Duplicate {
		p.Observer.Stored(rq.Source.Channel, res.Instance.Size, time.Since(start), res.durability)
	}
	if p.Events != nil {
		p.Events(res)
	}
	return res, nil
}

func (p *Pipeline) now() time.Time {
	if p.Clock != nil {
		return p.Clock()
	}
	return time.Now()
}

func (p *Pipeline) logger() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.Default()
}

func (p *Pipeline) store(ctx context.Context, rq *Request) (*Result, error) {
	ts, ok := dicom.LookupTransferSyntax(rq.TransferSyntaxUID)
	if !ok {
		drain(rq.Data)
		return nil, &Error{Status: StatusCannotUnderstand, Cause: "transfer-syntax", Err: fmt.Errorf("unknown transfer syntax %q", rq.TransferSyntaxUID)}
	}
	if rq.SOPInstanceUID == "" || rq.SOPClassUID == "" {
		drain(rq.Data)
		return nil, &Error{Status: StatusCannotUnderstand, Cause: "malformed", Err: errors.New("no SOP Class or SOP Instance UID announced")}
	}
	unlock := p.locks.lock(rq.SOPInstanceUID)
	defer unlock()

	prev, err := p.Index.GetInstance(ctx, rq.SOPInstanceUID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		drain(rq.Data)
		return nil, &Error{Status: StatusOutOfResources, Cause: "storage", Err: fmt.Errorf("index lookup: %w", err)}
	}
	if prev != nil && p.Duplicates == Reject {
		drain(rq.Data)
		return nil, &Error{Status: StatusDuplicate, Cause: "duplicate", Err: fmt.Errorf("SOP Instance UID %s already stored", rq.SOPInstanceUID)}
	}
	if prev != nil && p.Duplicates == KeepFirst {
		return p.duplicate(ctx, rq, ts, prev)
	}

	key, bw, err := p.createBlob(ctx, rq.SOPInstanceUID)
	if err != nil {
		drain(rq.Data)
		return nil, &Error{Status: StatusOutOfResources, Cause: "storage", Err: fmt.Errorf("create blob: %w", err)}
	}
	committed := false
	defer func() {
		if !committed {
			if aerr := bw.Abort(); aerr != nil {
				p.logger().Warn("abort blob", "key", key, "err", aerr)
			}
		}
	}()
	cw := &countingWriter{w: bw}
	meta := dicom.FileMeta{
		MediaStorageSOPClassUID:      rq.SOPClassUID,
		MediaStorageSOPInstanceUID:   rq.SOPInstanceUID,
		TransferSyntaxUID:            rq.TransferSyntaxUID,
		ImplementationClassUID:       p.ImplementationClassUID,
		ImplementationVersionName:    p.ImplementationVersion,
		SourceApplicationEntityTitle: rq.Source.CallingAE,
	}
	if _, err := dicom.WriteFileMeta(cw, meta); err != nil {
		drain(rq.Data)
		return nil, &Error{Status: StatusOutOfResources, Cause: "storage", Err: fmt.Errorf("write file meta: %w", err)}
	}
	h := xxh3.New128()
	sink := newAsyncSink(cw, h)
	tee := &teeReader{r: rq.Data, w: sink}
	scan, err := dicom.Scan(tee, ts, p.Limits, wantTag)
	if serr := sink.Close(); serr != nil && tee.werr == nil {
		tee.werr = serr
	}
	if err == nil && tee.werr != nil {
		err = tee.werr
	}
	if err != nil {
		drain(rq.Data)
		return nil, scanError(tee, err)
	}
	inst, warn, err := p.instance(rq, scan, key, cw.n, checksum(h))
	if err != nil {
		return nil, err
	}
	if prev != nil && prev.Checksum == inst.Checksum {
		// Replace policy, identical bytes: never store twice.
		return p.duplicate(ctx, nil, ts, prev)
	}
	kind := "instance.stored"
	if prev != nil {
		kind = "instance.replaced"
	}
	cstart := time.Now()
	seq, err := p.commit(ctx, bw, inst, kind)
	if err != nil {
		return nil, err
	}
	committed = true
	if prev != nil && prev.BlobKey != inst.BlobKey {
		if err := p.Blobs.Delete(ctx, prev.BlobKey); err != nil {
			p.logger().Warn("delete replaced blob", "key", prev.BlobKey, "err", err)
		}
	}
	res := &Result{Status: StatusSuccess, Instance: inst, Seq: seq, Duplicate: prev != nil, durability: time.Since(cstart)}
	if warn != "" {
		res.Status, res.Comment = StatusWarningMismatch, warn
	}
	return res, nil
}

// commit makes blob and journal record durable concurrently, then indexes.
func (p *Pipeline) commit(ctx context.Context, bw storage.BlobWriter, inst *storage.Instance, kind string) (uint64, error) {
	data, err := json.Marshal(inst)
	if err != nil {
		return 0, &Error{Status: StatusProcessingFailure, Cause: "internal", Err: err}
	}
	ev := &journal.Event{
		Kind: kind, AE: inst.Source.CallingAE, CalledAE: inst.Source.CalledAE, Addr: inst.Source.RemoteAddr, User: inst.Source.User,
		Association: inst.Source.Association, StudyUID: inst.StudyInstanceUID, SeriesUID: inst.SeriesInstanceUID,
		SOPInstanceUID: inst.SOPInstanceUID, Data: data,
	}
	blobErr := make(chan error, 1)
	go func() { blobErr <- bw.Commit(ctx) }()
	floor := p.wm.enter(p.Journal.LastSeq())
	defer p.wm.leave(floor)
	seq, jerr := p.Journal.Append(ctx, ev)
	berr := <-blobErr
	if berr != nil {
		return 0, &Error{Status: StatusOutOfResources, Cause: "storage", Err: fmt.Errorf("blob commit: %w", berr)}
	}
	if jerr != nil {
		return 0, &Error{Status: StatusOutOfResources, Cause: "storage", Err: fmt.Errorf("journal: %w", jerr)}
	}
	// Durable: from here on the instance is acknowledged whatever happens
	// to the index write, which Recover redoes from the journal.
	if err := p.Index.PutInstance(ctx, inst, p.wm.mark()); err != nil {
		p.logger().Error("index write failed; the journal will replay it at next start", "sop", inst.SOPInstanceUID, "err", err)
	}
	if p.OnDurable != nil {
		p.OnDurable(inst, kind, seq)
	}
	return seq, nil
}

// SafeSeq is a journal sequence at or below which every instance event has
// been indexed and handed to OnDurable (see OnDurable).
func (p *Pipeline) SafeSeq() uint64 { return p.wm.mark() }

// duplicate consumes and validates a data set whose SOP Instance UID is
// already stored, without storing it, and journals it.
func (p *Pipeline) duplicate(ctx context.Context, rq *Request, ts dicom.TransferSyntax, prev *storage.Instance) (*Result, error) {
	identical := true
	if rq != nil {
		h := xxh3.New128()
		tee := &teeReader{r: rq.Data, w: h}
		want := func(dicom.Tag) bool { return false }
		if rq.ExpectStudyInstanceUID != "" {
			want = func(t dicom.Tag) bool { return t == dicom.TagStudyInstanceUID }
		}
		scan, err := dicom.Scan(tee, ts, p.Limits, want)
		if err != nil {
			drain(rq.Data)
			return nil, scanError(tee, err)
		}
		if rq.ExpectStudyInstanceUID != "" {
			study, _ := scan.Dataset.String(dicom.TagStudyInstanceUID)
			if err := checkStudy(rq, study); err != nil {
				return nil, err
			}
		}
		identical = checksum(h) == prev.Checksum
	}
	ev := &journal.Event{Kind: "instance.duplicate", StudyUID: prev.StudyInstanceUID, SeriesUID: prev.SeriesInstanceUID, SOPInstanceUID: prev.SOPInstanceUID}
	if rq != nil {
		ev.AE, ev.CalledAE, ev.Addr, ev.Association = rq.Source.CallingAE, rq.Source.CalledAE, rq.Source.RemoteAddr, rq.Source.Association
		ev.User = rq.Source.User
	}
	if identical {
		ev.Reason = "identical bytes; kept the stored instance"
	} else {
		ev.Reason = "different bytes; kept the first instance (duplicate_policy keep-first)"
	}
	seq := p.Journal.AppendAsync(ev)
	return &Result{Status: StatusSuccess, Instance: prev, Duplicate: true, Identical: identical, Seq: seq}, nil
}

// instance builds the index record and checks the data set's identifiers
// against what the channel announced.
func (p *Pipeline) instance(rq *Request, scan *dicom.ScanResult, key string, size int64, sum string) (*storage.Instance, string, error) {
	ds := scan.Dataset
	str := func(t dicom.Tag) string {
		s, _ := ds.String(t)
		return s
	}
	sop := str(dicom.TagSOPInstanceUID)
	if sop != rq.SOPInstanceUID {
		return nil, "", &Error{Status: StatusIdentifierMismatch, Cause: "mismatch",
			Err: fmt.Errorf("data set SOP Instance UID %q differs from the announced %q", sop, rq.SOPInstanceUID)}
	}
	study, series := str(dicom.TagStudyInstanceUID), str(dicom.TagSeriesInstanceUID)
	if study == "" || series == "" {
		return nil, "", &Error{Status: StatusIdentifierMismatch, Cause: "mismatch",
			Err: errors.New("data set lacks Study or Series Instance UID")}
	}
	for _, u := range [][2]string{{"SOP Instance", sop}, {"Study Instance", study}, {"Series Instance", series}} {
		if strings.ContainsAny(u[1], "/\x00") {
			// The index cannot hold it: refuse before commit rather than
			// acknowledge an instance that is never indexed (and whose
			// journal record would fail every replay).
			return nil, "", &Error{Status: StatusCannotUnderstand, Cause: "malformed",
				Err: fmt.Errorf("data set %s UID %q contains a NUL or '/'", u[0], u[1])}
		}
	}
	if err := checkStudy(rq, study); err != nil {
		return nil, "", err
	}
	warn := ""
	if cls := str(dicom.TagSOPClassUID); cls != rq.SOPClassUID {
		warn = fmt.Sprintf("data set SOP Class UID %q differs from the announced %q", cls, rq.SOPClassUID)
	}
	attrs := make(map[string]string, len(ds.Elements))
	for t, el := range ds.Elements {
		if !indexedTags[t] {
			continue // Specific Character Set, item attributes found at the top level
		}
		h := fmt.Sprintf("%08X", uint32(t))
		if el.VR == dicom.VRSQ || el.Items != nil {
			if _, kept := storage.SequenceItemTags[h]; kept {
				if v := sequenceItems(h, el); v != "" {
					attrs[h] = v
				}
			}
			continue
		}
		v, err := ds.String(t)
		if err != nil || v == "" {
			continue
		}
		attrs[h] = v
	}
	inst := &storage.Instance{
		SOPInstanceUID:    sop,
		SOPClassUID:       rq.SOPClassUID,
		SeriesInstanceUID: series,
		StudyInstanceUID:  study,
		PatientID:         str(dicom.TagPatientID),
		TransferSyntaxUID: rq.TransferSyntaxUID,
		BlobKey:           key,
		Size:              size,
		Checksum:          sum,
		ReceivedAt:        p.now().UTC(),
		Source:            rq.Source,
		Attrs:             attrs,
		CharacterSet:      strings.Join(ds.CharacterSet, `\`),
	}
	return inst, warn, nil
}

// checkStudy refuses a data set of another study than the one the request
// expects (Request.ExpectStudyInstanceUID).
func checkStudy(rq *Request, study string) error {
	want := strings.TrimRight(rq.ExpectStudyInstanceUID, " \x00")
	if want == "" || study == want {
		return nil
	}
	return &Error{Status: StatusIdentifierMismatch, Cause: "study-mismatch",
		Err: fmt.Errorf("data set Study Instance UID %q differs from the expected %q", study, want)}
}

// checksum formats the data set's hash as stored in the index.
func checksum(h *xxh3.Hasher128) string {
	return "xxh3-128:" + hex.EncodeToString(h.Sum(nil))
}

func wantTag(t dicom.Tag) bool { return scannedTags[t] }

// scanError classifies a scanner error into a DICOM status.
func scanError(tee *teeReader, err error) error {
	if tee.werr != nil {
		return &Error{Status: StatusOutOfResources, Cause: "storage", Err: fmt.Errorf("write blob: %w", tee.werr)}
	}
	if tee.rerr != nil && !errors.Is(tee.rerr, io.EOF) {
		// The channel failed (association aborted, client gone).
		return &Error{Status: StatusProcessingFailure, Cause: "channel", Err: tee.rerr}
	}
	switch {
	case errors.Is(err, dicom.ErrLimitExceeded):
		return &Error{Status: statusTooLarge, Cause: "limit", Err: err}
	case errors.Is(err, dicom.ErrTruncated):
		return &Error{Status: StatusCannotUnderstand, Cause: "truncated", Err: err}
	default:
		return &Error{Status: StatusCannotUnderstand, Cause: "malformed", Err: err}
	}
}

func (p *Pipeline) journalRefusal(rq *Request, ie *Error) {
	if p.Journal == nil {
		return
	}
	p.Journal.AppendAsync(&journal.Event{
		Kind: "instance.refused", AE: rq.Source.CallingAE, CalledAE: rq.Source.CalledAE, Addr: rq.Source.RemoteAddr,
		User: rq.Source.User, Association: rq.Source.Association, SOPInstanceUID: rq.SOPInstanceUID,
		Status: fmt.Sprintf("%04X", ie.Status), Reason: ie.Cause + ": " + ie.Err.Error(),
	})
	p.logger().Warn("instance refused", "sop", rq.SOPInstanceUID, "calling_ae", rq.Source.CallingAE,
		"channel", rq.Source.Channel, "status", fmt.Sprintf("%04X", ie.Status), "err", ie.Err)
}

// createBlob creates the blob of a new instance, under a key the store
// picks when it can prepare blobs ahead of time.
func (p *Pipeline) createBlob(ctx context.Context, sop string) (string, storage.BlobWriter, error) {
	if uc, ok := p.Blobs.(storage.UniqueCreator); ok {
		bw, key, err := uc.CreateUnique(ctx)
		return key, bw, err
	}
	key := p.blobKey(sop)
	bw, err := p.Blobs.Create(ctx, key)
	return key, bw, err
}

// blobKey spreads blobs over 256 directories and makes every write unique, so
// a replaced instance never overwrites the bytes it replaces. One level only:
// a new directory costs a directory fsync, so their number must stay small.
func (p *Pipeline) blobKey(sop string) string {
	f := fnv.New32a()
	f.Write([]byte(sop))
	s := f.Sum32()
	n := p.counter.Add(1)
	return fmt.Sprintf("%02x/%s.%s%s.dcm", s>>24, sop,
		strconv.FormatInt(time.Now().UnixNano(), 36), strconv.FormatUint(n, 36))
}

// Recover replays journal events above the index's watermark. Call it once
// at start, before serving.
func (p *Pipeline) Recover(ctx context.Context) (replayed, skipped int, err error) {
	from, err := p.Index.AppliedSeq(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("ingest: recover: %w", err)
	}
	err = p.Journal.Replay(ctx, from, func(ev *journal.Event) error {
		switch ev.Kind {
		case "instance.stored", "instance.replaced":
			var inst storage.Instance
			if err := json.Unmarshal(ev.Data, &inst); err != nil {
				return fmt.Errorf("journal seq %d: %w", ev.Seq, err)
			}
			size, err := p.Blobs.Stat(ctx, inst.BlobKey)
			if err != nil || size != inst.Size {
				skipped++
				if skipped <= maxRecoverMismatchWarning {
					p.logger().Warn("journal record without its whole blob (never acknowledged); skipped",
						"seq", ev.Seq, "sop", inst.SOPInstanceUID, "blob", inst.BlobKey, "size", size, "want", inst.Size, "err", err)
				}
				return nil
			}
			if err := p.Index.PutInstance(ctx, &inst, ev.Seq-1); err != nil {
				return fmt.Errorf("journal seq %d: %w", ev.Seq, err)
			}
			replayed++
		case "instance.deleted":
			if err := p.Index.DeleteInstance(ctx, ev.SOPInstanceUID, ev.Seq-1); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("journal seq %d: %w", ev.Seq, err)
			}
		}
		return nil
	})
	if err != nil {
		return replayed, skipped, fmt.Errorf("ingest: recover: %w", err)
	}
	p.wm.mu.Lock()
	p.wm.last = p.Journal.LastSeq()
	p.wm.mu.Unlock()
	return replayed, skipped, nil
}

// watermark tracks the journal floor below which every instance event has
// reached the index: an ingest registers the journal's last sequence before
// it appends (its own sequence will be larger), so the minimum registered
// floor never passes an instance that is not yet indexed.
type watermark struct {
	mu     sync.Mutex
	floors map[uint64]int
	last   uint64
}

func (w *watermark) enter(floor uint64) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.floors == nil {
		w.floors = map[uint64]int{}
	}
	w.floors[floor]++
	return floor
}

func (w *watermark) leave(floor uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.floors[floor]--; w.floors[floor] <= 0 {
		delete(w.floors, floor)
	}
	if floor > w.last {
		w.last = floor
	}
}

// mark is the highest sequence below which everything is indexed.
func (w *watermark) mark() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	min := uint64(0)
	first := true
	for f := range w.floors {
		if first || f < min {
			min, first = f, false
		}
	}
	if first {
		return w.last
	}
	return min
}

// keyedMutex serialises work on one SOP Instance UID.
type keyedMutex struct {
	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	mu   sync.Mutex
	refs int
}

func (k *keyedMutex) lock(key string) func() {
	k.mu.Lock()
	if k.m == nil {
		k.m = map[string]*keyedEntry{}
	}
	e := k.m[key]
	if e == nil {
		e = &keyedEntry{}
		k.m[key] = e
	}
	e.refs++
	k.mu.Unlock()
	e.mu.Lock()
	return func() {
		e.mu.Unlock()
		k.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(k.m, key)
		}
		k.mu.Unlock()
	}
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// teeReader hands the scanner what it reads and copies it, as it passes, to
// the blob and the hash. Errors are kept apart to tell a storage failure
// from a broken channel from a malformed data set.
type teeReader struct {
	r    io.Reader
	w    io.Writer
	rerr error
	werr error
}

func (t *teeReader) Read(b []byte) (int, error) {
	n, err := t.r.Read(b)
	if n > 0 {
		if t.werr == nil {
			if _, werr := t.w.Write(b[:n]); werr != nil {
				t.werr = werr
			}
		}
		if t.werr != nil {
			return n, t.werr
		}
	}
	if err != nil {
		t.rerr = err
	}
	return n, err
}

func drain(r io.Reader) {
	if r != nil {
		io.Copy(io.Discard, r)
	}
}
