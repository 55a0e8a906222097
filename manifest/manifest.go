// Package manifest builds, stores and serves the Key Object Selection
// documents of a study: the IHE XDS-I.b / CI-SIS imaging manifest (title
// 113030 "Manifest", every instance of the study with where to retrieve
// it) and the key-image notes a radiologist flags (title 113000 "Of
// Interest"). It reads the study from the storage index, has package kos
// encode the document and stores it as an instance of the study through
// the caller's Store (the node's ingest pipeline), so that C-FIND, QIDO-RS
// and WADO-RS find it like any other instance. It owns the HTTP API
// (Handler) and the idempotence rule: a manifest's UIDs derive from the
// study and the set of instances it references, so building an unchanged
// study again returns the stored manifest instead of a new one.
package manifest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/relais-health/relais/ingest"
	"github.com/relais-health/relais/journal"
	"github.com/relais-health/relais/kos"
	"github.com/relais-health/relais/storage"
)

// Errors. They are wrapped with a message naming what was wrong; test
// them with errors.Is.
var (
	// ErrNotFound: the study is not stored here.
	ErrNotFound = errors.New("study not found")
	// ErrInvalid: a request the service refuses (an instance that is not
	// in the study, a bad frame number, nothing to reference).
	ErrInvalid = errors.New("invalid request")
)

// Series numbers of the documents (so viewers list them after the images).
const (
	ManifestSeriesNumber  = 9901
	KeyImageSeriesNumber  = 9902
	encapsulatedDocPrefix = "1.2.840.10008.5.1.4.1.1.104." // Encapsulated PDF, CDA, STL, OBJ, MTL
)

// StoreFunc stores a Part 10 file Relais built as an instance of its study
// (node.StoreGenerated).
type StoreFunc func(ctx context.Context, file []byte, user string) (*ingest.Result, error)

// Service builds and stores manifests and key-image notes.
type Service struct {
	Index storage.Index
	// Blobs reads back a manifest already stored (an unchanged study).
	Blobs storage.Blobs
	Store StoreFunc
	// Retrieve is written beside every series of the evidence: the
	// node's AE title, its Retrieve Location UID and its WADO-RS base.
	Retrieve kos.Retrieve
	// Institution, if set, is the Institution Name of the documents.
	Institution string
	// Complete, if set, completes a document from what the node knows
	// beyond the images (the requesting site's issuers of patient ids and
	// accession numbers) before it is built. It sees the instances the
	// document references.
	Complete func(m *kos.Manifest, instances []*storage.Instance)
	Journal  *journal.Journal
	Logger   *slog.Logger
	// Clock dates the documents (default time.Now).
	Clock func() time.Time

	mu sync.Mutex // one build at a time: check-then-store is not racy
}

// Result is a stored (or found) document.
type Result struct {
	StudyInstanceUID  string `json:"study_instance_uid"`
	SeriesInstanceUID string `json:"series_instance_uid"`
	SOPInstanceUID    string `json:"sop_instance_uid"`
	SOPClassUID       string `json:"sop_class_uid"`
	// Title is the document title's code value (113030 or 113000).
	Title string `json:"title"`
	// Instances is the number of instances the document references.
	Instances int `json:"instances"`
	// RetrieveURL is the WADO-RS URL of the document itself ("" without
	// a WADO base).
	RetrieveURL string `json:"retrieve_url,omitempty"`
	// Created is false when an identical document was already stored.
	Created bool `json:"created"`
	// File is the Part 10 file as stored.
	File []byte `json:"-"`
}

// KeyImage is an instance a radiologist flags, with the frames of a
// multi-frame image (none: the whole instance).
type KeyImage struct {
	SOPInstanceUID string `json:"sop_instance_uid"`
	Frames         []int  `json:"frames,omitempty"`
}

// IsDocument reports whether instances of a SOP class are documents a
// manifest does not reference: Key Object Selection documents (earlier
// manifests and notes) and encapsulated documents (reports as CDA or PDF).
func IsDocument(sopClass string) bool {
	return sopClass == kos.SOPClassUID || strings.HasPrefix(sopClass, encapsulatedDocPrefix)
}

// studyInstances lists the study's instances (ErrNotFound if none).
func (s *Service) studyInstances(ctx context.Context, study string) ([]*storage.Instance, error) {
	if study == "" {
		return nil, fmt.Errorf("%w: no Study Instance UID", ErrInvalid)
	}
	var all []*storage.Instance
	err := s.Index.StudyInstances(ctx, study, func(in *storage.Instance) error {
		all = append(all, in)
		return nil
	})
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("manifest: listing study %s: %w", study, err)
	}
	if len(all) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, study)
	}
	return all, nil
}

// images keeps the instances a manifest references (not documents).
func images(all []*storage.Instance) []*storage.Instance {
	var out []*storage.Instance
	for _, in := range all {
		if in == nil || IsDocument(in.SOPClassUID) || in.Source.Channel == storage.ChannelGenerated {
			continue
		}
		out = append(out, in)
	}
	return out
}

// StudyManifest builds the study's XDS-I.b manifest over its instances,
// stores it in the study and returns it. An unchanged study (same
// referenced instances) gives the manifest already stored (Created
// false); a study with new or fewer instances gives a new one.
func (s *Service) StudyManifest(ctx context.Context, study, user string) (*Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	all, err := s.studyInstances(ctx, study)
	if err != nil {
		return nil, err
	}
	imgs := images(all)
	if len(imgs) == 0 {
		return nil, fmt.Errorf("%w: study %s holds no instance to reference (only documents)", ErrInvalid, study)
	}
	key := manifestKey(study, imgs)
	m := kos.FromInstances(imgs, s.Retrieve)
	if s.Complete != nil {
		s.Complete(&m, imgs)
	}
	m.Title = kos.TitleManifest
	m.SOPInstanceUID = hashUID("sop\x00" + key)
	m.SeriesInstanceUID = hashUID("series\x00" + key)
	m.SeriesNumber = ManifestSeriesNumber
	m.InstanceNumber = 1
	res, err := s.buildAndStore(ctx, m, user, len(imgs))
	if err != nil {
		return nil, err
	}
	s.journal(&journal.Event{Kind: "manifest.built", User: user, StudyUID: study, SeriesUID: res.SeriesInstanceUID,
		SOPInstanceUID: res.SOPInstanceUID, Reason: fmt.Sprintf("XDS-I.b manifest of %d instance(s), %s", res.Instances, createdWord(res.Created))})
	s.log().Info("manifest built", "study", study, "sop", res.SOPInstanceUID, "instances", res.Instances, "created", res.Created, "user", user)
	return res, nil
}

// manifestKey identifies a study's manifest: the study and the set of
// instances it references.
func manifestKey(study string, imgs []*storage.Instance) string {
	sops := make([]string, 0, len(imgs))
	for _, in := range imgs {
		sops = append(sops, in.SOPInstanceUID)
	}
	sort.Strings(sops)
	return "manifest\x00" + study + "\x00" + strings.Join(sops, "\x00")
}

// CurrentManifest returns the study's manifest for its current instances
// if it was built (ErrNotFound otherwise: unknown study, or no manifest
// of its current state); it builds nothing.
func (s *Service) CurrentManifest(ctx context.Context, study string) (*Result, error) {
	all, err := s.studyInstances(ctx, study)
	if err != nil {
		return nil, err
	}
	imgs := images(all)
	if len(imgs) == 0 {
		return nil, fmt.Errorf("%w: study %s holds no image", ErrNotFound, study)
	}
	sop := hashUID("sop\x00" + manifestKey(study, imgs))
	in, err := s.Index.GetInstance(ctx, sop)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%w: no manifest of the current state of study %s (POST to build it)", ErrNotFound, study)
	}
	if err != nil {
		return nil, fmt.Errorf("manifest: index: %w", err)
	}
	file, err := s.read(ctx, in)
	if err != nil {
		return nil, err
	}
	return &Result{StudyInstanceUID: study, SeriesInstanceUID: in.SeriesInstanceUID, SOPInstanceUID: sop, SOPClassUID: kos.SOPClassUID,
		Title: kos.TitleManifest.Value, Instances: len(imgs), RetrieveURL: s.instanceURL(study, in.SeriesInstanceUID, sop), File: file}, nil
}

// KeyImages builds a key-image note (title 113000 "Of Interest") that
// references the flagged instances (and frames) of the study, with the
// description as its Key Object Description, and stores it in the study.
// Every flagged instance must be an image of the study (ErrInvalid
// otherwise). The same flags and description by the same user give the
// note already stored (Created false): a retried request is harmless.
func (s *Service) KeyImages(ctx context.Context, study string, refs []KeyImage, description, user string) (*Result, error) {
	if len(refs) == 0 {
		return nil, fmt.Errorf("%w: no instance flagged", ErrInvalid)
	}
	if len(description) > 10000 {
		return nil, fmt.Errorf("%w: description longer than 10000 characters", ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	all, err := s.studyInstances(ctx, study)
	if err != nil {
		return nil, err
	}
	bySOP := map[string]*storage.Instance{}
	for _, in := range all {
		bySOP[in.SOPInstanceUID] = in
	}
	frames := map[string][]int{}
	var flagged []*storage.Instance
	for _, r := range refs {
		in := bySOP[r.SOPInstanceUID]
		if in == nil {
			return nil, fmt.Errorf("%w: instance %q is not in study %s", ErrInvalid, r.SOPInstanceUID, study)
		}
		if IsDocument(in.SOPClassUID) {
			return nil, fmt.Errorf("%w: instance %s is a document, not an image", ErrInvalid, r.SOPInstanceUID)
		}
		n := atoi(in.Attrs["00280008"]) // Number of Frames, when the index keeps it
		if len(r.Frames) > 0 && !kos.MultiFrame(in.SOPClassUID) {
			// Frame 1 of a single-frame image is the image.
			for _, f := range r.Frames {
				if f != 1 {
					return nil, fmt.Errorf("%w: frame %d of instance %s, a single-frame image", ErrInvalid, f, r.SOPInstanceUID)
				}
			}
			r.Frames = nil
		}
		for _, f := range r.Frames {
			if f < 1 {
				return nil, fmt.Errorf("%w: frame %d of instance %s (frames count from 1)", ErrInvalid, f, r.SOPInstanceUID)
			}
			if n > 0 && f > n {
				return nil, fmt.Errorf("%w: frame %d of instance %s (it has %d)", ErrInvalid, f, r.SOPInstanceUID, n)
			}
		}
		if _, seen := frames[r.SOPInstanceUID]; !seen {
			flagged = append(flagged, in)
			frames[r.SOPInstanceUID] = nil
		}
		frames[r.SOPInstanceUID] = append(frames[r.SOPInstanceUID], r.Frames...)
	}
	var keyParts []string
	for sop, fr := range frames {
		fr = uniqueInts(fr)
		frames[sop] = fr
		parts := []string{sop}
		for _, f := range fr {
			parts = append(parts, strconv.Itoa(f))
		}
		keyParts = append(keyParts, strings.Join(parts, ":"))
	}
	sort.Strings(keyParts)
	key := "keyimages\x00" + study + "\x00" + user + "\x00" + description + "\x00" + strings.Join(keyParts, "\x00")
	m := kos.FromInstances(flagged, s.Retrieve)
	if s.Complete != nil {
		s.Complete(&m, flagged)
	}
	m.Title = kos.TitleOfInterest
	m.Description = description
	m.Frames = frames
	m.SOPInstanceUID = hashUID("sop\x00" + key)
	// The study's notes share one series.
	m.SeriesInstanceUID = hashUID("keyimages-series\x00" + study)
	m.SeriesNumber = KeyImageSeriesNumber
	m.InstanceNumber = 1
	for _, in := range all {
		if in.SeriesInstanceUID == m.SeriesInstanceUID && in.SOPInstanceUID != m.SOPInstanceUID {
			m.InstanceNumber++
		}
	}
	res, err := s.buildAndStore(ctx, m, user, len(flagged))
	if err != nil {
		return nil, err
	}
	s.journal(&journal.Event{Kind: "keyimages.flagged", User: user, StudyUID: study, SeriesUID: res.SeriesInstanceUID,
		SOPInstanceUID: res.SOPInstanceUID, Reason: fmt.Sprintf("key-image note of %d instance(s), %s", res.Instances, createdWord(res.Created))})
	s.log().Info("key images flagged", "study", study, "sop", res.SOPInstanceUID, "instances", res.Instances, "created", res.Created, "user", user)
	return res, nil
}

// buildAndStore returns the stored document of m's SOP Instance UID, or
// builds and stores it.
func (s *Service) buildAndStore(ctx context.Context, m kos.Manifest, user string, n int) (*Result, error) {
	res := &Result{StudyInstanceUID: m.Study.StudyInstanceUID, SeriesInstanceUID: m.SeriesInstanceUID, SOPInstanceUID: m.SOPInstanceUID,
		SOPClassUID: kos.SOPClassUID, Title: m.Title.Value, Instances: n, RetrieveURL: s.instanceURL(m.Study.StudyInstanceUID, m.SeriesInstanceUID, m.SOPInstanceUID)}
	if in, err := s.Index.GetInstance(ctx, m.SOPInstanceUID); err == nil {
		file, err := s.read(ctx, in)
		if err != nil {
			return nil, err
		}
		res.SeriesInstanceUID = in.SeriesInstanceUID
		res.File = file
		return res, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("manifest: index: %w", err)
	}
	if m.Institution == "" {
		m.Institution = s.Institution
	}
	m.ContentDateTime = s.now()
	file, err := kos.BuildFile(m)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	st, err := s.Store(ctx, file, user)
	if err != nil {
		return nil, fmt.Errorf("manifest: storing %s: %w", m.SOPInstanceUID, err)
	}
	res.Created = !st.Duplicate
	res.File = file
	// Answer with the file as stored (ingest writes its own file meta), so
	// that a later request for the same document gets the same bytes.
	in := st.Instance
	if in == nil || in.BlobKey == "" {
		in, _ = s.Index.GetInstance(ctx, m.SOPInstanceUID)
	}
	if in != nil {
		if f, err := s.read(ctx, in); err == nil {
			res.File = f
		}
	}
	return res, nil
}

// read returns the stored Part 10 file of an instance.
func (s *Service) read(ctx context.Context, in *storage.Instance) ([]byte, error) {
	if s.Blobs == nil {
		return nil, errors.New("manifest: no blob store to read the stored document")
	}
	b, err := s.Blobs.Open(ctx, in.BlobKey)
	if err != nil {
		return nil, fmt.Errorf("manifest: reading stored %s: %w", in.SOPInstanceUID, err)
	}
	defer b.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, b); err != nil {
		return nil, fmt.Errorf("manifest: reading stored %s: %w", in.SOPInstanceUID, err)
	}
	return buf.Bytes(), nil
}

// instanceURL is the WADO-RS URL of an instance.
func (s *Service) instanceURL(study, series, sop string) string {
	u := s.Retrieve.SeriesURL(study, series)
	if u == "" {
		return ""
	}
	return u + "/instances/" + url.PathEscape(sop)
}

func (s *Service) now() time.Time {
	if s.Clock != nil {
		return s.Clock()
	}
	return time.Now()
}

func (s *Service) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Service) journal(ev *journal.Event) {
	if s.Journal != nil {
		s.Journal.AppendAsync(ev)
	}
}

func createdWord(c bool) string {
	if c {
		return "created"
	}
	return "unchanged (already stored)"
}

// HashUID derives a UID under the 2.25 root from a key: the first 128 bits
// of its SHA-256 as a decimal integer (RFC 4122 name-based, version 8
// bits), so that the same key always gives the same UID.
func HashUID(key string) string { return hashUID(key) }

func hashUID(key string) string {
	h := sha256.Sum256([]byte(key))
	b := h[:16]
	b[6] = b[6]&0x0f | 0x80
	b[8] = b[8]&0x3f | 0x80
	return "2.25." + new(big.Int).SetBytes(b).String()
}

func atoi(s string) int {
	if i := strings.IndexByte(s, '\\'); i >= 0 {
		s = s[:i]
	}
	n, _ := strconv.Atoi(strings.TrimSpace(s))
	return n
}

func uniqueInts(v []int) []int {
	if len(v) == 0 {
		return nil
	}
	sort.Ints(v)
	out := v[:1]
	for _, x := range v[1:] {
		if x != out[len(out)-1] {
			out = append(out, x)
		}
	}
	return out
}
