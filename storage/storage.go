// Package storage defines where Relais keeps DICOM instances: blob stores
// ([Blobs]: the Part 10 bytes, one object per instance) and the index
// ([Index]: patients, studies, series, instances and their attributes).
//
// # Durability design
//
// Every received instance goes through one ingest pipeline that streams the
// bytes into a blob while scanning the header, then makes blob and index
// durable and only then acknowledges. On the target disk a fdatasync of a new
// 525 KB file costs ~3 ms and a fdatasync of an append to a small file
// ~0.25 ms, so the number and kind of syncs per instance decides throughput:
//
//   - blobs are written directly at their final key (no temp file + rename,
//     which would cost a directory sync per instance); the fs backend starts
//     writeback while the data streams in (sync_file_range) so that Commit's
//     fdatasync has little left to flush. A blob that exists but is not
//     referenced by the index was never acknowledged; [Blobs.Walk] lets a GC
//     find such orphans;
//   - the index is not synced at all: the journal (package journal) is its
//     write-ahead log. The ingest appends an "instance.stored" event carrying
//     the full [Instance] and waits for it (group commit, concurrently with the
//     blob Commit); the index is then written without sync and records the
//     journal sequence it has applied ([Index.AppliedSeq]). At start-up the
//     ingest replays journal events after AppliedSeq ([Index.PutInstance] is
//     idempotent), checking that each blob exists with the recorded size.
//
// Subpackages: fsblob and s3blob (Blobs backends), badgerindex and memindex
// (Index implementations), blobtest and indextest (conformance suites).
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
)

// ErrNotFound is returned when a blob, instance, series, study or patient
// does not exist.
var ErrNotFound = errors.New("storage: not found")

// ErrExists is returned by Blobs.Create when the key already exists.
var ErrExists = errors.New("storage: already exists")

// ErrInvalidKey is returned for a blob key that is not a clean relative
// slash-separated path.
var ErrInvalidKey = errors.New("storage: invalid key")

// Blobs stores immutable byte objects under slash-separated keys such as
// "ab/cd/<uid>.<suffix>.dcm".
type Blobs interface {
	// Create starts writing a new blob. It fails with ErrExists if the key
	// already exists (a concurrent uncommitted writer of the same key may or
	// may not be detected, depending on the backend).
	Create(ctx context.Context, key string) (BlobWriter, error)
	// Open opens a committed blob for reading; ErrNotFound if missing.
	Open(ctx context.Context, key string) (Blob, error)
	// Stat returns the size of a blob; ErrNotFound if missing.
	Stat(ctx context.Context, key string) (int64, error)
	// Delete removes a blob; ErrNotFound if missing.
	Delete(ctx context.Context, key string) error
	// Walk calls fn for every blob (including, for the fs backend, partial
	// blobs left by a crash: Walk is meant for the GC of orphans, i.e. blobs
	// the index does not reference). Order is lexical by key. An error from
	// fn stops the walk and is returned.
	Walk(ctx context.Context, fn func(key string, size int64) error) error
}

// BlobWriter writes one blob.
type BlobWriter interface {
	io.Writer
	// Commit makes the blob durable and visible; when it returns nil the
	// data survives a crash. After a failed Commit, call Abort.
	Commit(ctx context.Context) error
	// Abort discards the blob and its partial data. It is a no-op after a
	// successful Commit, so `defer w.Abort()` is the idiom.
	Abort() error
}

// Blob is a committed blob open for reading.
type Blob interface {
	io.Reader
	io.ReaderAt
	io.Seeker
	io.Closer
	// Size is the blob size in bytes.
	Size() int64
}

// CheckKey validates a blob key: non-empty, relative, slash-separated, with
// no empty, "." or ".." elements and no backslash or NUL.
func CheckKey(key string) error {
	if key == "" || key == "." || !fs.ValidPath(key) || strings.ContainsAny(key, "\\\x00") {
		return fmt.Errorf("%w: %q", ErrInvalidKey, key)
	}
	return nil
}

// UniqueCreator is an optional ability of a Blobs: create a blob under a
// fresh key the store chooses. A store may prepare such blobs ahead of time,
// off the caller's critical path (creating a file costs an inode allocation
// that, on a busy ext4 directory, takes as long as receiving the instance).
type UniqueCreator interface {
	CreateUnique(ctx context.Context) (BlobWriter, string, error)
}
