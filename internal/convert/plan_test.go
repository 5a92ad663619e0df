package convert

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/safetensors"
)

// Every input tensor is kept or dropped for one stated reason.
func TestSelectionReasons(t *testing.T) {
	spec := []bindings.TensorSpec{
		{Name: "model.norm.weight", Shape: []int64{4}, Used: true},
		{Name: "model.vision_tower.vision_model.post_layernorm.weight", Shape: []int64{8}, Used: false},
	}
	in := func(name string, dtype safetensors.DType, shape ...int64) sourceTensor {
		n := int64(1)
		for _, d := range shape {
			n *= d
		}
		return sourceTensor{name: name, dtype: dtype, shape: shape, numel: n, file: "f.bin"}
	}
	tensors := []sourceTensor{
		in("model.vision_tower.vision_model.post_layernorm.weight", safetensors.BF16, 8),
		in("model.layers.0.self_attn.rotary_emb.inv_freq", safetensors.F32, 2),
		in("model.vision_tower.vision_model.embeddings.position_ids", safetensors.I64, 1, 5),
		in("sam.model.pixel_mean", safetensors.F32, 3, 1, 1),
		in("sam.model.pixel_std", safetensors.F32, 3, 1, 1),
		in("some.other.weight", safetensors.F16, 2),
		in("model.norm.weight", safetensors.BF16, 4),
	}
	sel, err := selectTensors(spec, tensors, "", false)
	require.NoError(t, err)
	require.Len(t, sel.kept, 1)
	assert.Equal(t, safetensors.BF16, sel.kept[0].out, "keep")
	assert.Equal(t, []Dropped{
		{"model.vision_tower.vision_model.post_layernorm.weight", DropUnused, 16},
		{"model.layers.0.self_attn.rotary_emb.inv_freq", DropBuffer, 8},
		{"model.vision_tower.vision_model.embeddings.position_ids", DropBuffer, 40},
		{"sam.model.pixel_mean", DropBuffer, 12},
		{"sam.model.pixel_std", DropBuffer, 12},
		{"some.other.weight", DropUnknown, 4},
	}, sel.dropped)

	sel, err = selectTensors(spec, tensors, safetensors.F16, true)
	require.NoError(t, err)
	require.Len(t, sel.kept, 2)
	assert.Equal(t, "model.norm.weight", sel.kept[0].src.name, "spec order")
	assert.Equal(t, safetensors.F16, sel.kept[1].out)
}

// Problems are listed up to a bound, the rest counted.
func TestProblemsAreBounded(t *testing.T) {
	var spec []bindings.TensorSpec
	for i := range 25 {
		spec = append(spec, bindings.TensorSpec{Name: string(rune('a'+i)) + ".weight", Shape: []int64{1}, Used: true})
	}
	_, err := selectTensors(spec, nil, "", false)
	require.ErrorIs(t, err, ErrInvalid)
	assert.Contains(t, err.Error(), "25 problem(s)")
	assert.Contains(t, err.Error(), "missing t.weight")
	assert.NotContains(t, err.Error(), "missing u.weight")
	assert.Contains(t, err.Error(), "... and 5 more")
	assert.NotContains(t, err.Error(), "--clip")
}
