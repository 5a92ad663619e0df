package shards

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/internal/safetensors"
)

func spec(name string, dtype safetensors.DType, n int64) safetensors.TensorSpec {
	return safetensors.TensorSpec{Name: name, DType: dtype, Shape: []int64{n}}
}

func names(s Shard) []string {
	var out []string
	for _, t := range s.Tensors {
		out = append(out, t.Name)
	}
	return out
}

func TestPlan(t *testing.T) {
	tensors := []safetensors.TensorSpec{
		spec("a", safetensors.BF16, 10), // 20 B
		spec("b", safetensors.F32, 5),   // 20 B
		spec("c", safetensors.BF16, 40), // 80 B: over the limit alone
		spec("d", safetensors.F16, 5),   // 10 B
	}
	got := Plan(tensors, 50)
	require.Len(t, got, 3)
	assert.Equal(t, "model-00001-of-00003.safetensors", got[0].Name)
	assert.Equal(t, []string{"b", "a"}, names(got[0]), "wider elements first, so every tensor stays aligned")
	assert.Equal(t, []string{"c"}, names(got[1]))
	assert.Equal(t, []string{"d"}, names(got[2]))
	assert.Equal(t, int64(40), got[0].Bytes())

	one := Plan(tensors, 0)
	require.Len(t, one, 1, "0 means the default limit")
	assert.Equal(t, SingleFile, one[0].Name)
	assert.Equal(t, []string{"b", "a", "c", "d"}, names(one[0]))
}

// Every tensor whose size is a multiple of 64 bytes starts 64-byte aligned in the written file, whatever the
// order they were given in: the loader multiplies matrices in place.
func TestWrittenMatricesAligned(t *testing.T) {
	tensors := []safetensors.TensorSpec{
		spec("bias", safetensors.BF16, 3),    // 6 B
		spec("norm", safetensors.F32, 5),     // 20 B
		spec("q_proj", safetensors.BF16, 96), // 192 B
		spec("scale", safetensors.F16, 1),    // 2 B
		spec("up_proj", safetensors.F32, 48), // 192 B
	}
	plan := Plan(tensors, 0)
	require.Len(t, plan, 1)
	dir := t.TempDir()
	require.NoError(t, Write(context.Background(), dir, plan[0], nil,
		func(_ context.Context, ts safetensors.TensorSpec, w io.Writer) error {
			_, err := w.Write(make([]byte, byteSize(ts)))
			return err
		}))
	h, err := safetensors.ReadHeaderFile(filepath.Join(dir, plan[0].Name))
	require.NoError(t, err)
	for _, name := range []string{"q_proj", "up_proj"} {
		tn, ok := h.Lookup(name)
		require.True(t, ok)
		assert.Zero(t, (h.DataOffset+tn.Begin)%64, "%s at file offset %d", name, h.DataOffset+tn.Begin)
	}
	assert.Equal(t, []string{"up_proj", "q_proj", "norm", "bias", "scale"}, names(plan[0]),
		"multiples of 64 bytes first, then by decreasing element size")
}

func TestWriteIndexAndReadItBack(t *testing.T) {
	dir := t.TempDir()
	planned := Plan([]safetensors.TensorSpec{spec("a", safetensors.F32, 4), spec("b", safetensors.F32, 4)}, 16)
	fill := func(_ context.Context, t safetensors.TensorSpec, w io.Writer) error {
		_, err := w.Write(make([]byte, 16))
		return err
	}
	for _, s := range planned {
		require.NoError(t, Write(context.Background(), dir, s, nil, fill))
	}
	require.NoError(t, WriteIndex(dir, planned))
	weightMap, files, err := ReadIndex(dir, IndexFile)
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}, weightMap)
	assert.Equal(t, []string{filepath.Join(dir, "model-00001-of-00002.safetensors"), filepath.Join(dir, "model-00002-of-00002.safetensors")}, files)
	h, err := safetensors.ReadHeaderFile(files[1])
	require.NoError(t, err)
	assert.Equal(t, "b", h.Tensors[0].Name)

	require.NoError(t, WriteIndex(t.TempDir(), planned[:1]), "one shard needs no index")
}

// A fill that fails leaves neither the shard nor its temporary file.
func TestFailedWriteLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	boom := errors.New("boom")
	err := Write(context.Background(), dir, Plan([]safetensors.TensorSpec{spec("a", safetensors.F32, 4)}, 0)[0], nil,
		func(context.Context, safetensors.TensorSpec, io.Writer) error { return boom })
	require.ErrorIs(t, err, boom)
	assert.Contains(t, err.Error(), "model.safetensors: tensor a")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Empty(t, entries)
}

func TestReadIndexRefusesUntrustedIndexes(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"not JSON", "{", "unexpected end"},
		{"empty map", `{"weight_map": {}}`, "empty weight_map"},
		{"parent directory", `{"weight_map": {"w": "../x.bin"}}`, `maps w to "../x.bin"`},
		{"subdirectory", `{"weight_map": {"w": "sub/x.bin"}}`, "not a file name in the directory"},
		{"empty name", `{"weight_map": {"w": ""}}`, `maps w to ""`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "pytorch_model.bin.index.json"), []byte(tc.body), 0o644))
			_, _, err := ReadIndex(dir, "pytorch_model.bin.index.json")
			require.ErrorIs(t, err, ErrIndex)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	_, _, err := ReadIndex(t.TempDir(), IndexFile)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestLocator(t *testing.T) {
	l := NewLocator(IndexFile, map[string]string{"a": "x.safetensors", "b": "y.safetensors", "c": "y.safetensors"})
	require.NoError(t, l.Add("a", "x.safetensors"))
	err := l.Add("a", "y.safetensors")
	require.ErrorIs(t, err, ErrIndex)
	assert.Contains(t, err.Error(), "tensor a is stored in both x.safetensors and y.safetensors")
	err = l.Add("b", "x.safetensors")
	assert.Contains(t, err.Error(), `tensor b is in x.safetensors but model.safetensors.index.json maps it to "y.safetensors"`)
	err = l.Complete()
	require.ErrorIs(t, err, ErrIndex)
	assert.Contains(t, err.Error(), "maps c to y.safetensors, which does not hold it")

	free := NewLocator(IndexFile, nil)
	require.NoError(t, free.Add("a", "x.safetensors"))
	require.NoError(t, free.Complete(), "without an index only duplicates are errors")
}
