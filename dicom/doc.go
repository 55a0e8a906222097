// Package dicom owns DICOM datasets as bytes: element tags and their data
// dictionary, value representations, transfer syntaxes and storage SOP
// classes, a bounded streaming element scanner (Scan), the Part 10 file meta
// information (ReadFileMeta, WriteFileMeta), transcoding between the
// uncompressed transfer syntaxes (Transcode) and a minimal Encoder for small
// datasets. Text values are decoded through the dicom/charset subpackage.
//
// The package knows nothing of networks or storage: it reads from an
// io.Reader and writes to an io.Writer. Every reader in it treats its input
// as untrusted: declared lengths are checked against Limits before anything
// is allocated, and values that are not extracted are streamed through a
// fixed buffer.
package dicom
