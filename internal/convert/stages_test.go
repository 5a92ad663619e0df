package convert

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/modeldir"
	"github.com/nextchat/nextchat/internal/shards"
)

// runStages runs every stage of a model on fixed inputs (no tokenizer involved): CLIP and the projector, a
// prefill with an image's rows spliced in and a located <at>, the SAM encoder and mask decoder. Outputs are
// returned as bits, by stage name.
func runStages(t *testing.T, dir string) map[string][]uint32 {
	d, err := modeldir.Open(dir)
	require.NoError(t, err)
	m, err := bindings.OpenModel(bindings.ModelParams{Config: d.Config, Files: d.Files, Tensors: d.Refs(),
		Backend: bindings.CPU, Threads: 2})
	require.NoError(t, err)
	defer m.Close()
	cfg := d.Config
	ramp := func(n int, scale float32) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(i%97-48) * scale
		}
		return v
	}
	out := map[string][]uint32{}
	projected, clip, err := m.EncodeImages(ramp(3*cfg.Vision.ImageSize*cfg.Vision.ImageSize, 0.03), 1)
	require.NoError(t, err)
	out["proj.out"], out["clip.features"] = bits(projected), bits(clip)

	cache, err := m.NewCache(16, 16, bindings.F32)
	require.NoError(t, err)
	defer cache.Close()
	seq, err := cache.NewSeq(bindings.Greedy)
	require.NoError(t, err)
	defer seq.Close()
	// BOS, <im_start>, the image rows, <im_end>, "Answer:", <at>
	tokens := []int32{1, 32001}
	for range cfg.ImageTokens() {
		tokens = append(tokens, 32000)
	}
	tokens = append(tokens, 32002, 673, 29901, int32(cfg.AtTokenID))
	embeds := make([]float32, len(tokens)*cfg.HiddenSize)
	rows := make([]bool, len(tokens))
	copy(embeds[2*cfg.HiddenSize:], projected)
	for i := range cfg.ImageTokens() {
		rows[2+i] = true
	}
	locate := make([]bool, len(tokens))
	locate[len(tokens)-1] = true
	res, err := m.Step(cache, []bindings.StepInput{{Seq: seq, Tokens: tokens, Embeds: embeds, EmbedRows: rows,
		AllHidden: true, Logits: true, Locate: locate}})
	require.NoError(t, err)
	require.Len(t, res[0].Boxes, 1)
	out["llm.prefill_hidden"], out["llm.prefill_logits"] = bits(res[0].Hidden), bits(res[0].Logits)
	out["gen.at_hidden"] = bits(res[0].AtHidden)
	box := res[0].Boxes[0][:]
	out["gen.boxes"] = bits(box)

	embedding, err := m.SAMEncodeImage(ramp(3*cfg.SAM.ImageSize*cfg.SAM.ImageSize, 0.02))
	require.NoError(t, err)
	out["sam.image_embedding"] = bits(embedding)
	masks, err := m.SAMDecodeMasks(embedding, res[0].AtHidden, box, 40, 30)
	require.NoError(t, err)
	out["sam.mask_logits_lowres"], out["sam.iou"], out["sam.sparse"] = bits(masks.LowRes), bits(masks.IoU), bits(masks.Sparse)
	for _, v := range masks.Masks {
		out["sam.masks"] = append(out["sam.masks"], uint32(v))
	}
	return out
}

// The acceptance check at the engine: the converted release and the same weights loaded as safetensors
// directly compute bit-identical stage tensors.
func TestConvertedModelRunsLikeTheSafetensors(t *testing.T) {
	_, converted, err := convertFixture(t, nil)
	require.NoError(t, err)
	direct := t.TempDir()
	require.NoError(t, shards.CopyFile(filepath.Join(releaseDir, "config.json"), filepath.Join(direct, "config.json")))
	require.NoError(t, shards.CopyFile(expectedFile, filepath.Join(direct, "model.safetensors")))
	require.NoError(t, shards.CopyFile(standInTokenizer(t), filepath.Join(direct, "tokenizer.model")))

	want := runStages(t, direct)
	got := runStages(t, converted)
	require.Len(t, want["sam.masks"], 40*30)
	for stage, w := range want {
		assert.True(t, slices.Equal(w, got[stage]), "%s differs", stage)
	}
}
