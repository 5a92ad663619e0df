package convert

import (
	"context"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/internal/modeldir"
	"github.com/nextchat/nextchat/internal/safetensors"
	"github.com/nextchat/nextchat/internal/shards"
)

// The fixture of tools/reference/make_bin_fixture.py: a tiny release as .bin shards, and the same tensors as
// the safetensors library wrote them.
var (
	releaseDir   = filepath.Join("..", "..", "testdata", "convert", "release")
	expectedFile = filepath.Join("..", "..", "testdata", "convert", "expected", "model.safetensors")
)

// storedTensor is a tensor as a file holds it.
type storedTensor struct {
	DType safetensors.DType
	Shape []int64
	Bytes []byte
}

// readSafetensors reads every tensor of one safetensors file.
func readSafetensors(t *testing.T, path string) map[string]storedTensor {
	t.Helper()
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	st, err := f.Stat()
	require.NoError(t, err)
	h, err := safetensors.ParseHeader(f, st.Size())
	require.NoError(t, err)
	out := map[string]storedTensor{}
	for _, tn := range h.Tensors {
		b, err := io.ReadAll(h.Section(f, tn))
		require.NoError(t, err)
		out[tn.Name] = storedTensor{tn.DType, tn.Shape, b}
	}
	return out
}

// readModel reads every tensor of a model directory, through modeldir as the engine finds them.
func readModel(t *testing.T, dir string) map[string]storedTensor {
	t.Helper()
	d, err := modeldir.Open(dir)
	require.NoError(t, err)
	out := map[string]storedTensor{}
	for _, path := range d.Files {
		for name, tn := range readSafetensors(t, path) {
			out[name] = tn
		}
	}
	return out
}

// standInTokenizer is enough to convert and load: only running prompts needs the real one.
func standInTokenizer(t *testing.T) string {
	p := filepath.Join(t.TempDir(), "tokenizer.model")
	require.NoError(t, os.WriteFile(p, []byte("stand-in"), 0o644))
	return p
}

// convertFixture converts the release fixture into a fresh directory with the options edit sets.
func convertFixture(t *testing.T, edit func(*Options)) (Report, string, error) {
	o := Options{From: releaseDir, To: filepath.Join(t.TempDir(), "out"), Tokenizer: standInTokenizer(t)}
	if edit != nil {
		edit(&o)
	}
	rep, err := Convert(context.Background(), o)
	return rep, o.To, err
}

// safetensorsRelease is the fixture as an HF-style safetensors directory: the expected weights (sharded when
// shardBytes > 0) with the release's config and side files. edit may change the tensors first.
func safetensorsRelease(t *testing.T, shardBytes int64, edit func(map[string]storedTensor)) string {
	t.Helper()
	tensors := readSafetensors(t, expectedFile)
	if edit != nil {
		edit(tensors)
	}
	dir := t.TempDir()
	writeTensors(t, dir, tensors, shardBytes)
	for _, name := range append([]string{modeldir.ConfigFile}, sideFiles...) {
		require.NoError(t, shards.CopyFile(filepath.Join(releaseDir, name), filepath.Join(dir, name)))
	}
	return dir
}

// writeTensors writes tensors into dir as sharded safetensors with an index.
func writeTensors(t *testing.T, dir string, tensors map[string]storedTensor, shardBytes int64) {
	var layout []safetensors.TensorSpec
	for name, tn := range tensors {
		layout = append(layout, safetensors.TensorSpec{Name: name, DType: tn.DType, Shape: tn.Shape})
	}
	planned := shards.Plan(layout, shardBytes)
	for _, s := range planned {
		require.NoError(t, shards.Write(context.Background(), dir, s, nil, func(_ context.Context, ts safetensors.TensorSpec, w io.Writer) error {
			_, err := w.Write(tensors[ts.Name].Bytes)
			return err
		}))
	}
	require.NoError(t, shards.WriteIndex(dir, planned))
}

// bits makes float slices comparable bit for bit (NaN == NaN, -0 != +0).
func bits(v []float32) []uint32 {
	out := make([]uint32, len(v))
	for i, x := range v {
		out[i] = math.Float32bits(x)
	}
	return out
}
