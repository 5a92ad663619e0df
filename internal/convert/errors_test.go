package convert

import (
	"archive/zip"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/internal/safetensors"
	"github.com/nextchat/nextchat/internal/shards"
	"github.com/nextchat/nextchat/internal/torchbin"
)

// copyRelease copies the .bin fixture so a test can break it.
func copyRelease(t *testing.T) string {
	dir := t.TempDir()
	require.NoError(t, os.CopyFS(dir, os.DirFS(releaseDir)))
	return dir
}

// Inputs that cannot become a model are refused with the reason, and no output is left behind.
func TestBrokenInputs(t *testing.T) {
	setF16 := func(name string, bits uint16) func(map[string]storedTensor) {
		return func(m map[string]storedTensor) {
			tn := m[name]
			b := append([]byte(nil), tn.Bytes...)
			binary.LittleEndian.PutUint16(b[2:], bits)
			tn.Bytes = b
			m[name] = tn
		}
	}
	const norm = "model.norm.weight"
	tests := []struct {
		name  string
		from  func(t *testing.T) string
		edit  func(*Options)
		is    error
		wants []string
	}{
		{name: "missing tensors", from: func(t *testing.T) string {
			return safetensorsRelease(t, 0, func(m map[string]storedTensor) { delete(m, norm); delete(m, "lm_head.weight") })
		}, is: ErrInvalid, wants: []string{"2 problem(s)", "missing " + norm, "missing lm_head.weight"}},
		{name: "no CLIP tower", from: func(t *testing.T) string {
			return safetensorsRelease(t, 0, func(m map[string]storedTensor) {
				for name := range m {
					if len(name) > len(clipPrefix) && name[:len(clipPrefix)] == clipPrefix {
						delete(m, name)
					}
				}
			})
		}, is: ErrInvalid, wants: []string{"missing model.vision_tower.vision_model.embeddings.class_embedding", "... and", "pass --clip DIR"}},
		{name: "wrong shape", from: func(t *testing.T) string {
			return safetensorsRelease(t, 0, func(m map[string]storedTensor) {
				tn := m[norm]
				tn.Shape = []int64{2, 2}
				m[norm] = tn
			})
		}, is: ErrInvalid, wants: []string{norm + " (model.safetensors): shape [2 2], the config implies [4]"}},
		{name: "integer weights", from: func(t *testing.T) string {
			return safetensorsRelease(t, 0, func(m map[string]storedTensor) {
				tn := m[norm]
				tn.DType = safetensors.I16
				m[norm] = tn
			})
		}, is: ErrInvalid, wants: []string{"dtype I16, want F32, F16 or BF16"}},
		{name: "NaN weight", from: func(t *testing.T) string {
			return safetensorsRelease(t, 0, setF16(norm, 0x7fc0))
		}, wants: []string{"tensor " + norm + ": element 1 is NaN: the checkpoint is corrupt"}},
		{name: "f16 overflow", from: func(t *testing.T) string {
			return safetensorsRelease(t, 0, setF16(norm, 0x4780)) // bf16 65536
		}, edit: func(o *Options) { o.DType = safetensors.F16 }, wants: []string{"tensor " + norm + ": element 1 (65536) overflows F16"}},
		{name: "hostile pickle", from: func(t *testing.T) string {
			dir := copyRelease(t)
			evil := []byte("\x80\x02cos\nsystem\nX\x02\x00\x00\x00idtR.")
			writeZip(t, filepath.Join(dir, "pytorch_model-00002-of-00003.bin"), evil)
			return dir
		}, is: torchbin.ErrForbidden, wants: []string{"pytorch_model-00002-of-00003.bin", `global "os.system"`}},
		{name: "index disagrees", from: func(t *testing.T) string {
			dir := copyRelease(t)
			weightMap, _, err := shards.ReadIndex(dir, torchIndexFile)
			require.NoError(t, err)
			weightMap[norm] = "pytorch_model-00003-of-00003.bin"
			require.NoError(t, shards.WriteJSON(filepath.Join(dir, torchIndexFile), map[string]any{"weight_map": weightMap}))
			return dir
		}, is: shards.ErrIndex, wants: []string{"tensor " + norm + " is in pytorch_model-00002-of-00003.bin but pytorch_model.bin.index.json maps it to"}},
		{name: "no weights", from: func(t *testing.T) string {
			dir := t.TempDir()
			require.NoError(t, shards.CopyFile(filepath.Join(releaseDir, "config.json"), filepath.Join(dir, "config.json")))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "training_args.bin"), []byte("not a state dict"), 0o644))
			return dir
		}, is: ErrInvalid, wants: []string{"holds no weights: want pytorch_model*.bin"}},
		{name: "no config", from: func(t *testing.T) string { return t.TempDir() }, is: ErrInvalid, wants: []string{"config.json"}},
		{name: "no tokenizer", from: func(t *testing.T) string { return releaseDir },
			edit: func(o *Options) { o.Tokenizer = "" }, is: ErrInvalid, wants: []string{"pass --tokenizer FILE"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			from := tc.from(t)
			_, out, err := convertFixture(t, func(o *Options) {
				o.From = from
				if tc.edit != nil {
					tc.edit(o)
				}
			})
			require.Error(t, err)
			if tc.is != nil {
				assert.ErrorIs(t, err, tc.is)
			}
			for _, w := range tc.wants {
				assert.Contains(t, err.Error(), w)
			}
			assert.NoDirExists(t, out)
			entries, err := os.ReadDir(filepath.Dir(out))
			require.NoError(t, err)
			assert.Empty(t, entries, "no temporary directory left")
		})
	}
}

// writeZip replaces a shard with a torch-style archive holding only data.pkl.
func writeZip(t *testing.T, path string, pkl []byte) {
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	zw := zip.NewWriter(f)
	w, err := zw.CreateHeader(&zip.FileHeader{Name: "archive/data.pkl", Method: zip.Store})
	require.NoError(t, err)
	_, err = w.Write(pkl)
	require.NoError(t, err)
	require.NoError(t, zw.Close())
}

// The output directory: a model there is replaced only with Force; anything else, or the input itself, never.
func TestOutputDirectoryRules(t *testing.T) {
	_, out, err := convertFixture(t, nil)
	require.NoError(t, err)

	_, err = Convert(context.Background(), Options{From: releaseDir, To: out, Tokenizer: standInTokenizer(t)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "already holds a model; pass --force")

	marker := filepath.Join(out, "old-file")
	require.NoError(t, os.WriteFile(marker, nil, 0o644))
	_, err = Convert(context.Background(), Options{From: releaseDir, To: out, Tokenizer: standInTokenizer(t), Force: true})
	require.NoError(t, err)
	assert.NoFileExists(t, marker, "the old model is replaced, not merged")
	readModel(t, out)

	notModel := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(notModel, "notes.txt"), nil, 0o644))
	_, err = Convert(context.Background(), Options{From: releaseDir, To: notModel, Tokenizer: standInTokenizer(t), Force: true})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "holds no model (no config.json); refusing to replace it")

	src := copyRelease(t)
	_, err = Convert(context.Background(), Options{From: src, To: src, Force: true})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "would replace the input")
	_, err = Convert(context.Background(), Options{From: src, To: filepath.Dir(src), Force: true})
	assert.Contains(t, err.Error(), "would replace the input")
	assert.FileExists(t, filepath.Join(src, "config.json"))

	_, err = Convert(context.Background(), Options{From: src, To: filepath.Join(t.TempDir(), "x"), DType: safetensors.F32})
	assert.Contains(t, err.Error(), "keep, bf16 or f16")
}

// A cancelled conversion stops and leaves nothing behind.
func TestCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	to := filepath.Join(t.TempDir(), "out")
	_, err := Convert(ctx, Options{From: releaseDir, To: to, Tokenizer: standInTokenizer(t)})
	require.ErrorIs(t, err, context.Canceled)
	assert.NoDirExists(t, to)
	entries, err := os.ReadDir(filepath.Dir(to))
	require.NoError(t, err)
	assert.Empty(t, entries)
}
