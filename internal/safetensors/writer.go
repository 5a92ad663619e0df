package safetensors

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Writer streams a safetensors file. NewWriter writes the complete header at
// once (it depends only on the declared specs), after which each tensor's
// bytes must be supplied in declaration order, either whole with WriteTensor
// or incrementally through TensorWriter. A Writer is not safe for concurrent
// use.
//
// Misuse (wrong order, wrong size) is reported without writing anything, so
// the caller may correct it and carry on. An error from the underlying
// io.Writer is sticky: the output is then corrupt and every later call fails.
type Writer struct {
	w       io.Writer
	tensors []Tensor // declared tensors with their assigned offsets
	next    int      // index of the next tensor to start
	stream  *tensorStream
	err     error // sticky I/O error
	closed  bool
}

// NewWriter validates specs, lays the tensors out contiguously in declaration
// order and writes the header to w. A nil or empty metadata map writes no
// "__metadata__" entry.
//
// The data region starts 8-byte aligned, but tensors are packed without
// padding (the reference implementation rejects gaps), so each tensor is
// naturally aligned only if specs are declared in order of non-increasing
// element size, as the reference Python writer arranges.
func NewWriter(w io.Writer, specs []TensorSpec, metadata map[string]string) (*Writer, error) {
	tensors, err := layout(specs)
	if err != nil {
		return nil, err
	}
	if err := checkMetadata(metadata); err != nil {
		return nil, err
	}
	header := encodeHeader(tensors, metadata)
	if len(header) > MaxHeaderSize {
		return nil, fmt.Errorf("%w: header would be %d bytes, over the %d-byte limit",
			ErrBadHeader, len(header), MaxHeaderSize)
	}
	var prefix [lengthPrefixSize]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(len(header)))
	sw := &Writer{w: w, tensors: tensors}
	if err := sw.write(prefix[:]); err != nil {
		return nil, err
	}
	if err := sw.write(header); err != nil {
		return nil, err
	}
	return sw, nil
}

// WriteTensor writes the bytes of the next declared tensor, which must be
// called name; len(data) must equal its byte size.
func (w *Writer) WriteTensor(name string, data []byte) error {
	t, err := w.begin(name)
	if err != nil {
		return err
	}
	if int64(len(data)) != t.ByteSize() {
		return newTensorError(name, fmt.Sprintf("got %d bytes, want %d", len(data), t.ByteSize()), ErrSizeMismatch)
	}
	if err := w.write(data); err != nil {
		return err
	}
	w.next++
	return nil
}

// TensorWriter starts the next declared tensor, which must be called name,
// and returns a writer that accepts exactly its byte size. Writes beyond that
// size fail. Completion is checked by the next WriteTensor, TensorWriter or
// Close call, which fail with ErrSizeMismatch while bytes are missing.
func (w *Writer) TensorWriter(name string) (io.Writer, error) {
	t, err := w.begin(name)
	if err != nil {
		return nil, err
	}
	w.stream = &tensorStream{parent: w, name: name, remaining: t.ByteSize()}
	w.next++
	return w.stream, nil
}

// Close checks that every declared tensor was written in full. It does not
// close the underlying io.Writer, which the caller owns.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return nil
	}
	if err := w.finishStream(); err != nil {
		return err
	}
	if w.next < len(w.tensors) {
		return fmt.Errorf("%w: %d of %d tensors written, next is %s",
			ErrIncomplete, w.next, len(w.tensors), quoteBounded(w.tensors[w.next].Name))
	}
	w.closed = true
	return nil
}

// begin checks that the Writer can start another tensor and that name is the
// next one declared, returning its layout.
func (w *Writer) begin(name string) (Tensor, error) {
	switch {
	case w.err != nil:
		return Tensor{}, w.err
	case w.closed:
		return Tensor{}, fmt.Errorf("%w: tensor %s: writer is closed", ErrWriteOrder, quoteBounded(name))
	}
	if err := w.finishStream(); err != nil {
		return Tensor{}, err
	}
	if w.next >= len(w.tensors) {
		return Tensor{}, newTensorError(name, "all declared tensors are already written", ErrWriteOrder)
	}
	if want := w.tensors[w.next].Name; name != want {
		return Tensor{}, newTensorError(name, fmt.Sprintf("next declared tensor is %s", quoteBounded(want)), ErrWriteOrder)
	}
	return w.tensors[w.next], nil
}

// finishStream retires the open TensorWriter if it received all its bytes.
// An incomplete one stays open so the caller can still finish it.
func (w *Writer) finishStream() error {
	s := w.stream
	if s == nil {
		return nil
	}
	if s.remaining != 0 {
		return newTensorError(s.name, fmt.Sprintf("streamed tensor is missing %d bytes", s.remaining), ErrSizeMismatch)
	}
	w.stream = nil
	return nil
}

// write sends p to the underlying writer, recording any failure as sticky.
func (w *Writer) write(p []byte) error {
	n, err := w.w.Write(p)
	if err == nil && n != len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		w.err = fmt.Errorf("safetensors: write failed: %w", err)
		return w.err
	}
	return nil
}

// tensorStream is the io.Writer returned by TensorWriter.
type tensorStream struct {
	parent    *Writer
	name      string
	remaining int64
}

// Write forwards p to the file, refusing (without writing anything) data past
// the tensor's declared size or writes through a stream that is no longer the
// Writer's current one.
func (s *tensorStream) Write(p []byte) (int, error) {
	w := s.parent
	switch {
	case w.err != nil:
		return 0, w.err
	case w.stream != s:
		return 0, newTensorError(s.name, "write after the tensor was finished", ErrWriteOrder)
	case int64(len(p)) > s.remaining:
		return 0, newTensorError(s.name, fmt.Sprintf("write of %d bytes exceeds the %d remaining", len(p), s.remaining), ErrSizeMismatch)
	}
	if err := w.write(p); err != nil {
		return 0, err
	}
	s.remaining -= int64(len(p))
	return len(p), nil
}
