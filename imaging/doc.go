// Package imaging gives access to the frames of stored DICOM instances and
// renders them to 8-bit images, for the DICOMweb WADO-RS /frames, /rendered
// and /thumbnail resources (PS3.18).
//
// [Open] reads a Part 10 file's header up to the Pixel Data element, never
// the pixels, and locates the frames; [Image.Frame] then reads one frame
// through a section of the underlying io.ReaderAt, so serving or rendering
// one frame of a multi-frame instance does not read the others.
//
// Relais does not embed image codecs: frames of compressed transfer
// syntaxes are served as stored, and rendering them fails with an error
// wrapping [ErrCompressed], except for JPEG Baseline (decoded with Go's
// image/jpeg) and RLE Lossless (decoded here, PS3.5 Annex G).
//
// The file is never trusted: inconsistent Image Pixel module values, lying
// lengths, frame counts beyond the data and images over [MaxPixels] give
// errors wrapping [ErrInvalid], [ErrTooLarge] or [ErrUnsupported], never a
// panic or an allocation out of proportion with the data.
package imaging
