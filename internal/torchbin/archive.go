package torchbin

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"math/bits"
	"os"
	"strings"

	"github.com/nextchat/nextchat/internal/safetensors"
)

// Tensor is one entry of the state dict: where its bytes lie in the archive file.
type Tensor struct {
	Name   string
	DType  safetensors.DType
	Shape  []int64
	Offset int64 // of the first byte, from the start of the archive file
	Size   int64 // bytes
}

// NumElements is the product of the shape (1 for a scalar).
func (t Tensor) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Archive is an open torch.save checkpoint. Its tensors are read through Section.
type Archive struct {
	Path    string
	Tensors []Tensor // in the pickle's order
	file    *os.File
}

// Open reads a checkpoint's structure: the zip directory, data.pkl and every storage's placement. It reads
// no tensor data.
func Open(path string) (*Archive, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	tensors, err := Read(f, st.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Archive{Path: path, Tensors: tensors, file: f}, nil
}

// Section returns a reader over one tensor's bytes (little-endian, row-major).
func (a *Archive) Section(t Tensor) *io.SectionReader {
	return io.NewSectionReader(a.file, t.Offset, t.Size)
}

// Close closes the file.
func (a *Archive) Close() error { return a.file.Close() }

// Read parses a torch.save archive of size bytes and returns its tensors, each checked against the storage
// entry that holds it.
func Read(r io.ReaderAt, size int64) ([]Tensor, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, notZip(r, err)
	}
	entries := map[string]*zip.File{}
	var prefixes []string
	for _, f := range zr.File {
		if entries[f.Name] != nil {
			return nil, fmt.Errorf("%w: zip entry %.200q appears twice", ErrMalformed, f.Name)
		}
		entries[f.Name] = f
		if dir, ok := strings.CutSuffix(f.Name, "/data.pkl"); ok && dir != "" && !strings.Contains(dir, "/") {
			prefixes = append(prefixes, dir)
		}
	}
	if len(prefixes) != 1 {
		return nil, fmt.Errorf("%w: %d top-level data.pkl entries, want 1", ErrNotArchive, len(prefixes))
	}
	prefix := prefixes[0]
	if err := checkByteOrder(entries[prefix+"/byteorder"]); err != nil {
		return nil, err
	}
	pkl, err := readPickle(entries[prefix+"/data.pkl"])
	if err != nil {
		return nil, err
	}
	root, storages, err := unpickle(pkl)
	if err != nil {
		return nil, err
	}
	placed := map[string]int64{}
	for key, s := range storages {
		off, err := placeStorage(entries[prefix+"/data/"+key], s, size)
		if err != nil {
			return nil, err
		}
		placed[key] = off
	}
	return stateDict(root, placed)
}

// notZip says what a file that is not a readable zip looks like: a damaged zip (an incomplete download), a
// pre-1.6 torch.save (a bare pickle), or something else.
func notZip(r io.ReaderAt, err error) error {
	magic := make([]byte, 4)
	n, _ := r.ReadAt(magic, 0)
	switch {
	case n == 4 && string(magic) == "PK\x03\x04":
		return fmt.Errorf("%w: the zip archive is truncated or damaged (an incomplete download?): %v", ErrMalformed, err)
	case n >= 1 && magic[0] == opProto:
		return fmt.Errorf("%w: a bare pickle, as torch.save wrote before 1.6: re-save it with a current torch", ErrNotArchive)
	}
	return fmt.Errorf("%w: %v", ErrNotArchive, err)
}

func checkByteOrder(f *zip.File) error {
	if f == nil {
		return nil // written before torch 2.1: always little-endian
	}
	b, err := readEntry(f, 16)
	if err != nil {
		return err
	}
	if order := string(bytes.TrimSpace(b)); order != "little" {
		return fmt.Errorf("%w: byte order %.16q", ErrUnsupported, order)
	}
	return nil
}

func readPickle(f *zip.File) ([]byte, error) {
	if f.UncompressedSize64 > MaxPickleBytes {
		return nil, fmt.Errorf("%w: data.pkl declares %d bytes, over the %d-byte bound", ErrLimit, f.UncompressedSize64, MaxPickleBytes)
	}
	return readEntry(f, MaxPickleBytes)
}

// readEntry reads a small entry whole (zip checks its CRC), refusing more than limit bytes.
func readEntry(f *zip.File, limit int64) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, f.Name, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, f.Name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: %s holds more than %d bytes", ErrLimit, f.Name, limit)
	}
	return b, nil
}

// placeStorage finds where a storage's bytes start in the file. torch stores them uncompressed, so a tensor
// is a plain byte range; the entry must hold exactly numel elements and lie inside the file.
func placeStorage(f *zip.File, s *storage, fileSize int64) (int64, error) {
	if f == nil {
		return 0, fmt.Errorf("%w: storage %q has no entry data/%s", ErrMalformed, s.key, s.key)
	}
	if f.Method != zip.Store || f.CompressedSize64 != f.UncompressedSize64 {
		return 0, fmt.Errorf("%w: storage entry %s is compressed (method %d); torch writes them stored", ErrUnsupported, f.Name, f.Method)
	}
	if f.Flags&0x1 != 0 {
		return 0, fmt.Errorf("%w: storage entry %s is encrypted", ErrUnsupported, f.Name)
	}
	want, ok := mulNonNeg(s.numel, int64(s.dtype.Size()))
	if !ok {
		return 0, fmt.Errorf("%w: storage %q declares %d %s elements", ErrLimit, s.key, s.numel, s.dtype)
	}
	if f.UncompressedSize64 != uint64(want) {
		return 0, fmt.Errorf("%w: storage %q declares %d %s elements (%d bytes) but its entry holds %d bytes",
			ErrMalformed, s.key, s.numel, s.dtype, want, f.UncompressedSize64)
	}
	off, err := f.DataOffset()
	if err != nil {
		return 0, fmt.Errorf("%w: storage entry %s: %v", ErrMalformed, f.Name, err)
	}
	if off < 0 || off > fileSize || want > fileSize-off {
		return 0, fmt.Errorf("%w: storage entry %s (%d bytes at offset %d) runs past the end of the %d-byte file",
			ErrMalformed, f.Name, want, off, fileSize)
	}
	return off, nil
}

// stateDict checks that the pickle's value is a dict of name → tensor and places each tensor in the file.
func stateDict(root any, placed map[string]int64) ([]Tensor, error) {
	d, ok := root.(*dict)
	if !ok {
		return nil, fmt.Errorf("%w: the pickle holds %s, not a state dict", ErrMalformed, describe(root))
	}
	seen := map[string]bool{}
	tensors := make([]Tensor, 0, len(d.entries))
	for _, e := range d.entries {
		name, ok := e.key.(string)
		if !ok {
			return nil, fmt.Errorf("%w: state dict key is %s, want a string", ErrMalformed, describe(e.key))
		}
		if seen[name] {
			return nil, fmt.Errorf("%w: tensor %q appears twice", ErrMalformed, name)
		}
		seen[name] = true
		ref, ok := e.value.(*tensorRef)
		if !ok {
			return nil, fmt.Errorf("%w: state dict entry %q is %s, not a tensor", ErrMalformed, name, describe(e.value))
		}
		t, err := place(name, ref, placed[ref.storage.key])
		if err != nil {
			return nil, err
		}
		tensors = append(tensors, t)
	}
	return tensors, nil
}

// place turns a view into a byte range: it must be contiguous (row-major) and inside its storage.
func place(name string, ref *tensorRef, storageOffset int64) (Tensor, error) {
	numel := int64(1)
	for _, d := range ref.shape {
		var ok bool
		if numel, ok = mulNonNeg(numel, d); !ok {
			return Tensor{}, fmt.Errorf("%w: tensor %q shape %v overflows", ErrLimit, name, ref.shape)
		}
	}
	if numel > 0 && !contiguous(ref.shape, ref.stride) {
		return Tensor{}, fmt.Errorf("%w: tensor %q (shape %v, stride %v) is not contiguous; re-save it with .contiguous()",
			ErrUnsupported, name, ref.shape, ref.stride)
	}
	s := ref.storage
	if end, ok := addNonNeg(ref.offset, numel); !ok || end > s.numel {
		return Tensor{}, fmt.Errorf("%w: tensor %q reads elements [%d, %d+%d) of storage %q, which has %d",
			ErrMalformed, name, ref.offset, ref.offset, numel, s.key, s.numel)
	}
	elem := int64(s.dtype.Size())
	return Tensor{Name: name, DType: s.dtype, Shape: ref.shape,
		Offset: storageOffset + ref.offset*elem, Size: numel * elem}, nil
}

// contiguous reports whether stride is the row-major stride of shape; a dimension of size 1 may have any
// stride (torch leaves them arbitrary).
func contiguous(shape, stride []int64) bool {
	want := int64(1)
	for i := len(shape) - 1; i >= 0; i-- {
		if shape[i] != 1 && stride[i] != want {
			return false
		}
		want *= shape[i]
	}
	return true
}

func mulNonNeg(a, b int64) (int64, bool) {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if a < 0 || b < 0 || hi != 0 || lo > 1<<62 {
		return 0, false
	}
	return int64(lo), true
}

func addNonNeg(a, b int64) (int64, bool) {
	s := a + b
	if a < 0 || b < 0 || s < a || s > 1<<62 {
		return 0, false
	}
	return s, true
}
