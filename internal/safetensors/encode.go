package safetensors

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// DataAlign is the alignment of the data region: a cache line. The core
// mmaps the file and multiplies matrices in place, and a matrix whose rows
// start 64-byte aligned keeps each 64-byte load (an AMX tile row, an AVX-512
// vector) in one line and not two (docs/BENCHMARKS.md "Aligned weights").
// shards.Plan puts the tensors whose sizes are multiples of it first, so they
// all stay aligned. The reference implementation pads to 8 and reads any
// padding.
const DataAlign = 64

// TensorSpec declares a tensor to be written: everything but its bytes.
type TensorSpec struct {
	Name  string
	DType DType
	Shape []int64
}

// layout validates specs and assigns each a contiguous byte range in
// declaration order. Contiguity matters: the reference implementation rejects
// files with gaps between tensors, so the writer never leaves any.
func layout(specs []TensorSpec) ([]Tensor, error) {
	tensors := make([]Tensor, len(specs))
	seen := make(map[string]struct{}, len(specs))
	var offset int64
	for i, s := range specs {
		if err := checkSpec(s); err != nil {
			return nil, err
		}
		if _, dup := seen[s.Name]; dup {
			return nil, newTensorError(s.Name, "declared twice", ErrBadHeader)
		}
		seen[s.Name] = struct{}{}
		size, err := byteSize(s.DType, s.Shape)
		if err != nil {
			return nil, newTensorError(s.Name, err.Error(), ErrBadHeader)
		}
		if offset > math.MaxInt64-size {
			return nil, newTensorError(s.Name, "total data size overflows int64", ErrBadHeader)
		}
		tensors[i] = Tensor{
			Name:  s.Name,
			DType: s.DType,
			Shape: slices.Clone(s.Shape), // the caller may reuse its slice
			Begin: offset,
			End:   offset + size,
		}
		offset += size
	}
	return tensors, nil
}

// checkSpec rejects specs that would produce a header ParseHeader refuses or
// that would not survive a JSON round trip unchanged.
func checkSpec(s TensorSpec) error {
	switch {
	case s.Name == metadataKey:
		return newTensorError(s.Name, "name is reserved for metadata", ErrBadHeader)
	case !utf8.ValidString(s.Name):
		// encoding/json would rewrite the bad bytes to U+FFFD, so the file
		// would name a different tensor than the caller asked for.
		return newTensorError(s.Name, "name is not valid UTF-8", ErrBadHeader)
	case len(s.Shape) > MaxRank:
		return newTensorError(s.Name, fmt.Sprintf("rank %d exceeds %d", len(s.Shape), MaxRank), ErrBadHeader)
	case !s.DType.Known():
		return newTensorError(s.Name, fmt.Sprintf("dtype %s", quoteBounded(string(s.DType))), ErrUnknownDType)
	}
	return nil
}

// checkMetadata applies the same UTF-8 rule as checkSpec to metadata.
func checkMetadata(md map[string]string) error {
	for k, v := range md {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("%w: metadata key %s: key or value is not valid UTF-8", ErrBadHeader, quoteBounded(k))
		}
	}
	return nil
}

// encodeHeader renders the header JSON by hand so the output is a pure
// function of its input: "__metadata__" first with keys sorted, then tensors
// in declaration order, each with its fields in a fixed order. It then pads
// with spaces so that 8+len is a multiple of DataAlign.
func encodeHeader(tensors []Tensor, metadata map[string]string) []byte {
	buf := []byte{'{'}
	first := true
	sep := func() {
		if !first {
			buf = append(buf, ',')
		}
		first = false
	}
	if len(metadata) > 0 {
		sep()
		buf = appendJSONString(buf, metadataKey)
		buf = append(buf, ":{"...)
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendJSONString(buf, k)
			buf = append(buf, ':')
			buf = appendJSONString(buf, metadata[k])
		}
		buf = append(buf, '}')
	}
	for _, t := range tensors {
		sep()
		buf = appendTensorJSON(buf, t)
	}
	buf = append(buf, '}')
	for (lengthPrefixSize+len(buf))%DataAlign != 0 {
		buf = append(buf, ' ')
	}
	return buf
}

// appendTensorJSON appends `"name":{"dtype":..,"shape":[..],"data_offsets":[b,e]}`.
func appendTensorJSON(buf []byte, t Tensor) []byte {
	buf = appendJSONString(buf, t.Name)
	buf = append(buf, `:{"dtype":`...)
	buf = appendJSONString(buf, string(t.DType))
	buf = append(buf, `,"shape":[`...)
	for i, d := range t.Shape {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendInt(buf, d, 10)
	}
	buf = append(buf, `],"data_offsets":[`...)
	buf = strconv.AppendInt(buf, t.Begin, 10)
	buf = append(buf, ',')
	buf = strconv.AppendInt(buf, t.End, 10)
	return append(buf, "]}"...)
}

// appendJSONString appends s as a JSON string literal. json.Marshal is
// deterministic for strings and handles all escaping; it cannot fail on one.
func appendJSONString(buf []byte, s string) []byte {
	b, err := json.Marshal(s)
	if err != nil {
		panic("safetensors: json.Marshal of a string failed: " + err.Error())
	}
	return append(buf, b...)
}
