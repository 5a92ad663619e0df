package safetensors

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"unicode/utf8"
)

const (
	// lengthPrefixSize is the size of the little-endian u64 header length.
	lengthPrefixSize = 8
	// MaxHeaderSize caps the JSON header length. The header is read into
	// memory whole, so without a cap a forged length prefix could demand an
	// arbitrary allocation; 100 MiB is far above any real checkpoint's header.
	MaxHeaderSize = 100 << 20
	// MaxRank caps the number of dimensions of a tensor. PyTorch itself
	// cannot exceed 64, and the cap bounds the work a hostile shape can cause.
	MaxRank = 64
	// metadataKey is the reserved top-level key holding free-form metadata.
	metadataKey = "__metadata__"
)

// ReadHeaderFile opens path and parses its safetensors header, validating it
// against the file's actual size.
func ReadHeaderFile(path string) (*Header, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	h, err := ParseHeader(f, info.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return h, nil
}

// ParseHeader reads and validates the header of a safetensors file of
// fileSize bytes readable through r. fileSize must be the true size of the
// file: every tensor is checked to lie within it, so a caller that passes the
// real size can then read any returned tensor without further bounds checks.
//
// On success the tensors are known-dtype, well-shaped, sized consistently with
// their data_offsets, inside the data region and mutually non-overlapping.
// Gaps between tensors are accepted, as are bytes after the last tensor.
func ParseHeader(r io.ReaderAt, fileSize int64) (*Header, error) {
	n, err := readHeaderLen(r, fileSize)
	if err != nil {
		return nil, err
	}
	raw, err := readHeaderJSON(r, n)
	if err != nil {
		return nil, err
	}
	dataOffset := lengthPrefixSize + n
	h, err := decodeHeader(raw, fileSize-dataOffset)
	if err != nil {
		return nil, err
	}
	h.DataOffset = dataOffset
	h.FileSize = fileSize
	sortTensors(h.Tensors)
	if err := checkOverlap(h.Tensors); err != nil {
		return nil, err
	}
	h.buildIndex()
	return h, nil
}

// readHeaderLen reads the length prefix and checks it against the header cap
// and the file size before anything is allocated for the header.
func readHeaderLen(r io.ReaderAt, fileSize int64) (int64, error) {
	if fileSize < lengthPrefixSize {
		return 0, fmt.Errorf("%w: file is %d bytes, shorter than the %d-byte length prefix",
			ErrTruncated, fileSize, lengthPrefixSize)
	}
	var prefix [lengthPrefixSize]byte
	if err := readFull(r, prefix[:], 0); err != nil {
		return 0, fmt.Errorf("reading length prefix: %w", err)
	}
	n := binary.LittleEndian.Uint64(prefix[:])
	switch {
	case n == 0:
		return 0, fmt.Errorf("%w: header length is 0", ErrBadHeader)
	case n > MaxHeaderSize:
		return 0, fmt.Errorf("%w: header length %d exceeds the %d-byte limit",
			ErrBadHeader, n, MaxHeaderSize)
	case n > uint64(fileSize-lengthPrefixSize):
		return 0, fmt.Errorf("%w: header length %d but only %d bytes follow the length prefix",
			ErrTruncated, n, fileSize-lengthPrefixSize)
	}
	return int64(n), nil
}

// readHeaderJSON reads the n header bytes and checks the cheap, whole-buffer
// properties: valid UTF-8 (encoding/json would otherwise silently replace bad
// bytes with U+FFFD) and a leading '{' (the reference implementation refuses
// anything else, and it stops a stray length prefix from being taken for a
// header that merely starts with whitespace).
func readHeaderJSON(r io.ReaderAt, n int64) ([]byte, error) {
	raw := make([]byte, n)
	if err := readFull(r, raw, lengthPrefixSize); err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	if !utf8.Valid(raw) {
		return nil, fmt.Errorf("%w: header is not valid UTF-8", ErrBadHeader)
	}
	if raw[0] != '{' {
		return nil, fmt.Errorf("%w: header does not start with '{'", ErrBadHeader)
	}
	return raw, nil
}

// readFull fills buf from r at off. Running out of data is ErrTruncated: the
// caller's fileSize promised more bytes than r holds.
func readFull(r io.ReaderAt, buf []byte, off int64) error {
	n, err := r.ReadAt(buf, off)
	if n == len(buf) {
		return nil // ReadAt may report io.EOF alongside a full read.
	}
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: wanted %d bytes at offset %d, got %d", ErrTruncated, len(buf), off, n)
	}
	return err
}

// decodeHeader decodes the JSON header into a Header whose tensors have been
// individually validated against a data region of dataSize bytes.
func decodeHeader(raw []byte, dataSize int64) (*Header, error) {
	h := &Header{}
	r := newTokenReader(raw)
	err := r.eachMember("tensor name", func(key string) error {
		if key == metadataKey {
			md, err := decodeMetadata(r)
			if err != nil {
				return fmt.Errorf("%w: %s: %w", ErrBadHeader, metadataKey, err)
			}
			h.Metadata = md
			return nil
		}
		t, err := decodeTensor(r, key, dataSize)
		if err != nil {
			return err
		}
		h.Tensors = append(h.Tensors, t)
		return nil
	})
	if err == nil {
		err = r.expectEOF()
	}
	if err != nil {
		if isClassified(err) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrBadHeader, err)
	}
	return h, nil
}

// isClassified reports whether err already wraps one of the parse sentinels,
// so decodeHeader only adds ErrBadHeader to bare JSON-structure errors.
func isClassified(err error) bool {
	for _, s := range []error{ErrTruncated, ErrBadHeader, ErrUnknownDType, ErrBadOffsets, ErrOverlap} {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// decodeMetadata decodes the "__metadata__" object, whose values must all be
// strings. JSON null is accepted as "no metadata" for compatibility with
// writers that serialise an empty Optional that way.
func decodeMetadata(r *tokenReader) (map[string]string, error) {
	tok, err := r.next()
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, fmt.Errorf("expected an object, got %s", describeToken(tok))
	}
	md := make(map[string]string)
	err = r.members("metadata key", func(key string) error {
		s, err := r.readString()
		if err != nil {
			return fmt.Errorf("key %s: %w", quoteBounded(key), err)
		}
		md[key] = s
		return nil
	})
	if err != nil {
		return nil, err
	}
	return md, nil
}

// tensorFields holds an entry's members as read, before validation; the
// flags record presence because the fields may come in any order.
type tensorFields struct {
	dtype                          string
	shape, offsets                 []int64
	hasDType, hasShape, hasOffsets bool
}

// decodeTensor decodes and validates one tensor entry.
func decodeTensor(r *tokenReader, name string, dataSize int64) (Tensor, error) {
	fail := func(sentinel error, format string, args ...any) (Tensor, error) {
		return Tensor{}, newTensorError(name, fmt.Sprintf(format, args...), sentinel)
	}
	f, err := readTensorFields(r)
	switch {
	case errors.Is(err, errTooManyElements):
		return fail(ErrBadOffsets, "%v", err)
	case err != nil:
		return fail(ErrBadHeader, "%v", err)
	}
	t := Tensor{Name: name, DType: DType(f.dtype), Shape: f.shape}
	if !t.DType.Known() {
		return fail(ErrUnknownDType, "dtype %s", quoteBounded(f.dtype))
	}
	size, err := byteSize(t.DType, t.Shape)
	if err != nil {
		return fail(ErrBadHeader, "%v", err)
	}
	if len(f.offsets) != 2 {
		return fail(ErrBadOffsets, "data_offsets has %d elements, want 2", len(f.offsets))
	}
	t.Begin, t.End = f.offsets[0], f.offsets[1]
	if err := checkOffsets(t, size, dataSize); err != nil {
		return Tensor{}, err
	}
	return t, nil
}

// readTensorFields reads an entry's three required members, rejecting any
// other key: an entry must be exactly dtype/shape/data_offsets. A data_offsets
// array that is too long comes back wrapping errTooManyElements so that it can
// be reported as ErrBadOffsets.
func readTensorFields(r *tokenReader) (tensorFields, error) {
	var f tensorFields
	err := r.eachMember("field", func(key string) error {
		var err error
		switch key {
		case "dtype":
			f.hasDType = true
			if f.dtype, err = r.readString(); err != nil {
				return fmt.Errorf("dtype: %w", err)
			}
		case "shape":
			f.hasShape = true
			if f.shape, err = r.readIntArray(MaxRank); err != nil {
				// An over-long shape is a header problem, not an offsets one.
				return fmt.Errorf("shape: %v", err)
			}
		case "data_offsets":
			f.hasOffsets = true
			if f.offsets, err = r.readIntArray(2); err != nil {
				return fmt.Errorf("data_offsets: %w", err)
			}
		default:
			return fmt.Errorf("unexpected key %s", quoteBounded(key))
		}
		return nil
	})
	switch {
	case err != nil:
		return f, err
	case !f.hasDType:
		return f, errors.New("missing dtype")
	case !f.hasShape:
		return f, errors.New("missing shape")
	case !f.hasOffsets:
		return f, errors.New("missing data_offsets")
	}
	return f, nil
}

// tensorError is a validation failure attributable to one tensor. It can wrap
// several sentinels (an out-of-file range is both ErrBadOffsets and
// ErrTruncated) while keeping a single "safetensors: <class>: tensor "x": why"
// message.
type tensorError struct {
	name      string
	msg       string
	sentinels []error
}

func newTensorError(name, msg string, sentinels ...error) *tensorError {
	return &tensorError{name: name, msg: msg, sentinels: sentinels}
}

func (e *tensorError) Error() string {
	return fmt.Sprintf("%v: tensor %s: %s", e.sentinels[0], quoteBounded(e.name), e.msg)
}

func (e *tensorError) Unwrap() []error { return e.sentinels }

// checkOffsets validates t's byte range against its expected size and the
// data region. The size check also caps the shape: size must equal End-Begin,
// which is at most dataSize, so no tensor can claim more bytes than the file.
func checkOffsets(t Tensor, size, dataSize int64) error {
	where := fmt.Sprintf("data_offsets [%d, %d]", t.Begin, t.End)
	switch {
	case t.Begin < 0 || t.End < 0:
		return newTensorError(t.Name, where+": negative offset", ErrBadOffsets)
	case t.Begin > t.End:
		return newTensorError(t.Name, where+": begin is after end", ErrBadOffsets)
	case t.End-t.Begin != size:
		return newTensorError(t.Name, fmt.Sprintf("%s: span %d bytes but %s%s needs %d",
			where, t.End-t.Begin, t.DType, formatShape(t.Shape), size), ErrBadOffsets)
	case t.End > dataSize:
		// Either the offsets are bogus or the file was cut short; callers
		// checking for either condition should match.
		return newTensorError(t.Name, fmt.Sprintf("%s: end is past the %d-byte data region (file truncated?)",
			where, dataSize), ErrBadOffsets, ErrTruncated)
	}
	return nil
}

// sortTensors orders tensors by Begin, then End, then Name. The tie-breakers
// only matter for zero-size tensors but make the order fully deterministic.
func sortTensors(ts []Tensor) {
	slices.SortFunc(ts, func(a, b Tensor) int {
		if c := cmp.Compare(a.Begin, b.Begin); c != 0 {
			return c
		}
		if c := cmp.Compare(a.End, b.End); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
}

// checkOverlap verifies that no two non-empty tensors share a byte. ts must be
// sorted by Begin. Empty tensors own no bytes, so they may sit anywhere,
// including at the same offset as each other or inside another tensor.
func checkOverlap(ts []Tensor) error {
	var prev *Tensor
	for i := range ts {
		t := &ts[i]
		if t.ByteSize() == 0 {
			continue
		}
		// Sorted by Begin and pairwise disjoint so far, so prev has the
		// largest End seen and is the only tensor t could collide with.
		if prev != nil && t.Begin < prev.End {
			return fmt.Errorf("%w: tensor %s [%d, %d) overlaps tensor %s [%d, %d)",
				ErrOverlap, quoteBounded(t.Name), t.Begin, t.End, quoteBounded(prev.Name), prev.Begin, prev.End)
		}
		prev = t
	}
	return nil
}
