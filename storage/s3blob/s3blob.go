// Package s3blob is the S3 implementation of storage.Blobs (AWS S3, MinIO,
// versitygw, ... through minio-go v7).
//
// An object is durable in S3 once its PUT (or CompleteMultipartUpload)
// returns, so Commit returns when the upload has completed.
//
// Writes are buffered in memory up to PartSize (default 16 MiB, minimum
// 5 MiB, the S3 minimum part size; buffers are pooled):
//
//   - a blob smaller than PartSize (the common case: a 525 KB instance) is
//     sent by Commit as ONE PutObject with a known length: one request, no
//     multipart bookkeeping;
//   - a larger blob is streamed as a multipart upload: each full part is
//     uploaded from Write (the writer blocks meanwhile, which bounds memory
//     to one part per writer) and Commit uploads the last part and completes
//     the upload. Abort aborts the multipart upload.
//
// (This replaces the first design, an io.Pipe into PutObject with unknown
// size: with an unknown size minio-go always does a 3-request multipart
// upload and allocates a fresh part-size buffer per object, i.e. 16 MiB of
// garbage per 525 KB instance.)
//
// Existing keys: Create checks with a HEAD (StatObject) and fails with
// storage.ErrExists; the upload itself is also conditional (If-None-Match:
// *) so that a server supporting conditional writes rejects a concurrent
// creation at Commit, also with storage.ErrExists.
package s3blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/relais-health/relais/storage"
)

// Config configures the S3 store.
type Config struct {
	// Endpoint is host[:port] without scheme, e.g. "s3.eu-west-3.amazonaws.com".
	Endpoint string
	Bucket   string
	Region   string
	// AccessKey and SecretKey are static credentials.
	AccessKey, SecretKey string
	// Secure selects HTTPS.
	Secure bool
	// Prefix is prepended to every key; a "/" is added if missing.
	Prefix string
	// PartSize is the multipart part size and the in-memory buffer per
	// writer (default 16 MiB, minimum 5 MiB).
	PartSize uint64
}

const (
	// DefaultPartSize is the default Config.PartSize.
	DefaultPartSize = 16 << 20
	// MinPartSize is the smallest Config.PartSize (the S3 minimum).
	MinPartSize = 5 << 20
)

// Store is a storage.Blobs in an S3 bucket. It is safe for concurrent use.
type Store struct {
	cfg    Config
	client *minio.Client
	core   minio.Core
	prefix string
	pool   sync.Pool // *[]byte of cap PartSize
}

var _ storage.Blobs = (*Store)(nil)

// New connects to S3 and creates the bucket if it does not exist.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("s3blob: Endpoint and Bucket are required")
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < MinPartSize {
		return nil, fmt.Errorf("s3blob: PartSize %d is below the S3 minimum of %d", cfg.PartSize, MinPartSize)
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.Secure,
		Region: cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("s3blob: client: %w", err)
	}
	s := &Store{cfg: cfg, client: client, core: minio.Core{Client: client}, prefix: cfg.Prefix}
	if s.prefix != "" && !strings.HasSuffix(s.prefix, "/") {
		s.prefix += "/"
	}
	size := int(cfg.PartSize)
	s.pool.New = func() any { b := make([]byte, 0, size); return &b }

	ok, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("s3blob: bucket %s: %w", cfg.Bucket, err)
	}
	if !ok {
		err := client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region})
		if err != nil {
			code := minio.ToErrorResponse(err).Code
			if code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
				return nil, fmt.Errorf("s3blob: create bucket %s: %w", cfg.Bucket, err)
			}
		}
	}
	return s, nil
}

// Client returns the underlying minio client.
func (s *Store) Client() *minio.Client { return s.client }

func (s *Store) object(key string) string { return s.prefix + key }

func isNotFound(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.Code == "NoSuchKey" || r.Code == "NotFound" || r.StatusCode == http.StatusNotFound
}

func isPreconditionFailed(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.Code == "PreconditionFailed" || r.StatusCode == http.StatusPreconditionFailed
}

func wrap(op, key string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("s3blob: %s %s: %w", op, key, storage.ErrNotFound)
	}
	return fmt.Errorf("s3blob: %s %s: %w", op, key, err)
}

// Create starts a new blob; ErrExists if the key exists.
func (s *Store) Create(ctx context.Context, key string) (storage.BlobWriter, error) {
	if err := storage.CheckKey(key); err != nil {
		return nil, err
	}
	_, err := s.client.StatObject(ctx, s.cfg.Bucket, s.object(key), minio.StatObjectOptions{})
	if err == nil {
		return nil, fmt.Errorf("s3blob: create %s: %w", key, storage.ErrExists)
	}
	if !isNotFound(err) {
		return nil, fmt.Errorf("s3blob: create %s: %w", key, err)
	}
	bp := s.pool.Get().(*[]byte)
	return &writer{s: s, key: key, ctx: ctx, bufp: bp, buf: (*bp)[:0]}, nil
}

// writer implements storage.BlobWriter.
type writer struct {
	s    *Store
	key  string
	ctx  context.Context // Create's context, for part uploads from Write
	bufp *[]byte
	buf  []byte

	uploadID string
	parts    []minio.CompletePart
	err      error
	done     bool // committed or aborted
	commited bool
}

func (w *writer) putOpts() minio.PutObjectOptions {
	o := minio.PutObjectOptions{ContentType: "application/dicom", PartSize: w.s.cfg.PartSize}
	o.SetMatchETagExcept("*") // If-None-Match: * (create only)
	return o
}

func (w *writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, errors.New("s3blob: write after commit/abort")
	}
	n := len(p)
	for len(p) > 0 {
		room := cap(w.buf) - len(w.buf)
		k := min(room, len(p))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == cap(w.buf) && len(p) > 0 {
			// A full part and more data: upload it. (A full buffer with no
			// more data may be the whole blob: keep it for a single PUT.)
			if err := w.uploadPart(w.ctx); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

func (w *writer) uploadPart(ctx context.Context) error {
	obj := w.s.object(w.key)
	if w.uploadID == "" {
		id, err := w.s.core.NewMultipartUpload(ctx, w.s.cfg.Bucket, obj, w.putOpts())
		if err != nil {
			w.err = fmt.Errorf("s3blob: start multipart %s: %w", w.key, err)
			return w.err
		}
		w.uploadID = id
	}
	num := len(w.parts) + 1
	part, err := w.s.core.PutObjectPart(ctx, w.s.cfg.Bucket, obj, w.uploadID, num,
		bytes.NewReader(w.buf), int64(len(w.buf)), minio.PutObjectPartOptions{})
	if err != nil {
		w.err = fmt.Errorf("s3blob: upload part %d of %s: %w", num, w.key, err)
		return w.err
	}
	w.parts = append(w.parts, minio.CompletePart{
		PartNumber:     num,
		ETag:           part.ETag,
		ChecksumCRC32:  part.ChecksumCRC32,
		ChecksumCRC32C: part.ChecksumCRC32C,
		ChecksumSHA1:   part.ChecksumSHA1,
		ChecksumSHA256: part.ChecksumSHA256,
	})
	w.buf = w.buf[:0]
	return nil
}

// Commit uploads what remains and returns once the object is stored.
func (w *writer) Commit(ctx context.Context) error {
	if w.commited {
		return nil
	}
	if w.done {
		return errors.New("s3blob: commit after abort")
	}
	if w.err != nil {
		return w.err
	}
	obj := w.s.object(w.key)
	if w.uploadID == "" {
		_, err := w.s.core.PutObject(ctx, w.s.cfg.Bucket, obj, bytes.NewReader(w.buf), int64(len(w.buf)), "", "", w.putOpts())
		if err != nil {
			if isPreconditionFailed(err) {
				w.err = fmt.Errorf("s3blob: commit %s: %w", w.key, storage.ErrExists)
			} else {
				w.err = fmt.Errorf("s3blob: put %s: %w", w.key, err)
			}
			return w.err
		}
	} else {
		if len(w.buf) > 0 {
			if err := w.uploadPart(ctx); err != nil {
				return err
			}
		}
		sort.Slice(w.parts, func(a, b int) bool { return w.parts[a].PartNumber < w.parts[b].PartNumber })
		_, err := w.s.core.CompleteMultipartUpload(ctx, w.s.cfg.Bucket, obj, w.uploadID, w.parts, w.putOpts())
		if err != nil {
			if isPreconditionFailed(err) {
				w.err = fmt.Errorf("s3blob: commit %s: %w", w.key, storage.ErrExists)
			} else {
				w.err = fmt.Errorf("s3blob: complete multipart %s: %w", w.key, err)
			}
			return w.err
		}
		w.uploadID = ""
	}
	w.commited, w.done = true, true
	w.release()
	return nil
}

func (w *writer) release() {
	if w.bufp != nil {
		*w.bufp = w.buf[:0]
		w.s.pool.Put(w.bufp)
		w.bufp, w.buf = nil, nil
	}
}

// Abort discards the blob: aborts the multipart upload if one was started.
// A no-op after a successful Commit.
func (w *writer) Abort() error {
	if w.done {
		return nil
	}
	w.done = true
	w.release()
	if w.uploadID == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.s.core.AbortMultipartUpload(ctx, w.s.cfg.Bucket, w.s.object(w.key), w.uploadID); err != nil && !isNotFound(err) {
		return fmt.Errorf("s3blob: abort %s: %w", w.key, err)
	}
	w.uploadID = ""
	return nil
}

// blob implements storage.Blob over a minio Object.
type blob struct {
	*minio.Object
	size int64
}

func (b *blob) Size() int64 { return b.size }

// Open opens a blob for reading (ranged GETs for ReadAt/Seek).
func (s *Store) Open(ctx context.Context, key string) (storage.Blob, error) {
	if err := storage.CheckKey(key); err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.cfg.Bucket, s.object(key), minio.GetObjectOptions{})
	if err != nil {
		return nil, wrap("open", key, err)
	}
	info, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, wrap("open", key, err)
	}
	return &blob{Object: obj, size: info.Size}, nil
}

// Stat returns the size of a blob.
func (s *Store) Stat(ctx context.Context, key string) (int64, error) {
	if err := storage.CheckKey(key); err != nil {
		return 0, err
	}
	info, err := s.client.StatObject(ctx, s.cfg.Bucket, s.object(key), minio.StatObjectOptions{})
	if err != nil {
		return 0, wrap("stat", key, err)
	}
	return info.Size, nil
}

// Delete removes a blob; ErrNotFound if missing (checked with a HEAD first,
// since S3 DELETE succeeds on missing keys).
func (s *Store) Delete(ctx context.Context, key string) error {
	if _, err := s.Stat(ctx, key); err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.cfg.Bucket, s.object(key), minio.RemoveObjectOptions{}); err != nil {
		return wrap("delete", key, err)
	}
	return nil
}

// Walk lists every object under the prefix, in lexical key order.
func (s *Store) Walk(ctx context.Context, fn func(key string, size int64) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine on early return
	for obj := range s.client.ListObjects(ctx, s.cfg.Bucket, minio.ListObjectsOptions{Prefix: s.prefix, Recursive: true}) {
		if obj.Err != nil {
			return fmt.Errorf("s3blob: walk: %w", obj.Err)
		}
		if strings.HasSuffix(obj.Key, "/") {
			continue // directory marker
		}
		if err := fn(strings.TrimPrefix(obj.Key, s.prefix), obj.Size); err != nil {
			return err
		}
	}
	return ctx.Err()
}
