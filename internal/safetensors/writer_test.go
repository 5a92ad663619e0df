package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriterRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		tensors []tensorData
		meta    map[string]string
	}{
		{name: "no tensors"},
		{name: "no tensors with metadata", meta: map[string]string{"format": "pt"}},
		{
			name: "many dtypes",
			tensors: withData(
				TensorSpec{Name: "f64", DType: F64, Shape: []int64{3}},
				TensorSpec{Name: "f32", DType: F32, Shape: []int64{2, 3}},
				TensorSpec{Name: "f16", DType: F16, Shape: []int64{5}},
				TensorSpec{Name: "bf16", DType: BF16, Shape: []int64{1, 1, 7}},
				TensorSpec{Name: "e4m3", DType: F8_E4M3, Shape: []int64{9}},
				TensorSpec{Name: "e5m2", DType: F8_E5M2, Shape: []int64{2, 2}},
				TensorSpec{Name: "i64", DType: I64, Shape: []int64{2}},
				TensorSpec{Name: "i32", DType: I32, Shape: []int64{3}},
				TensorSpec{Name: "i16", DType: I16, Shape: []int64{3}},
				TensorSpec{Name: "i8", DType: I8, Shape: []int64{3}},
				TensorSpec{Name: "u64", DType: U64, Shape: []int64{1}},
				TensorSpec{Name: "u32", DType: U32, Shape: []int64{2}},
				TensorSpec{Name: "u16", DType: U16, Shape: []int64{3}},
				TensorSpec{Name: "u8", DType: U8, Shape: []int64{11}},
				TensorSpec{Name: "bool", DType: BOOL, Shape: []int64{4}},
			),
			meta: map[string]string{"format": "pt", "note": `quotes " and \ and <html> and ünïcode`},
		},
		{
			name: "scalars and zero-size tensors",
			tensors: withData(
				TensorSpec{Name: "scalar", DType: F32, Shape: []int64{}},
				TensorSpec{Name: "nil shape scalar", DType: I64, Shape: nil},
				TensorSpec{Name: "empty", DType: F32, Shape: []int64{0}},
				TensorSpec{Name: "empty2", DType: BF16, Shape: []int64{4, 0, 2}},
				TensorSpec{Name: "after", DType: U8, Shape: []int64{1}},
				TensorSpec{Name: "trailing empty", DType: F16, Shape: []int64{0, 0}},
			),
		},
		{
			name: "awkward names",
			tensors: withData(
				TensorSpec{Name: "", DType: U8, Shape: []int64{1}},
				TensorSpec{Name: "model.layers.0.self_attn.q_proj.weight", DType: BF16, Shape: []int64{4, 4}},
				TensorSpec{Name: "quote\"slash\\newline\n tab\t", DType: U8, Shape: []int64{2}},
				TensorSpec{Name: "日本語", DType: U8, Shape: []int64{2}},
			),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := writeFile(t, tc.tensors, tc.meta)
			h, err := parseBytes(file)
			require.NoError(t, err)
			checkInvariants(t, h, int64(len(file)))

			assert.Zero(t, h.DataOffset%DataAlign, "data region must be 64-byte aligned")
			assert.Len(t, h.Tensors, len(tc.tensors))
			if len(tc.meta) == 0 {
				assert.Nil(t, h.Metadata)
			} else {
				assert.Equal(t, tc.meta, h.Metadata)
			}

			var total int64
			for _, td := range tc.tensors {
				tn, ok := h.Lookup(td.spec.Name)
				require.True(t, ok, "tensor %q missing", td.spec.Name)
				assert.Equal(t, td.spec.DType, tn.DType)
				assert.Equal(t, len(td.spec.Shape), len(tn.Shape))
				if len(td.spec.Shape) > 0 {
					assert.Equal(t, td.spec.Shape, tn.Shape)
				}
				// Declaration order is layout order, with no gaps: the
				// reference implementation rejects gaps.
				assert.Equal(t, total, tn.Begin, "tensor %q not packed", tn.Name)
				total = tn.End
				got, err := io.ReadAll(h.Section(bytes.NewReader(file), tn))
				require.NoError(t, err)
				assert.Equal(t, td.data, got, "tensor %q bytes", tn.Name)
			}
			assert.Equal(t, h.DataOffset+total, int64(len(file)), "no trailing bytes")
		})
	}
}

func TestWriterHeaderPaddedWithSpaces(t *testing.T) {
	for n := 0; n < DataAlign; n++ {
		// Name lengths 0..63 hit every residue of the header length mod 64.
		spec := TensorSpec{Name: strings.Repeat("x", n), DType: U8, Shape: []int64{1}}
		file := writeFile(t, withData(spec), nil)
		hlen := binary.LittleEndian.Uint64(file)
		assert.Zero(t, (lengthPrefixSize+hlen)%DataAlign)
		header := string(file[lengthPrefixSize : lengthPrefixSize+hlen])
		trimmed := strings.TrimRight(header, " ")
		assert.True(t, strings.HasSuffix(trimmed, "}"))
		assert.Less(t, len(header)-len(trimmed), DataAlign, "padding must be minimal")
	}
}

func TestWriterGolden(t *testing.T) {
	tensors := []tensorData{
		{TensorSpec{Name: "b", DType: F16, Shape: []int64{2}}, []byte{1, 2, 3, 4}},
		{TensorSpec{Name: "a", DType: U8, Shape: []int64{}}, []byte{9}},
	}
	file := writeFile(t, tensors, map[string]string{"z": "1", "a": "2"})
	header := `{"__metadata__":{"a":"2","z":"1"},` +
		`"b":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},` +
		`"a":{"dtype":"U8","shape":[],"data_offsets":[4,5]}}`
	header += strings.Repeat(" ", (DataAlign-(lengthPrefixSize+len(header))%DataAlign)%DataAlign)
	want := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	want = append(want, header...)
	want = append(want, 1, 2, 3, 4, 9)
	assert.Equal(t, string(want), string(file))
}

func TestWriterDeterministic(t *testing.T) {
	build := func() []byte {
		meta := map[string]string{}
		for _, k := range []string{"m", "c", "x", "a", "q", "b", "zz", "format"} {
			meta[k] = "v-" + k
		}
		return writeFile(t, withData(
			TensorSpec{Name: "z", DType: F32, Shape: []int64{2, 2}},
			TensorSpec{Name: "a", DType: BF16, Shape: []int64{3}},
			TensorSpec{Name: "m", DType: I8, Shape: []int64{0}},
		), meta)
	}
	first := build()
	for range 20 { // map iteration order varies run to run; output must not
		require.Equal(t, first, build())
	}
	// Nil and empty metadata are the same input.
	specs := withData(TensorSpec{Name: "t", DType: U8, Shape: []int64{1}})
	assert.Equal(t, writeFile(t, specs, nil), writeFile(t, specs, map[string]string{}))
}

func TestNewWriterRejects(t *testing.T) {
	tests := []struct {
		name  string
		specs []TensorSpec
		meta  map[string]string
		want  error
		msg   string
	}{
		{"unknown dtype", []TensorSpec{{Name: "t", DType: "F4", Shape: []int64{1}}}, nil, ErrUnknownDType, `tensor "t"`},
		{"empty dtype", []TensorSpec{{Name: "t", Shape: []int64{1}}}, nil, ErrUnknownDType, `tensor "t"`},
		{"duplicate name", []TensorSpec{{Name: "t", DType: U8}, {Name: "t", DType: U8}}, nil, ErrBadHeader, "declared twice"},
		{"reserved name", []TensorSpec{{Name: metadataKey, DType: U8}}, nil, ErrBadHeader, "reserved"},
		{"invalid UTF-8 name", []TensorSpec{{Name: "\xff", DType: U8}}, nil, ErrBadHeader, "UTF-8"},
		{"negative dim", []TensorSpec{{Name: "t", DType: U8, Shape: []int64{-2}}}, nil, ErrBadHeader, "negative"},
		{"rank over the cap", []TensorSpec{{Name: "t", DType: U8, Shape: make([]int64, MaxRank+1)}}, nil, ErrBadHeader, "rank 65 exceeds 64"},
		{"shape overflow", []TensorSpec{{Name: "t", DType: F32, Shape: []int64{1 << 62}}}, nil, ErrBadHeader, "overflows"},
		{"total size overflow", []TensorSpec{
			{Name: "a", DType: U8, Shape: []int64{1 << 62}},
			{Name: "b", DType: U8, Shape: []int64{1 << 62}},
		}, nil, ErrBadHeader, `tensor "b": total data size overflows`},
		{"invalid UTF-8 metadata", nil, map[string]string{"k": "\xfe"}, ErrBadHeader, "metadata"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := NewWriter(&buf, tc.specs, tc.meta)
			require.ErrorIs(t, err, tc.want)
			assert.Contains(t, err.Error(), tc.msg)
			assert.Nil(t, w)
			assert.Zero(t, buf.Len(), "nothing may be written for an invalid declaration")
		})
	}
}

func TestNewWriterCopiesShapes(t *testing.T) {
	shape := []int64{2}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, []TensorSpec{{Name: "t", DType: U8, Shape: shape}}, nil)
	require.NoError(t, err)
	shape[0] = 1000 // must not change what the writer expects
	require.NoError(t, w.WriteTensor("t", []byte{1, 2}))
	require.NoError(t, w.Close())
}

// newTestWriter declares a (4 bytes), b (2 bytes), c (0 bytes).
func newTestWriter(t *testing.T) (*Writer, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, []TensorSpec{
		{Name: "a", DType: F32, Shape: []int64{1}},
		{Name: "b", DType: I16, Shape: []int64{1}},
		{Name: "c", DType: F64, Shape: []int64{0}},
	}, nil)
	require.NoError(t, err)
	return w, &buf
}

func TestWriterMisuse(t *testing.T) {
	t.Run("wrong order", func(t *testing.T) {
		w, _ := newTestWriter(t)
		require.ErrorIs(t, w.WriteTensor("b", []byte{1, 2}), ErrWriteOrder)
		_, err := w.TensorWriter("c")
		require.ErrorIs(t, err, ErrWriteOrder)
		assert.Contains(t, err.Error(), `next declared tensor is "a"`)
		// The mistake wrote nothing, so the caller can carry on.
		require.NoError(t, w.WriteTensor("a", []byte{1, 2, 3, 4}))
	})
	t.Run("undeclared name", func(t *testing.T) {
		w, _ := newTestWriter(t)
		require.ErrorIs(t, w.WriteTensor("nope", nil), ErrWriteOrder)
	})
	t.Run("wrong size", func(t *testing.T) {
		w, buf := newTestWriter(t)
		before := buf.Len()
		err := w.WriteTensor("a", []byte{1, 2, 3})
		require.ErrorIs(t, err, ErrSizeMismatch)
		assert.Contains(t, err.Error(), `tensor "a": got 3 bytes, want 4`)
		require.ErrorIs(t, w.WriteTensor("a", []byte{1, 2, 3, 4, 5}), ErrSizeMismatch)
		assert.Equal(t, before, buf.Len())
		require.NoError(t, w.WriteTensor("a", []byte{1, 2, 3, 4}))
	})
	t.Run("close before all written", func(t *testing.T) {
		w, _ := newTestWriter(t)
		require.NoError(t, w.WriteTensor("a", []byte{1, 2, 3, 4}))
		err := w.Close()
		require.ErrorIs(t, err, ErrIncomplete)
		assert.Contains(t, err.Error(), `1 of 3 tensors written, next is "b"`)
	})
	t.Run("zero-size tensors must still be written", func(t *testing.T) {
		w, _ := newTestWriter(t)
		require.NoError(t, w.WriteTensor("a", []byte{1, 2, 3, 4}))
		require.NoError(t, w.WriteTensor("b", []byte{1, 2}))
		require.ErrorIs(t, w.Close(), ErrIncomplete)
		require.NoError(t, w.WriteTensor("c", nil))
		require.NoError(t, w.Close())
	})
	t.Run("after close", func(t *testing.T) {
		w, _ := newTestWriter(t)
		require.NoError(t, w.WriteTensor("a", []byte{1, 2, 3, 4}))
		require.NoError(t, w.WriteTensor("b", []byte{1, 2}))
		require.NoError(t, w.WriteTensor("c", nil))
		require.NoError(t, w.Close())
		require.NoError(t, w.Close(), "Close is idempotent")
		require.ErrorIs(t, w.WriteTensor("a", []byte{1, 2, 3, 4}), ErrWriteOrder)
	})
	t.Run("too many tensors", func(t *testing.T) {
		w, _ := newTestWriter(t)
		require.NoError(t, w.WriteTensor("a", []byte{1, 2, 3, 4}))
		require.NoError(t, w.WriteTensor("b", []byte{1, 2}))
		require.NoError(t, w.WriteTensor("c", nil))
		require.ErrorIs(t, w.WriteTensor("d", nil), ErrWriteOrder)
	})
}

func TestTensorWriterStreaming(t *testing.T) {
	t.Run("overflowing write is refused whole", func(t *testing.T) {
		w, buf := newTestWriter(t)
		tw, err := w.TensorWriter("a")
		require.NoError(t, err)
		_, err = tw.Write([]byte{1, 2, 3})
		require.NoError(t, err)
		before := buf.Len()
		n, err := tw.Write([]byte{4, 5})
		require.ErrorIs(t, err, ErrSizeMismatch)
		assert.Zero(t, n)
		assert.Equal(t, before, buf.Len())
		_, err = tw.Write([]byte{4})
		require.NoError(t, err)
	})
	t.Run("incomplete stream blocks the next call until finished", func(t *testing.T) {
		w, _ := newTestWriter(t)
		tw, err := w.TensorWriter("a")
		require.NoError(t, err)
		_, err = tw.Write([]byte{1, 2})
		require.NoError(t, err)

		err = w.WriteTensor("b", []byte{1, 2})
		require.ErrorIs(t, err, ErrSizeMismatch)
		assert.Contains(t, err.Error(), `tensor "a": streamed tensor is missing 2 bytes`)
		_, err = w.TensorWriter("b")
		require.ErrorIs(t, err, ErrSizeMismatch)
		require.ErrorIs(t, w.Close(), ErrSizeMismatch)

		_, err = tw.Write([]byte{3, 4})
		require.NoError(t, err)
		require.NoError(t, w.WriteTensor("b", []byte{1, 2}))
	})
	t.Run("stale stream", func(t *testing.T) {
		w, _ := newTestWriter(t)
		tw, err := w.TensorWriter("a")
		require.NoError(t, err)
		_, err = tw.Write([]byte{1, 2, 3, 4})
		require.NoError(t, err)
		require.NoError(t, w.WriteTensor("b", []byte{1, 2}))
		_, err = tw.Write(nil)
		require.ErrorIs(t, err, ErrWriteOrder)
	})
	t.Run("io.Copy from a reader", func(t *testing.T) {
		w, buf := newTestWriter(t)
		tw, err := w.TensorWriter("a")
		require.NoError(t, err)
		_, err = io.Copy(tw, strings.NewReader("abcd"))
		require.NoError(t, err)
		tw, err = w.TensorWriter("b")
		require.NoError(t, err)
		_, err = io.Copy(tw, strings.NewReader("ef"))
		require.NoError(t, err)
		_, err = w.TensorWriter("c")
		require.NoError(t, err)
		require.NoError(t, w.Close())
		h, err := parseBytes(buf.Bytes())
		require.NoError(t, err)
		assert.Equal(t, "abcdef", string(buf.Bytes()[h.DataOffset:]))
	})
}

// failAfter accepts n bytes, then fails every write.
type failAfter struct {
	n   int
	err error
}

func (f *failAfter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		k := f.n
		f.n = 0
		return k, f.err
	}
	f.n -= len(p)
	return len(p), nil
}

// shortWriter reports success while writing less than asked.
type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return len(p) / 2, nil }

func TestWriterIOErrorsAreSticky(t *testing.T) {
	ioErr := errors.New("disk full")
	specs := []TensorSpec{{Name: "a", DType: U8, Shape: []int64{4}}, {Name: "b", DType: U8, Shape: []int64{4}}}

	_, err := NewWriter(&failAfter{n: 3, err: ioErr}, specs, nil)
	require.ErrorIs(t, err, ioErr, "failure writing the header")

	_, err = NewWriter(shortWriter{}, specs, nil)
	require.ErrorIs(t, err, io.ErrShortWrite)

	var hdr bytes.Buffer
	_, err = NewWriter(&hdr, specs, nil)
	require.NoError(t, err)
	fw := &failAfter{n: hdr.Len() + 2, err: ioErr}
	w, err := NewWriter(fw, specs, nil)
	require.NoError(t, err)
	tw, err := w.TensorWriter("a")
	require.NoError(t, err)
	_, err = tw.Write([]byte{1, 2, 3, 4})
	require.ErrorIs(t, err, ioErr)
	_, err = tw.Write([]byte{1})
	require.ErrorIs(t, err, ioErr)
	require.ErrorIs(t, w.WriteTensor("b", []byte{1, 2, 3, 4}), ioErr)
	require.ErrorIs(t, w.Close(), ioErr)
}
