package main

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/golden"
)

// `run --dump` on a golden case with an image and two locations writes every stage the reference's goldens.py
// records for it — vision, tokens, boxes, SAM — and each matches the golden within the limits of the stage
// tests (MODEL_SPEC §1.2–§5; fp32 weights against the float64 reference).
func TestDumpMatchesGoldens(t *testing.T) {
	tok := golden.SharedTokenizer()
	if tok == "" {
		t.Skip("LLaMA tokenizer not found in ../shared/testdata/tokenizer (the golden prompts need the real one)")
	}
	cases, err := golden.Cases()
	require.NoError(t, err)
	var c golden.Case
	for _, k := range cases {
		if k.Name == "grounded_caption_two_at" {
			c = k
		}
	}
	require.Equal(t, "grounded_caption_two_at", c.Name, "the golden case this test reads")
	dir, err := golden.BuildCheckpoint(context.Background(), c.Checkpoint, bindings.F32, t.TempDir(), tok)
	require.NoError(t, err)
	want, err := golden.Load(filepath.Join(golden.Root(), "testdata", "golden", "model", c.File))
	require.NoError(t, err)

	dump := filepath.Join(t.TempDir(), "stages.safetensors")
	code, _, stderr := runCLI("run", "--model", dir, "--image", filepath.Join(golden.Root(), c.Image), "--prefix",
		c.ForcedText, "--max-new-tokens", strconv.Itoa(c.MaxNewTokens), "--threads", "2", "--json", "--dump", dump, c.Prompt)
	require.Equal(t, 0, code, stderr)
	got, err := golden.Load(dump)
	require.NoError(t, err)

	for _, name := range []string{"prompt.input_ids", "gen.tokens", "gen.at_positions"} {
		assert.Equal(t, want[name].I64, got[name].I64, name)
	}
	for name, limit := range map[string]float64{"clip.pixels": 1e-10, "clip.features": 1e-6, "proj.out": 1e-6,
		"gen.at_hidden": 1e-6, "sam.pixels": 1e-10, "sam.image_embedding": 1e-6, "sam.sparse": 1e-6,
		"sam.mask_logits_lowres": 1e-5} {
		require.Equal(t, want[name].Shape, got[name].Shape, name)
		assert.LessOrEqual(t, golden.NMSE(got[name].F32, want[name].F32), limit, name)
	}
	for name, limit := range map[string]float64{"gen.boxes": 1e-4, "gen.boxes_pixel": 1e-2, "sam.iou": 1e-4} {
		require.Equal(t, want[name].Shape, got[name].Shape, name)
		for i, w := range want[name].F32 {
			assert.InDelta(t, w, got[name].F32[i], limit, "%s[%d]", name, i)
		}
	}
	masks := want["sam.masks"]
	require.Equal(t, masks.Shape, got["sam.masks"].Shape)
	per := int(masks.Shape[1] * masks.Shape[2])
	for i := 0; i < int(masks.Shape[0]); i++ {
		iou := golden.MaskIoU(got["sam.masks"].U8[i*per:(i+1)*per], masks.U8[i*per:(i+1)*per])
		assert.GreaterOrEqual(t, iou, 0.999, "mask %d IoU", i)
	}
}
