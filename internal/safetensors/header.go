package safetensors

import "io"

// Tensor describes one tensor in a safetensors file.
type Tensor struct {
	Name  string
	DType DType
	// Shape is the tensor's dimensions; empty for a scalar.
	Shape []int64
	// Begin and End delimit the tensor's bytes, relative to the start of the
	// data region (Header.DataOffset), End exclusive.
	Begin, End int64
}

// NumElements returns the number of elements in the tensor (1 for a scalar),
// or -1 if the shape is invalid. Tensors returned by ParseHeader always have a
// valid shape.
func (t Tensor) NumElements() int64 {
	n, err := numElements(t.Shape)
	if err != nil {
		return -1
	}
	return n
}

// ByteSize returns the number of data bytes the tensor occupies.
func (t Tensor) ByteSize() int64 { return t.End - t.Begin }

// Header is the parsed, validated header of a safetensors file.
type Header struct {
	// Tensors lists every tensor sorted by Begin (ties broken by End, then
	// Name, so the order is deterministic).
	Tensors []Tensor
	// Metadata is the optional free-form "__metadata__" map; nil if absent.
	Metadata map[string]string
	// DataOffset is the absolute file offset of the data region, 8+N.
	DataOffset int64
	// FileSize is the file size the header was validated against.
	FileSize int64

	index map[string]int // name -> position in Tensors
}

// Lookup returns the tensor with the given name.
func (h *Header) Lookup(name string) (Tensor, bool) {
	if h.index != nil {
		i, ok := h.index[name]
		if !ok {
			return Tensor{}, false
		}
		return h.Tensors[i], true
	}
	// A Header built by hand has no index; a scan keeps Lookup correct.
	for _, t := range h.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return Tensor{}, false
}

// Section returns a reader over exactly t's bytes in r, which must be the
// file the header was parsed from.
func (h *Header) Section(r io.ReaderAt, t Tensor) *io.SectionReader {
	return io.NewSectionReader(r, h.DataOffset+t.Begin, t.ByteSize())
}

// buildIndex (re)creates the name index after Tensors has been sorted.
func (h *Header) buildIndex() {
	h.index = make(map[string]int, len(h.Tensors))
	for i, t := range h.Tensors {
		h.index[t.Name] = i
	}
}
