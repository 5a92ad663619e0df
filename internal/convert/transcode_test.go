package convert

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/internal/half"
	"github.com/nextchat/nextchat/internal/progress"
	"github.com/nextchat/nextchat/internal/safetensors"
)

// memTensor is a source tensor over bytes in memory.
func memTensor(dtype safetensors.DType, data []byte) sourceTensor {
	n := int64(len(data) / dtype.Size())
	return sourceTensor{name: "t", dtype: dtype, shape: []int64{n}, numel: n, file: "mem",
		data: io.NewSectionReader(bytes.NewReader(data), 0, int64(len(data)))}
}

// Tensors several chunks long (not a whole number of them) are copied and converted element for element
// across chunk boundaries, whatever the two element sizes.
func TestTranscodeAcrossChunks(t *testing.T) {
	const n = chunkBytes*3/4 + 123 // elements: 3 chunks of 4-byte values, 1.5 of 2-byte ones
	f32 := make([]byte, 4*n)
	for i := range n {
		binary.LittleEndian.PutUint32(f32[4*i:], math.Float32bits(float32(i%1000-500)/7))
	}
	bf16 := make([]byte, 2*n)
	for i := range n {
		binary.LittleEndian.PutUint16(bf16[2*i:], half.BF16FromF32(math.Float32frombits(binary.LittleEndian.Uint32(f32[4*i:]))))
	}
	want := func(src []byte, from, to safetensors.DType) []byte {
		out := make([]byte, n*to.Size())
		for i := range n {
			encode(out[i*to.Size():], to, decode(src[i*from.Size():], from))
		}
		return out
	}
	tests := []struct {
		name     string
		from, to safetensors.DType
		src      []byte
	}{
		{"copy BF16", safetensors.BF16, safetensors.BF16, bf16},
		{"copy F32", safetensors.F32, safetensors.F32, f32},
		{"F32 to BF16", safetensors.F32, safetensors.BF16, f32},
		{"BF16 to F16", safetensors.BF16, safetensors.F16, bf16},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var progressOut bytes.Buffer
			bar := progress.New(&progressOut, "t", int64(n*tc.to.Size()))
			var out bytes.Buffer
			require.NoError(t, newTranscoder(bar).copyTensor(context.Background(), memTensor(tc.from, tc.src), tc.to, &out))
			bar.Finish()
			expected := tc.src
			if tc.from != tc.to {
				expected = want(tc.src, tc.from, tc.to)
			}
			require.Equal(t, len(expected), out.Len())
			assert.True(t, bytes.Equal(expected, out.Bytes()), "bytes differ")
			assert.Contains(t, progressOut.String(), "100%")
		})
	}
}

// Non-finite values are found in any chunk and named by element; narrowing reports overflow and counts values
// flushed to zero.
func TestTranscodeChecks(t *testing.T) {
	const n = chunkBytes/2 + 10
	bf16 := make([]byte, 2*n)
	binary.LittleEndian.PutUint16(bf16[2*(n-3):], 0x7f80) // +Inf in the second chunk
	err := newTranscoder(nil).copyTensor(context.Background(), memTensor(safetensors.BF16, bf16), safetensors.BF16, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "element 2097159 is +Inf")

	tiny := make([]byte, 4)
	binary.LittleEndian.PutUint16(tiny, half.BF16FromF32(1e-9))     // below f16's smallest subnormal
	binary.LittleEndian.PutUint16(tiny[2:], half.BF16FromF32(1e-3)) // fine
	tc := newTranscoder(nil)
	require.NoError(t, tc.copyTensor(context.Background(), memTensor(safetensors.BF16, tiny), safetensors.F16, io.Discard))
	assert.Equal(t, int64(1), tc.flushed)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = newTranscoder(nil).copyTensor(ctx, memTensor(safetensors.BF16, bf16), safetensors.BF16, io.Discard)
	assert.ErrorIs(t, err, context.Canceled)
}
