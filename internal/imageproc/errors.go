package imageproc

import "errors"

// Sentinel errors. Every error from Decode wraps one of them, so callers can
// classify failures with errors.Is (and map them to user-facing messages)
// without parsing text.
var (
	// ErrFileTooLarge means the encoded file exceeds Limits.MaxBytes.
	ErrFileTooLarge = errors.New("imageproc: image file too large")
	// ErrTooManyPixels means the header declares more pixels than
	// Limits.MaxPixels (a decompression bomb, or just too big); it is reported
	// before any pixel data is decoded.
	ErrTooManyPixels = errors.New("imageproc: image has too many pixels")
	// ErrEmptyImage means an image (or a requested region of one) has zero
	// width or height.
	ErrEmptyImage = errors.New("imageproc: empty image")
	// ErrUnknownFormat means the bytes are not JPEG, PNG, GIF, WebP or BMP.
	ErrUnknownFormat = errors.New("imageproc: unknown image format")
	// ErrCorrupt means the decoder rejected the file: truncated, malformed or
	// using a feature the decoder does not support.
	ErrCorrupt = errors.New("imageproc: corrupt or unsupported image")
)
