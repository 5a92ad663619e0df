package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/internal/convert"
	"github.com/nextchat/nextchat/internal/shards"
)

var convertFixture = filepath.Join("..", "..", "testdata", "convert")

// The acceptance run: the .bin release converted with `nextchat convert` answers a grounded question
// with the same stage tensors (--dump), tokens, boxes and masks as the same weights loaded as safetensors.
func TestConvertThenRunMatchesTheSafetensors(t *testing.T) {
	tok := sharedTokenizer(t)
	converted := filepath.Join(t.TempDir(), "converted")
	code, out, stderr := runCLI("convert", "--from", filepath.Join(convertFixture, "release"), "--to", converted,
		"--tokenizer", tok, "--shard-bytes", "200000")
	require.Equal(t, 0, code, stderr)
	for _, want := range []string{"kept       201 tensors", "dropped    3 tensors", "buffers the engine recomputes",
		"checked    every tensor against the spec"} {
		assert.Contains(t, out, want)
	}
	assert.Contains(t, stderr, "convert [", "a progress bar")
	assert.Contains(t, stderr, "/s", "with a rate")

	direct := t.TempDir()
	require.NoError(t, shards.CopyFile(filepath.Join(convertFixture, "expected", "model.safetensors"), filepath.Join(direct, "model.safetensors")))
	require.NoError(t, shards.CopyFile(filepath.Join(convertFixture, "release", "config.json"), filepath.Join(direct, "config.json")))
	require.NoError(t, shards.CopyFile(tok, filepath.Join(direct, "tokenizer.model")))

	image := filepath.Join("..", "..", "testdata", "images", "wide_64x48.png")
	answer := func(model string) (string, []byte) {
		dump := filepath.Join(t.TempDir(), "stages.safetensors")
		code, out, stderr := runCLI("run", "--model", model, "--image", image, "--max-new-tokens", "6", "--prefix", "Answer: <at>",
			"--iou-threshold", "0", "--threads", "2", "--json", "--dump", dump, "Where is the red circle?")
		require.Equal(t, 0, code, stderr)
		b, err := os.ReadFile(dump)
		require.NoError(t, err)
		return out, b
	}
	wantJSON, wantDump := answer(direct)
	gotJSON, gotDump := answer(converted)
	assert.Equal(t, wantDump, gotDump, "stage tensors bit for bit")
	assert.JSONEq(t, wantJSON, gotJSON)
	var r runJSON
	require.NoError(t, json.Unmarshal([]byte(gotJSON), &r))
	require.Len(t, r.Locations, 1, "the forced <at> has a box and a mask")
}

func TestConvertJSONAndErrors(t *testing.T) {
	to := filepath.Join(t.TempDir(), "m")
	stand := filepath.Join(t.TempDir(), "tokenizer.model")
	require.NoError(t, os.WriteFile(stand, []byte("stand-in"), 0o644))
	code, out, stderr := runCLI("convert", "--from", filepath.Join(convertFixture, "release"), "--to", to, "--tokenizer", stand,
		"--dtype", "f16", "--json", "-v")
	require.Equal(t, 0, code, stderr)
	var rep convert.Report
	require.NoError(t, json.Unmarshal([]byte(out), &rep))
	assert.Equal(t, map[string]int{"F16": 201}, rep.TensorsByDType)
	assert.Equal(t, 58, rep.Converted)
	assert.Len(t, rep.Dropped, 52)

	code, _, stderr = runCLI("convert", "--from", filepath.Join(convertFixture, "release"), "--to", to, "--tokenizer", stand)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "pass --force")

	code, out, stderr = runCLI("convert", "--from", filepath.Join(convertFixture, "release"), "--to", to, "--tokenizer", stand, "--force", "-v")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "dropped: model.vision_tower.vision_model.post_layernorm.weight (unused)")

	code, _, stderr = runCLI("convert", "--from", t.TempDir(), "--to", filepath.Join(t.TempDir(), "x"))
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "config.json")
}
