package safetensors

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

// rawFile assembles a file from a literal header and dataLen zero bytes, with
// the length prefix computed from the header.
func rawFile(header string, dataLen int) []byte {
	return rawFileWithLen(uint64(len(header)), header, dataLen)
}

// rawFileWithLen is rawFile with a forged length prefix.
func rawFileWithLen(n uint64, header string, dataLen int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, n)
	b = append(b, header...)
	return append(b, make([]byte, dataLen)...)
}

// parseBytes parses an in-memory file.
func parseBytes(b []byte) (*Header, error) {
	return ParseHeader(bytes.NewReader(b), int64(len(b)))
}

// tensorData pairs a spec with the bytes to write for it.
type tensorData struct {
	spec TensorSpec
	data []byte
}

// pattern returns n deterministic, position-dependent bytes so that a tensor
// read from the wrong offset does not compare equal by accident.
func pattern(n int64, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7) + seed
	}
	return b
}

// withData builds tensorData for specs, filling each with a pattern.
func withData(specs ...TensorSpec) []tensorData {
	out := make([]tensorData, len(specs))
	for i, s := range specs {
		size, err := byteSize(s.DType, s.Shape)
		if err != nil {
			panic(err)
		}
		out[i] = tensorData{spec: s, data: pattern(size, byte(i))}
	}
	return out
}

// writeFile writes tensors with a Writer, alternating between WriteTensor and
// chunked TensorWriter streaming so both paths are exercised.
func writeFile(t testing.TB, tensors []tensorData, metadata map[string]string) []byte {
	t.Helper()
	specs := make([]TensorSpec, len(tensors))
	for i, td := range tensors {
		specs[i] = td.spec
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, specs, metadata)
	require.NoError(t, err)
	for i, td := range tensors {
		if i%2 == 0 {
			require.NoError(t, w.WriteTensor(td.spec.Name, td.data))
			continue
		}
		tw, err := w.TensorWriter(td.spec.Name)
		require.NoError(t, err)
		for rest := td.data; len(rest) > 0; {
			n := min(3, len(rest))
			written, err := tw.Write(rest[:n])
			require.NoError(t, err)
			require.Equal(t, n, written)
			rest = rest[n:]
		}
	}
	require.NoError(t, w.Close())
	return buf.Bytes()
}

// checkInvariants asserts everything ParseHeader promises about a header it
// accepted for a file of fileSize bytes.
func checkInvariants(t testing.TB, h *Header, fileSize int64) {
	t.Helper()
	require.Equal(t, fileSize, h.FileSize)
	require.GreaterOrEqual(t, h.DataOffset, int64(lengthPrefixSize+1))
	require.LessOrEqual(t, h.DataOffset, fileSize)
	dataSize := fileSize - h.DataOffset
	names := make(map[string]bool, len(h.Tensors))
	var prevEnd int64 // end of the last non-empty tensor
	for i, tn := range h.Tensors {
		require.Truef(t, tn.DType.Known(), "tensor %q dtype %q", tn.Name, tn.DType)
		require.Falsef(t, names[tn.Name], "duplicate tensor %q", tn.Name)
		names[tn.Name] = true
		for _, d := range tn.Shape {
			require.GreaterOrEqual(t, d, int64(0))
		}
		require.GreaterOrEqual(t, tn.Begin, int64(0))
		require.LessOrEqual(t, tn.Begin, tn.End)
		require.LessOrEqual(t, tn.End, dataSize)
		n := tn.NumElements()
		require.GreaterOrEqual(t, n, int64(0))
		require.Equal(t, tn.End-tn.Begin, n*int64(tn.DType.Size()))
		if i > 0 {
			require.LessOrEqual(t, h.Tensors[i-1].Begin, tn.Begin, "tensors not sorted by Begin")
		}
		if tn.ByteSize() > 0 {
			require.GreaterOrEqualf(t, tn.Begin, prevEnd, "tensor %q overlaps its predecessor", tn.Name)
			prevEnd = tn.End
		}
		got, ok := h.Lookup(tn.Name)
		require.True(t, ok)
		require.Equal(t, tn, got)
	}
}
