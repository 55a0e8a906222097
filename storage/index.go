package storage

import (
	"context"
	"time"
)

// Source records how an instance reached Relais.
type Source struct {
	// Channel is "dimse", "stow", "import" or ChannelGenerated.
	Channel     string `json:"channel,omitempty"`
	CallingAE   string `json:"calling_ae,omitempty"`
	CalledAE    string `json:"called_ae,omitempty"`
	RemoteAddr  string `json:"remote_addr,omitempty"`
	Association string `json:"association,omitempty"`
	// User is the authenticated user of an HTTP channel (STOW-RS).
	User string `json:"user,omitempty"`
}

// ChannelGenerated is the channel of instances Relais built itself
// (manifests, key-image notes, encapsulated reports).
const ChannelGenerated = "relais"

// Instance is the index record of one stored SOP instance. It is also the
// payload of the journal's "instance.stored" event (hence the JSON tags).
type Instance struct {
	SOPInstanceUID    string `json:"sop"`
	SOPClassUID       string `json:"sop_class,omitempty"`
	SeriesInstanceUID string `json:"series"`
	StudyInstanceUID  string `json:"study"`
	PatientID         string `json:"patient,omitempty"`
	TransferSyntaxUID string `json:"ts,omitempty"`
	BlobKey           string `json:"blob"`
	Size              int64  `json:"size"`
	// Checksum identifies the data set's bytes (after the file meta, so the
	// same instance sent by two AEs compares equal): "xxh3-128:<hex>". It
	// detects corruption and duplicates; it is not a signature (the journal
	// and, later, signed reports carry integrity against tampering).
	Checksum   string    `json:"checksum,omitempty"`
	ReceivedAt time.Time `json:"received"`
	Source     Source    `json:"source"`
	// Attrs holds DICOM attributes for query/retrieve and routing: key = 8
	// upper-case hex digits of the tag ("00100010"), value UTF-8 with
	// multiple values joined by '\'.
	Attrs map[string]string `json:"attrs,omitempty"`
	// CharacterSet is the Specific Character Set (0008,0005) as received.
	CharacterSet string `json:"charset,omitempty"`
}

// Study aggregates the instances of a study.
type Study struct {
	StudyInstanceUID string `json:"study"`
	PatientID        string `json:"patient,omitempty"`
	// Attrs are the study- and patient-level attributes (see
	// StudyLevelTags, PatientLevelTags) of the first instance received.
	Attrs         map[string]string `json:"attrs,omitempty"`
	Series        int               `json:"series"`
	Instances     int               `json:"instances"`
	Size          int64             `json:"size"`
	Modalities    []string          `json:"modalities,omitempty"`  // sorted
	SOPClasses    []string          `json:"sop_classes,omitempty"` // sorted
	FirstReceived time.Time         `json:"first_received"`
	LastReceived  time.Time         `json:"last_received"`
	// CharacterSet is the Specific Character Set of the first instance
	// received (the one Attrs come from); "" for records written before it
	// was kept.
	CharacterSet string `json:"charset,omitempty"`
}

// Series aggregates the instances of a series.
type Series struct {
	SeriesInstanceUID string `json:"series"`
	StudyInstanceUID  string `json:"study"`
	// Attrs are the series-level attributes (see SeriesLevelTags) of the
	// first instance received.
	Attrs        map[string]string `json:"attrs,omitempty"`
	Instances    int               `json:"instances"`
	Size         int64             `json:"size"`
	LastReceived time.Time         `json:"last_received"`
}

// Patient aggregates the studies of a patient (by PatientID).
type Patient struct {
	PatientID string `json:"patient"`
	// Attrs are the patient-level attributes of the first instance.
	Attrs   map[string]string `json:"attrs,omitempty"`
	Studies int               `json:"studies"`
	// CharacterSet is the Specific Character Set of the instance Attrs
	// come from ("" when unknown).
	CharacterSet string `json:"charset,omitempty"`
}

// StudyKey names a secondary index over studies (see Index.StudiesBy).
type StudyKey string

// The secondary indices over studies. Values are as in Study.Attrs, except
// StudyByPatientName whose values are the upper-cased component groups of
// the name (each of "Yamada^Tarou=山田^太郎" is indexed on its own).
const (
	StudyByPatientID   StudyKey = "pid"
	StudyByPatientName StudyKey = "pn"
	StudyByDate        StudyKey = "date" // StudyDate, YYYYMMDD
	StudyByAccession   StudyKey = "acc"
	StudyByModality    StudyKey = "mod" // each modality in the study
)

// ValueRange selects the values of a secondary index. With Exact, the value
// equals Value; otherwise it starts with Value and, when From or To are
// set, From <= value and value <= To (byte order; To is inclusive of the
// values it prefixes, so To "20261231" includes "20261231").
type ValueRange struct {
	Value    string
	Exact    bool
	From, To string
}

// Stats counts the rows of an index.
type Stats struct {
	Patients  int64 `json:"patients"`
	Studies   int64 `json:"studies"`
	Series    int64 `json:"series"`
	Instances int64 `json:"instances"`
	Bytes     int64 `json:"bytes"`
}

// Index is the catalogue of stored instances. Writes are not synced: the
// journal is the write-ahead log and the index records the last journal
// sequence applied (see the package comment).
type Index interface {
	// PutInstance upserts an instance and the derived patient, study and
	// series rows and counts, and records journalSeq as applied in the same
	// transaction. It is idempotent: putting the same instance again does not
	// change counts. Putting an instance whose study/series/patient changed
	// moves it. journalSeq 0 leaves the applied sequence unchanged; the
	// applied sequence never decreases.
	PutInstance(ctx context.Context, inst *Instance, journalSeq uint64) error
	// GetInstance returns an instance; ErrNotFound if missing.
	GetInstance(ctx context.Context, sopInstanceUID string) (*Instance, error)
	// DeleteInstance removes an instance and fixes the counts (removing
	// series, studies and patients left empty). It records journalSeq even
	// when the instance is missing, and then returns ErrNotFound (so replay
	// can ignore it).
	DeleteInstance(ctx context.Context, sopInstanceUID string, journalSeq uint64) error
	// GetStudy, GetSeries and GetPatient return ErrNotFound if missing.
	GetStudy(ctx context.Context, studyInstanceUID string) (*Study, error)
	GetSeries(ctx context.Context, seriesInstanceUID string) (*Series, error)
	GetPatient(ctx context.Context, patientID string) (*Patient, error)
	// StudyInstances calls fn for every instance of a study, ordered by
	// series UID then SOP instance UID. No transaction is held while fn
	// runs (fn may call the index). An error from fn stops and is returned.
	// An unknown study yields no call and no error.
	StudyInstances(ctx context.Context, studyInstanceUID string, fn func(*Instance) error) error
	// SeriesInstances calls fn for every instance of a series, ordered by
	// SOP instance UID (same rules as StudyInstances).
	SeriesInstances(ctx context.Context, seriesInstanceUID string, fn func(*Instance) error) error
	// Studies calls fn for every study, ordered by study UID.
	Studies(ctx context.Context, fn func(*Study) error) error
	// StudiesBy calls fn, in index order, once for every study whose value
	// of the secondary index key is in r (a study is reported once even if
	// several of its values match). Studies listed by an index built before
	// the index existed are found too (the index is built on first use).
	StudiesBy(ctx context.Context, key StudyKey, r ValueRange, fn func(*Study) error) error
	// StudySeries calls fn for every series of a study, ordered by series
	// UID; an unknown study yields no call.
	StudySeries(ctx context.Context, studyInstanceUID string, fn func(*Series) error) error
	// Patients calls fn for every patient, ordered by Patient ID.
	Patients(ctx context.Context, fn func(*Patient) error) error
	// AppliedSeq returns the last journal sequence applied.
	AppliedSeq(ctx context.Context) (uint64, error)
	// Stats returns the row counts and total bytes.
	Stats(ctx context.Context) (Stats, error)
	// Close releases the index.
	Close() error
}
