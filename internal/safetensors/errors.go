package safetensors

import "errors"

// Sentinel errors. Every error returned by this package wraps at least one of
// them so callers can classify failures with errors.Is without parsing text.
var (
	// ErrTruncated means the file ends before something it declares: the
	// length prefix, the header, or a tensor's data.
	ErrTruncated = errors.New("safetensors: file truncated")
	// ErrBadHeader means the header is not a well-formed safetensors header:
	// bad length, malformed or non-UTF-8 JSON, wrong types, unexpected or
	// duplicate keys, or an impossible shape.
	ErrBadHeader = errors.New("safetensors: invalid header")
	// ErrUnknownDType means a tensor uses a dtype this package does not know
	// the element size of.
	ErrUnknownDType = errors.New("safetensors: unknown dtype")
	// ErrBadOffsets means a tensor's data_offsets are inconsistent with its
	// shape and dtype or fall outside the data region.
	ErrBadOffsets = errors.New("safetensors: invalid data_offsets")
	// ErrOverlap means two tensors claim some of the same bytes.
	ErrOverlap = errors.New("safetensors: overlapping tensors")

	// ErrWriteOrder means a Writer call names a tensor other than the next
	// one declared, or comes after Close.
	ErrWriteOrder = errors.New("safetensors: tensor written out of order")
	// ErrSizeMismatch means the bytes supplied for a tensor differ from its
	// declared size.
	ErrSizeMismatch = errors.New("safetensors: tensor data size mismatch")
	// ErrIncomplete means Writer.Close was called before every declared
	// tensor was written.
	ErrIncomplete = errors.New("safetensors: not all tensors written")
)
