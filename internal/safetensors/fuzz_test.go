package safetensors

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzParseHeader feeds arbitrary files to ParseHeader. Properties:
//   - it never panics (the fuzzer catches that);
//   - every error wraps one of the parse sentinels, so callers can classify it;
//   - an accepted header satisfies every documented invariant;
//   - an accepted header survives a Writer round trip with the same tensors
//     and metadata, i.e. the writer can re-encode anything the parser accepts.
//
// Hand-written seeds live in testdata/fuzz/FuzzParseHeader alongside any
// crashers the fuzzer has found; the f.Add seeds below cover the writer's own
// output and the error table's shapes.
func FuzzParseHeader(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(checkParse)
}

// FuzzHeaderJSON is FuzzParseHeader with the framing done for the fuzzer: it
// supplies only the header text and a data length, and the length prefix is
// computed. Random mutation rarely keeps a length prefix consistent with the
// JSON it describes, so this target reaches the JSON and validation logic far
// more often than FuzzParseHeader does.
func FuzzHeaderJSON(f *testing.F) {
	for _, seed := range fuzzSeeds(f) {
		if len(seed) < lengthPrefixSize {
			continue
		}
		n := binary.LittleEndian.Uint64(seed)
		if n > uint64(len(seed)-lengthPrefixSize) {
			continue
		}
		f.Add(string(seed[lengthPrefixSize:lengthPrefixSize+n]), uint16(len(seed)-lengthPrefixSize-int(n)))
	}
	f.Fuzz(func(t *testing.T, header string, dataLen uint16) {
		checkParse(t, rawFile(header, int(dataLen)))
	})
}

// checkParse parses data as a whole file and checks the fuzz properties.
func checkParse(t *testing.T, data []byte) {
	h, err := parseBytes(data)
	if err != nil {
		require.Nil(t, h)
		require.True(t, isClassified(err), "unclassified error: %v", err)
		return
	}
	checkInvariants(t, h, int64(len(data)))
	checkReencodes(t, h)
}

// checkReencodes writes h's tensors (zero-filled) and metadata with a Writer
// and checks the result parses back to the same declarations.
func checkReencodes(t *testing.T, h *Header) {
	specs := make([]TensorSpec, len(h.Tensors))
	for i, tn := range h.Tensors {
		specs[i] = TensorSpec{Name: tn.Name, DType: tn.DType, Shape: tn.Shape}
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, specs, h.Metadata)
	require.NoError(t, err)
	for _, tn := range h.Tensors {
		// Sizes are bounded by the fuzz input's length, so this is small.
		require.NoError(t, w.WriteTensor(tn.Name, make([]byte, tn.ByteSize())))
	}
	require.NoError(t, w.Close())

	h2, err := parseBytes(buf.Bytes())
	require.NoError(t, err)
	require.Len(t, h2.Tensors, len(h.Tensors))
	for _, tn := range h.Tensors {
		got, ok := h2.Lookup(tn.Name)
		require.True(t, ok)
		assert.Equal(t, tn.DType, got.DType)
		assert.Equal(t, tn.Shape, got.Shape)
		assert.Equal(t, tn.ByteSize(), got.ByteSize())
	}
	if len(h.Metadata) == 0 {
		assert.Empty(t, h2.Metadata)
	} else {
		assert.Equal(t, h.Metadata, h2.Metadata)
	}
}

// fuzzSeeds returns valid writer output plus a spread of near-miss headers.
func fuzzSeeds(tb testing.TB) [][]byte {
	seeds := [][]byte{
		writeFile(tb, nil, nil),
		writeFile(tb, withData(
			TensorSpec{Name: "w", DType: F32, Shape: []int64{2, 2}},
			TensorSpec{Name: "s", DType: BF16, Shape: []int64{}},
			TensorSpec{Name: "z", DType: I8, Shape: []int64{0, 3}},
		), map[string]string{"format": "pt"}),
		nil,
		make([]byte, 8),
		rawFile(`{}`, 0),
		rawFile(`{"__metadata__":{"a":"b"}}`, 0),
		rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}   `, 8),
		rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 7),
		rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}`, 8),
		rawFile(`{"a":{"dtype":"U8","shape":[0],"data_offsets":[3,3]},"b":{"dtype":"U8","shape":[4],"data_offsets":[1,5]}}`, 8),
		rawFile(`{"a":{"dtype":"F32","shape":[1e30],"data_offsets":[0,8]}}`, 8),
		rawFile(`{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]}}`, 8),
		rawFile(`{"a":{"dtype":"U8","shape":[4294967296,4294967296],"data_offsets":[0,0]}}`, 8),
		rawFile(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}}`, 8),
		rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}`, 8),
		rawFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8),
		rawFile(`{"a":{"dtype":"XX","shape":[2],"data_offsets":[0,8]}}`, 8),
		rawFile("{\"\xff\":1}", 0),
		rawFileWithLen(1<<40, `{}`, 0),
	}
	return seeds
}
