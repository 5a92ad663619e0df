package safetensors

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseHeaderAccepts(t *testing.T) {
	tests := []struct {
		name    string
		file    []byte
		tensors []Tensor // in the expected sorted order
		meta    map[string]string
	}{
		{
			name: "empty object",
			file: rawFile(`{}`, 0),
		},
		{
			name:    "trailing space padding",
			file:    rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`+"      ", 8),
			tensors: []Tensor{{Name: "a", DType: F32, Shape: []int64{2}, Begin: 0, End: 8}},
		},
		{
			name:    "trailing JSON whitespace of every kind",
			file:    rawFile("{\"a\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]}} \t\r\n", 1),
			tensors: []Tensor{{Name: "a", DType: U8, Shape: []int64{}, Begin: 0, End: 1}},
		},
		{
			name: "sorted by begin regardless of header order",
			file: rawFile(`{"b":{"dtype":"I16","shape":[1],"data_offsets":[2,4]},`+
				`"a":{"dtype":"I16","shape":[1],"data_offsets":[0,2]}}`, 4),
			tensors: []Tensor{
				{Name: "a", DType: I16, Shape: []int64{1}, Begin: 0, End: 2},
				{Name: "b", DType: I16, Shape: []int64{1}, Begin: 2, End: 4},
			},
		},
		{
			name: "holes and trailing bytes are tolerated",
			file: rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[3,4]},`+
				`"b":{"dtype":"U8","shape":[1],"data_offsets":[9,10]}}`, 20),
			tensors: []Tensor{
				{Name: "a", DType: U8, Shape: []int64{1}, Begin: 3, End: 4},
				{Name: "b", DType: U8, Shape: []int64{1}, Begin: 9, End: 10},
			},
		},
		{
			name: "zero-size tensors share offsets and sit inside others",
			file: rawFile(`{"big":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},`+
				`"z2":{"dtype":"F32","shape":[0,5],"data_offsets":[4,4]},`+
				`"z1":{"dtype":"BF16","shape":[3,0],"data_offsets":[4,4]}}`, 8),
			tensors: []Tensor{
				{Name: "big", DType: F16, Shape: []int64{4}, Begin: 0, End: 8},
				{Name: "z1", DType: BF16, Shape: []int64{3, 0}, Begin: 4, End: 4},
				{Name: "z2", DType: F32, Shape: []int64{0, 5}, Begin: 4, End: 4},
			},
		},
		{
			name:    "metadata",
			file:    rawFile(`{"__metadata__":{"format":"pt","x":""},"w":{"dtype":"BOOL","shape":[1],"data_offsets":[0,1]}}`, 1),
			tensors: []Tensor{{Name: "w", DType: BOOL, Shape: []int64{1}, Begin: 0, End: 1}},
			meta:    map[string]string{"format": "pt", "x": ""},
		},
		{
			name: "null metadata means none",
			file: rawFile(`{"__metadata__":null}`, 0),
		},
		{
			name:    "empty tensor name and escaped names",
			file:    rawFile(`{"":{"dtype":"I8","shape":[],"data_offsets":[0,1]},"\u00e9\n":{"dtype":"I8","shape":[],"data_offsets":[1,2]}}`, 2),
			tensors: []Tensor{{Name: "", DType: I8, Shape: []int64{}, Begin: 0, End: 1}, {Name: "é\n", DType: I8, Shape: []int64{}, Begin: 1, End: 2}},
		},
		{
			name:    "zero-size tensor at the very end of the data",
			file:    rawFile(`{"e":{"dtype":"F64","shape":[0],"data_offsets":[0,0]}}`, 0),
			tensors: []Tensor{{Name: "e", DType: F64, Shape: []int64{0}, Begin: 0, End: 0}},
		},
		{
			name:    "rank at the cap",
			file:    rawFile(`{"r":{"dtype":"U8","shape":[`+strings.Repeat("1,", MaxRank-1)+`3],"data_offsets":[0,3]}}`, 3),
			tensors: []Tensor{{Name: "r", DType: U8, Shape: append(slices.Repeat([]int64{1}, MaxRank-1), 3), Begin: 0, End: 3}},
		},
		{
			name: "overflowing non-zero product is rejected only when it overflows",
			file: rawFile(`{"z":{"dtype":"F8_E5M2","shape":[0,4294967296,2147483647],"data_offsets":[0,0]}}`, 0),
			tensors: []Tensor{
				{Name: "z", DType: F8_E5M2, Shape: []int64{0, 4294967296, 2147483647}, Begin: 0, End: 0},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := parseBytes(tc.file)
			require.NoError(t, err)
			checkInvariants(t, h, int64(len(tc.file)))
			if tc.tensors == nil {
				assert.Empty(t, h.Tensors)
			} else {
				assert.Equal(t, tc.tensors, h.Tensors)
			}
			assert.Equal(t, tc.meta, h.Metadata)
		})
	}
}

// entry formats one tensor entry for the error table.
func entry(name, body string) string { return `"` + name + `":{` + body + `}` }

const okBody = `"dtype":"F32","shape":[2],"data_offsets":[0,8]`

func TestParseHeaderRejects(t *testing.T) {
	// hdr wraps entries in an object and gives the file 64 data bytes, enough
	// that only the property under test can fail.
	hdr := func(entries ...string) []byte {
		return rawFile("{"+strings.Join(entries, ",")+"}", 64)
	}
	withBody := func(body string) []byte { return hdr(entry("t", body)) }

	tests := []struct {
		name string
		file []byte
		want []error // every sentinel errors.Is must match
		msg  string  // substring the message must contain
	}{
		// Framing.
		{"empty file", nil, []error{ErrTruncated}, "shorter than"},
		{"seven bytes", make([]byte, 7), []error{ErrTruncated}, "shorter than"},
		{"zero header length", rawFileWithLen(0, "", 16), []error{ErrBadHeader}, "length is 0"},
		{"header over 100 MiB", rawFileWithLen(MaxHeaderSize+1, "{}", 0), []error{ErrBadHeader}, "exceeds"},
		{"huge header length", rawFileWithLen(1<<63+5, "{}", 0), []error{ErrBadHeader}, "exceeds"},
		{"header longer than file", rawFileWithLen(100, "{}", 10), []error{ErrTruncated}, "only 12 bytes"},

		// JSON structure.
		{"top level array", rawFile(`[]`, 0), []error{ErrBadHeader}, "start with '{'"},
		{"top level string", rawFile(`"x"`, 0), []error{ErrBadHeader}, "start with '{'"},
		{"leading whitespace", rawFile(` {}`, 0), []error{ErrBadHeader}, "start with '{'"},
		{"malformed", rawFile(`{"a":`, 0), []error{ErrBadHeader}, "malformed"},
		{"unterminated object", rawFile(`{"a":{}`, 0), []error{ErrBadHeader}, ""},
		{"trailing garbage", rawFile(`{} x`, 0), []error{ErrBadHeader}, "after object"},
		{"two objects", rawFile(`{}{}`, 0), []error{ErrBadHeader}, "after object"},
		{"NUL padding", rawFile("{}\x00\x00", 0), []error{ErrBadHeader}, ""},
		{"invalid UTF-8", rawFile("{\"\xff\":{}}", 0), []error{ErrBadHeader}, "UTF-8"},
		{"duplicate tensor names", hdr(entry("t", okBody), entry("t", `"dtype":"F32","shape":[2],"data_offsets":[8,16]`)),
			[]error{ErrBadHeader}, `duplicate tensor name "t"`},
		{"duplicate after escape decoding", hdr(entry("t", okBody), entry(`\u0074`, `"dtype":"F32","shape":[2],"data_offsets":[8,16]`)),
			[]error{ErrBadHeader}, "duplicate"},

		// Entry shape.
		{"entry is an array", hdr(`"t":[1]`), []error{ErrBadHeader}, `tensor "t"`},
		{"entry is null", hdr(`"t":null`), []error{ErrBadHeader}, `tensor "t"`},
		{"unknown field", withBody(okBody + `,"extra":1`), []error{ErrBadHeader}, `unexpected key "extra"`},
		{"field in wrong case", withBody(`"DTYPE":"F32","shape":[2],"data_offsets":[0,8]`), []error{ErrBadHeader}, `unexpected key "DTYPE"`},
		{"duplicate field", withBody(okBody + `,"dtype":"F32"`), []error{ErrBadHeader}, `duplicate field "dtype"`},
		{"missing dtype", withBody(`"shape":[2],"data_offsets":[0,8]`), []error{ErrBadHeader}, "missing dtype"},
		{"missing shape", withBody(`"dtype":"F32","data_offsets":[0,8]`), []error{ErrBadHeader}, "missing shape"},
		{"missing data_offsets", withBody(`"dtype":"F32","shape":[2]`), []error{ErrBadHeader}, "missing data_offsets"},

		// dtype.
		{"dtype is a number", withBody(`"dtype":4,"shape":[2],"data_offsets":[0,8]`), []error{ErrBadHeader}, "dtype"},
		{"dtype is null", withBody(`"dtype":null,"shape":[2],"data_offsets":[0,8]`), []error{ErrBadHeader}, "dtype"},
		{"unknown dtype", withBody(`"dtype":"F4","shape":[2],"data_offsets":[0,8]`), []error{ErrUnknownDType}, `tensor "t": dtype "F4"`},
		{"dtype is case sensitive", withBody(`"dtype":"f32","shape":[2],"data_offsets":[0,8]`), []error{ErrUnknownDType}, `"f32"`},

		// shape.
		{"shape is null", withBody(`"dtype":"F32","shape":null,"data_offsets":[0,8]`), []error{ErrBadHeader}, "shape: expected an array"},
		{"shape is an object", withBody(`"dtype":"F32","shape":{},"data_offsets":[0,8]`), []error{ErrBadHeader}, "shape"},
		{"shape element is a string", withBody(`"dtype":"F32","shape":["2"],"data_offsets":[0,8]`), []error{ErrBadHeader}, "expected an integer"},
		{"shape element is a float", withBody(`"dtype":"F32","shape":[2.0],"data_offsets":[0,8]`), []error{ErrBadHeader}, "expected an integer"},
		{"shape element 1e30", withBody(`"dtype":"F32","shape":[1e30],"data_offsets":[0,8]`), []error{ErrBadHeader}, "expected an integer"},
		{"shape element past int64", withBody(`"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]`), []error{ErrBadHeader}, "out of range"},
		{"shape element nested array", withBody(`"dtype":"F32","shape":[[2]],"data_offsets":[0,8]`), []error{ErrBadHeader}, "expected an integer"},
		{"shape element is null", withBody(`"dtype":"F32","shape":[null],"data_offsets":[0,8]`), []error{ErrBadHeader}, "got null"},
		{"shape element is bool", withBody(`"dtype":"F32","shape":[true],"data_offsets":[0,8]`), []error{ErrBadHeader}, "got true"},
		{"shape element is an object", withBody(`"dtype":"F32","shape":[{}],"data_offsets":[0,8]`), []error{ErrBadHeader}, "expected an integer, got an object"},
		{"rank over the cap", withBody(`"dtype":"F32","shape":[` + strings.Repeat("1,", MaxRank) + `2],"data_offsets":[0,8]`), []error{ErrBadHeader}, "shape: too many elements (more than 64)"},
		{"negative dim", withBody(`"dtype":"F32","shape":[2,-1],"data_offsets":[0,8]`), []error{ErrBadHeader}, "shape[1] = -1 is negative"},
		{"element count overflow", withBody(`"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,8]`), []error{ErrBadHeader}, "overflows"},
		{"byte size overflow", withBody(`"dtype":"F64","shape":[2305843009213693952],"data_offsets":[0,8]`), []error{ErrBadHeader}, "overflows"},
		{"overflow hidden behind a zero dim", withBody(`"dtype":"U8","shape":[4294967296,0,4294967296],"data_offsets":[0,0]`), []error{ErrBadHeader}, "overflows"},
		{"shape larger than the file", withBody(`"dtype":"F32","shape":[1000000],"data_offsets":[0,4000000]`), []error{ErrBadOffsets, ErrTruncated}, "past the 64-byte data region"},

		// data_offsets.
		{"offsets null", withBody(`"dtype":"F32","shape":[2],"data_offsets":null`), []error{ErrBadHeader}, "data_offsets: expected an array"},
		{"offsets are strings", withBody(`"dtype":"F32","shape":[2],"data_offsets":["0","8"]`), []error{ErrBadHeader}, "data_offsets"},
		{"one offset", withBody(`"dtype":"F32","shape":[2],"data_offsets":[8]`), []error{ErrBadOffsets}, "has 1 elements"},
		{"three offsets", withBody(`"dtype":"F32","shape":[2],"data_offsets":[0,8,8]`), []error{ErrBadOffsets}, "data_offsets: too many elements (more than 2)"},
		{"empty offsets", withBody(`"dtype":"F32","shape":[0],"data_offsets":[]`), []error{ErrBadOffsets}, "has 0 elements"},
		{"negative begin", withBody(`"dtype":"F32","shape":[0],"data_offsets":[-1,-1]`), []error{ErrBadOffsets}, "negative"},
		{"begin after end", withBody(`"dtype":"F32","shape":[2],"data_offsets":[8,0]`), []error{ErrBadOffsets}, "begin is after end"},
		{"size mismatch", withBody(`"dtype":"F32","shape":[2],"data_offsets":[0,7]`), []error{ErrBadOffsets}, "span 7 bytes but F32[2] needs 8"},
		{"offset past int64", withBody(`"dtype":"F32","shape":[2],"data_offsets":[0,9223372036854775808]`), []error{ErrBadHeader}, "out of range"},
		{"end past data region", withBody(`"dtype":"F32","shape":[2],"data_offsets":[60,68]`), []error{ErrBadOffsets, ErrTruncated}, `tensor "t"`},
		{"near-max offsets", withBody(`"dtype":"U8","shape":[1],"data_offsets":[9223372036854775806,9223372036854775807]`), []error{ErrBadOffsets, ErrTruncated}, "past"},

		// Overlap.
		{"partial overlap", hdr(entry("a", `"dtype":"F32","shape":[2],"data_offsets":[0,8]`), entry("b", `"dtype":"F32","shape":[2],"data_offsets":[4,12]`)),
			[]error{ErrOverlap}, `tensor "b" [4, 12) overlaps tensor "a" [0, 8)`},
		{"identical ranges", hdr(entry("a", okBody), entry("b", okBody)), []error{ErrOverlap}, "overlaps"},
		{"contained range", hdr(entry("a", `"dtype":"U8","shape":[10],"data_offsets":[0,10]`), entry("b", `"dtype":"U8","shape":[2],"data_offsets":[3,5]`)),
			[]error{ErrOverlap}, "overlaps"},
		{"overlap past an empty tensor", hdr(entry("a", `"dtype":"U8","shape":[10],"data_offsets":[0,10]`), entry("z", `"dtype":"U8","shape":[0],"data_offsets":[5,5]`), entry("b", `"dtype":"U8","shape":[2],"data_offsets":[6,8]`)),
			[]error{ErrOverlap}, `tensor "b"`},

		// Metadata.
		{"metadata value not a string", hdr(`"__metadata__":{"k":1}`), []error{ErrBadHeader}, `__metadata__: key "k"`},
		{"metadata is an array", hdr(`"__metadata__":["k"]`), []error{ErrBadHeader}, "__metadata__"},
		{"metadata duplicate key", hdr(`"__metadata__":{"k":"a","k":"b"}`), []error{ErrBadHeader}, `duplicate metadata key "k"`},
		{"metadata nested object", hdr(`"__metadata__":{"k":{}}`), []error{ErrBadHeader}, "expected a string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := parseBytes(tc.file)
			require.Error(t, err)
			assert.Nil(t, h)
			for _, want := range tc.want {
				assert.ErrorIs(t, err, want)
			}
			assert.Contains(t, err.Error(), tc.msg)
			assert.True(t, strings.HasPrefix(err.Error(), "safetensors: "), "message %q lacks the package prefix", err)
		})
	}
}

// A hostile header can make names and values arbitrarily long; error messages
// must stay readable and small regardless.
func TestParseHeaderErrorMessagesAreBounded(t *testing.T) {
	long := strings.Repeat("n", 1<<20)
	files := [][]byte{
		rawFile(`{"`+long+`":{"dtype":"`+long+`","shape":[],"data_offsets":[0,1]}}`, 1),
		rawFile(`{"t":{"dtype":"U8","shape":["`+long+`"],"data_offsets":[0,1]}}`, 1),
		rawFile(`{"t":{"dtype":"U8","shape":[`+strings.Repeat("1,", 60)+`2],"data_offsets":[0,1]}}`, 1),
		rawFile(`{"__metadata__":{"`+long+`":0}}`, 0),
	}
	for _, file := range files {
		_, err := parseBytes(file)
		require.Error(t, err)
		assert.Less(t, len(err.Error()), 400, "message: %.200s", err)
	}
}

func TestParseHeaderTruncatedData(t *testing.T) {
	// The header is fine but the data region stops 6 bytes into a 16-byte tensor.
	file := rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, 10)
	_, err := parseBytes(file)
	require.ErrorIs(t, err, ErrTruncated)
	assert.Contains(t, err.Error(), `tensor "b"`)
}

func TestParseHeaderWriterOutputTruncated(t *testing.T) {
	file := writeFile(t, withData(
		TensorSpec{Name: "emb", DType: BF16, Shape: []int64{4, 3}},
		TensorSpec{Name: "out", DType: F32, Shape: []int64{3}},
	), nil)
	h, err := parseBytes(file)
	require.NoError(t, err)

	tests := []struct {
		name string
		size int64
		msg  string
	}{
		{"last byte", int64(len(file)) - 1, `tensor "out"`},
		{"all data", h.DataOffset, `tensor "emb"`},
		{"inside header", h.DataOffset - 1, "header length"},
		{"inside length prefix", 5, "length prefix"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseBytes(file[:tc.size])
			require.ErrorIs(t, err, ErrTruncated)
			assert.Contains(t, err.Error(), tc.msg)
		})
	}
}

// shortReaderAt holds fewer bytes than the fileSize its caller claims.
func TestParseHeaderReaderShorterThanClaimed(t *testing.T) {
	file := rawFile(`{}`, 0)
	_, err := ParseHeader(bytes.NewReader(file[:9]), int64(len(file)))
	require.ErrorIs(t, err, ErrTruncated)
	_, err = ParseHeader(bytes.NewReader(nil), 100)
	require.ErrorIs(t, err, ErrTruncated)
}

type failingReaderAt struct{ err error }

func (f failingReaderAt) ReadAt([]byte, int64) (int, error) { return 0, f.err }

func TestParseHeaderReadErrorPropagates(t *testing.T) {
	ioErr := errors.New("disk on fire")
	_, err := ParseHeader(failingReaderAt{ioErr}, 1024)
	require.ErrorIs(t, err, ioErr)
	assert.NotErrorIs(t, err, ErrTruncated)
}

func TestReadHeaderFile(t *testing.T) {
	tensors := withData(TensorSpec{Name: "w", DType: I32, Shape: []int64{2, 2}})
	file := writeFile(t, tensors, map[string]string{"format": "pt"})
	path := filepath.Join(t.TempDir(), "model.safetensors")
	require.NoError(t, os.WriteFile(path, file, 0o600))

	h, err := ReadHeaderFile(path)
	require.NoError(t, err)
	checkInvariants(t, h, int64(len(file)))
	assert.Equal(t, map[string]string{"format": "pt"}, h.Metadata)

	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	tn, ok := h.Lookup("w")
	require.True(t, ok)
	got, err := io.ReadAll(h.Section(f, tn))
	require.NoError(t, err)
	assert.Equal(t, tensors[0].data, got)

	require.NoError(t, os.Truncate(path, int64(len(file)-1)))
	_, err = ReadHeaderFile(path)
	require.ErrorIs(t, err, ErrTruncated)
	assert.Contains(t, err.Error(), path)

	_, err = ReadHeaderFile(filepath.Join(t.TempDir(), "missing"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestLookup(t *testing.T) {
	h, err := parseBytes(rawFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]},"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 2))
	require.NoError(t, err)
	for _, name := range []string{"a", "b"} {
		tn, ok := h.Lookup(name)
		require.True(t, ok)
		assert.Equal(t, name, tn.Name)
	}
	_, ok := h.Lookup("c")
	assert.False(t, ok)

	// A hand-built Header has no index but Lookup must still work.
	manual := &Header{Tensors: []Tensor{{Name: "x", DType: U8}}}
	tn, ok := manual.Lookup("x")
	require.True(t, ok)
	assert.Equal(t, "x", tn.Name)
	_, ok = manual.Lookup("y")
	assert.False(t, ok)
}

func TestDTypeSize(t *testing.T) {
	tests := []struct {
		dtype DType
		size  int
	}{
		{F64, 8}, {F32, 4}, {F16, 2}, {BF16, 2}, {F8_E4M3, 1}, {F8_E5M2, 1},
		{I64, 8}, {I32, 4}, {I16, 2}, {I8, 1}, {U64, 8}, {U32, 4}, {U16, 2}, {U8, 1}, {BOOL, 1},
		{"F4", 0}, {"", 0}, {"f32", 0},
	}
	for _, tc := range tests {
		t.Run(string(tc.dtype), func(t *testing.T) {
			assert.Equal(t, tc.size, tc.dtype.Size())
			assert.Equal(t, tc.size > 0, tc.dtype.Known())
		})
	}
}

func TestNumElements(t *testing.T) {
	tests := []struct {
		name  string
		shape []int64
		want  int64
	}{
		{"scalar", nil, 1},
		{"empty shape", []int64{}, 1},
		{"vector", []int64{7}, 7},
		{"matrix", []int64{3, 4}, 12},
		{"zero dim", []int64{3, 0, 4}, 0},
		{"negative", []int64{-1}, -1},
		{"overflow", []int64{1 << 32, 1 << 32}, -1},
		{"max", []int64{1<<63 - 1}, 1<<63 - 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, Tensor{Shape: tc.shape}.NumElements())
		})
	}
}
