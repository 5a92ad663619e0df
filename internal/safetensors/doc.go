// Package safetensors reads and writes the safetensors checkpoint format.
//
// A safetensors file is an 8-byte little-endian header length N, then N bytes
// of UTF-8 JSON describing every tensor (dtype, shape and byte range), then the
// raw tensor bytes. Byte ranges in the header are relative to the start of that
// data region, which begins at byte 8+N.
//
// Checkpoints are downloaded from untrusted sources, so ParseHeader treats
// every byte as hostile: allocations are bounded by the header-size cap and by
// the real file size, all size arithmetic is overflow-checked, and every
// problem comes back as an error wrapping one of the sentinel errors below
// (ErrTruncated, ErrBadHeader, ...) rather than as a panic. Callers pick the
// failure class with errors.Is; the message names the offending tensor.
//
// Writer streams a file out: the header is produced up front from the declared
// tensors, then each tensor's bytes follow in declaration order, so a
// checkpoint larger than memory can be converted one tensor at a time. Output
// is byte-for-byte deterministic and readable by the reference Python/Rust
// implementation.
package safetensors
