// Package config reads and writes a model directory's config.json: the released NExT-Chat fields
// (MODEL_SPEC §1.1) plus the vision and SAM dimensions the release leaves implicit (§1.2, §5), which
// default to the released architecture so the official config.json loads unchanged.
package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrInvalid marks a config.json that cannot describe a NExT-Chat model this engine runs.
var ErrInvalid = errors.New("invalid config")

// Vision holds the CLIP vision tower's dimensions (MODEL_SPEC §1.2), HF CLIPVisionConfig names.
type Vision struct {
	HiddenSize        int     `json:"hidden_size"`
	IntermediateSize  int     `json:"intermediate_size"`
	NumHiddenLayers   int     `json:"num_hidden_layers"`
	NumAttentionHeads int     `json:"num_attention_heads"`
	ImageSize         int     `json:"image_size"`
	PatchSize         int     `json:"patch_size"`
	LayerNormEps      float32 `json:"layer_norm_eps"`
	HiddenAct         string  `json:"hidden_act"`
}

// SAM holds the segment-anything dimensions (MODEL_SPEC §5), named after build_sam's arguments.
type SAM struct {
	ImageSize               int     `json:"image_size"`
	PatchSize               int     `json:"patch_size"`
	EncoderEmbedDim         int     `json:"encoder_embed_dim"`
	EncoderDepth            int     `json:"encoder_depth"`
	EncoderNumHeads         int     `json:"encoder_num_heads"`
	EncoderMLPDim           int     `json:"encoder_mlp_dim"`
	WindowSize              int     `json:"window_size"`
	GlobalAttnIndexes       []int   `json:"global_attn_indexes"`
	LayerNormEps            float32 `json:"layer_norm_eps"`
	PromptEmbedDim          int     `json:"prompt_embed_dim"`
	MaskInChans             int     `json:"mask_in_chans"`
	DecoderDepth            int     `json:"decoder_depth"`
	DecoderNumHeads         int     `json:"decoder_num_heads"`
	DecoderMLPDim           int     `json:"decoder_mlp_dim"`
	AttentionDownsampleRate int     `json:"attention_downsample_rate"`
	NumMultimaskOutputs     int     `json:"num_multimask_outputs"`
	IoUHeadHiddenDim        int     `json:"iou_head_hidden_dim"`
	IoUHeadDepth            int     `json:"iou_head_depth"`
}

// Config is a whole model's configuration. JSON names are the release's where it has them.
type Config struct {
	Architectures         []string `json:"architectures"`
	ModelType             string   `json:"model_type"`
	VocabSize             int      `json:"vocab_size"`
	HiddenSize            int      `json:"hidden_size"`
	IntermediateSize      int      `json:"intermediate_size"`
	NumHiddenLayers       int      `json:"num_hidden_layers"`
	NumAttentionHeads     int      `json:"num_attention_heads"`
	NumKeyValueHeads      int      `json:"num_key_value_heads"`
	MaxPositionEmbeddings int      `json:"max_position_embeddings"`
	RMSNormEps            float32  `json:"rms_norm_eps"`
	RopeTheta             float32  `json:"rope_theta"`
	HiddenAct             string   `json:"hidden_act"`
	TieWordEmbeddings     bool     `json:"tie_word_embeddings"`
	BOSTokenID            int      `json:"bos_token_id"`
	EOSTokenID            int      `json:"eos_token_id"`
	PadTokenID            int      `json:"pad_token_id"`

	MMHiddenSize        int  `json:"mm_hidden_size"`
	MMDepth             int  `json:"mm_depth"`
	MMVisionSelectLayer int  `json:"mm_vision_select_layer"`
	MMUseImStartEnd     bool `json:"mm_use_im_start_end"`

	LocHiddenSize   int `json:"loc_hidden_size"`
	SegPromptTokens int `json:"seg_prompt_tokens"`
	AtTokenID       int `json:"at_token_id"`    // <at>, MODEL_SPEC §2.1
	BoxesTokenID    int `json:"boxes_token_id"` // <boxes>

	Vision Vision `json:"vision_config"`
	SAM    SAM    `json:"sam_config"`
}

// ImageTokens is the number of <im_patch> rows an image becomes: one per CLIP patch (576 for 336/14).
func (c Config) ImageTokens() int {
	g := c.Vision.ImageSize / c.Vision.PatchSize
	return g * g
}

// HeadDim is the LLM's per-head width.
func (c Config) HeadDim() int { return c.HiddenSize / c.NumAttentionHeads }

// requiredKeys have no sensible default: a config.json without them describes some other model.
var requiredKeys = []string{"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads"}

// Parse reads config.json bytes over defaults (the released architecture), so keys the release does not write
// (vision_config, sam_config, ...) take the released values. It checks the choices this engine supports; the
// dimensions' consistency is checked by the core (bindings.ValidateConfig).
func Parse(data []byte, defaults Config) (Config, error) {
	var keys map[string]json.RawMessage
	if err := json.Unmarshal(data, &keys); err != nil {
		return Config{}, fmt.Errorf("%w: config.json is not a JSON object: %v", ErrInvalid, err)
	}
	for _, k := range requiredKeys {
		if _, ok := keys[k]; !ok {
			return Config{}, fmt.Errorf("%w: config.json has no %q", ErrInvalid, k)
		}
	}
	c := defaults
	if err := json.Unmarshal(data, &c); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if _, ok := keys["num_key_value_heads"]; !ok {
		c.NumKeyValueHeads = c.NumAttentionHeads // HF LlamaConfig: MHA unless stated
	}
	if err := c.checkSupported(keys); err != nil {
		return Config{}, err
	}
	return c, nil
}

// checkSupported rejects released-config choices this engine does not implement, with the reason.
func (c Config) checkSupported(keys map[string]json.RawMessage) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	switch {
	case c.HiddenAct != "silu":
		return bad("hidden_act %q: only silu (LLaMA SwiGLU, §1.1) is supported", c.HiddenAct)
	case c.Vision.HiddenAct != "quick_gelu":
		return bad("vision_config.hidden_act %q: only quick_gelu (CLIP, §1.2) is supported", c.Vision.HiddenAct)
	case c.TieWordEmbeddings:
		return bad("tie_word_embeddings=true: the release has an untied lm_head (§1.1)")
	case c.MMDepth != 2:
		return bad("mm_depth %d: only the 2-layer GELU projector (§1.3) is supported", c.MMDepth)
	case !c.MMUseImStartEnd:
		return bad("mm_use_im_start_end=false: the release wraps images in <im_start>/<im_end> (§2.2)")
	case c.MMHiddenSize != c.Vision.HiddenSize:
		return bad("mm_hidden_size %d differs from vision_config.hidden_size %d", c.MMHiddenSize, c.Vision.HiddenSize)
	}
	if raw, ok := keys["rope_scaling"]; ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return bad("rope_scaling %s: not supported (the release has null, §1.1)", raw)
	}
	if raw, ok := keys["pretraining_tp"]; ok && !bytes.Equal(bytes.TrimSpace(raw), []byte("1")) {
		return bad("pretraining_tp %s: only 1 is supported", raw)
	}
	return nil
}

// Marshal writes the config as indented JSON, every field explicit, so a directory is self-describing.
func Marshal(c Config) ([]byte, error) {
	out, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal config: %w", err)
	}
	return append(out, '\n'), nil
}
