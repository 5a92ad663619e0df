package main

import (
	"context"
	"math/rand/v2"
	"slices"

	"github.com/nextchat/nextchat/internal/config"
)

// samEncoderFLOP is the matrix-product work of one image through SAM's image encoder as the engine runs it (§5.1):
// the patch embedding; per block q, k, v and proj over the g² tokens, q·kᵀ and p·v over whole windows (padding
// included) or the whole grid, the relative-position dot products (grid_h + grid_w per query), the MLP; the neck.
func samEncoderFLOP(s config.SAM) float64 {
	g := float64(s.ImageSize / s.PatchSize)
	T, E, M, D := g*g, float64(s.EncoderEmbedDim), float64(s.EncoderMLPDim), float64(s.PromptEmbedDim)
	flop := 2 * T * float64(3*s.PatchSize*s.PatchSize) * E
	for i := range s.EncoderDepth {
		rows, side := T, g // attention rows (queries = keys per window or grid) and the grid's side
		keys := T
		if !slices.Contains(s.GlobalAttnIndexes, i) {
			w := float64(s.WindowSize)
			perSide := float64((s.ImageSize/s.PatchSize + s.WindowSize - 1) / s.WindowSize)
			rows, side, keys = perSide*perSide*w*w, w, w*w
		}
		flop += 2*T*E*4*E + 2*2*T*E*M             // q, k, v, proj; lin1, lin2
		flop += 2*2*rows*keys*E + 2*rows*2*side*E // q·kᵀ, p·v; relative positions
	}
	return flop + 2*T*E*D + 2*T*9*D*D
}

// samDecoderFLOP is the matrix-product work per location of nc_sam_decode_masks without post-processing (§4,
// §5.2–5.3), counted as segment-anything computes it so that rates compare across implementations:
// seg_prompt_mlp, the two-way transformer, the upscaling, mask token 0's hypernetwork and the IoU head. The engine
// does less (layer 0's image-side projections once per call, the later cross attentions in an equivalent cheaper
// form: docs/ARCHITECTURE.md), so its rate is an effective one.
func samDecoderFLOP(c config.Config) float64 {
	s := c.SAM
	g := float64(s.ImageSize / s.PatchSize)
	G, D, H, M := g*g, float64(s.PromptEmbedDim), float64(c.HiddenSize), float64(s.DecoderMLPDim)
	I := D / float64(s.AttentionDownsampleRate)
	Q := float64(1 + s.NumMultimaskOutputs + 1 + c.SegPromptTokens + 2)
	tokenToImage := 2*Q*D*I + 2*2*G*D*I + 2*2*Q*G*I + 2*Q*I*D // q; k, v; q·kᵀ, p·v; out
	imageToToken := 2*G*D*I + 2*2*Q*D*I + 2*2*G*Q*I + 2*G*I*D
	layer := 2*4*Q*D*D + 2*2*Q*Q*D + tokenToImage + 2*2*Q*D*M + imageToToken
	flop := 2*H*H + 2*H*float64(c.SegPromptTokens)*D
	flop += float64(s.DecoderDepth)*layer + tokenToImage
	flop += 2*G*D*D + 2*4*G*(D/4)*(D/2) + 2*16*G*D/8 // upscaling; masks
	flop += 2*(2*D*D+D*D/8) + 2*(D*float64(s.IoUHeadHiddenDim)+float64(s.IoUHeadHiddenDim*s.IoUHeadHiddenDim)*float64(s.IoUHeadDepth-2)+float64(s.IoUHeadHiddenDim*(s.NumMultimaskOutputs+1)))
	return flop
}

// benchSAM times the image encoder on one synthetic SAM-normalized image per run, then the prompt encoder and
// mask decoder over --prompts synthetic locations of that image's embedding (low-res logits and IoU, without the
// post-processing to an image size).
func benchSAM(ctx context.Context, o benchOptions) (benchReport, error) {
	dir, m, err := openBenchModel(o)
	if err != nil {
		return benchReport{}, err
	}
	defer m.Close()
	d, err := m.SAMDims()
	if err != nil {
		return benchReport{}, err
	}
	// Pixels over the range SAM normalization produces (§4: about [-2.1, 2.6]).
	rng := rand.New(rand.NewPCG(1, 2))
	pixels := make([]float32, 3*d.ImageSize*d.ImageSize)
	for i := range pixels {
		pixels[i] = float32(rng.Float64()*4.7 - 2.1)
	}
	var embedding []float32
	var encSeconds []float64
	if o.samEncoder {
		encSeconds, err = timeRuns(ctx, o.repeat, func() error {
			embedding, err = m.SAMEncodeImage(pixels)
			return err
		})
		if err != nil {
			return benchReport{}, err
		}
	} else {
		// An image embedding's scale: the neck ends in a LayerNorm2d.
		embedding = make([]float32, d.EmbedDim*d.Grid*d.Grid)
		for i := range embedding {
			embedding[i] = float32(rng.NormFloat64())
		}
	}
	// <at> hidden states of final-RMSNorm scale and boxes spread over the image.
	hidden := make([]float32, o.prompts*d.HiddenSize)
	for i := range hidden {
		hidden[i] = float32(rng.NormFloat64())
	}
	boxes := make([]float32, 4*o.prompts)
	for i := range o.prompts {
		x, y := rng.Float32()*0.6, rng.Float32()*0.6
		copy(boxes[4*i:], []float32{x, y, x + 0.1 + rng.Float32()*0.3, y + 0.1 + rng.Float32()*0.3})
	}
	decSeconds, err := timeRuns(ctx, o.repeat, func() error {
		_, err := m.SAMDecodeMasks(embedding, hidden, boxes, 0, 0)
		return err
	})
	if err != nil {
		return benchReport{}, err
	}
	cfg := dir.Config
	synthetic := dir.Headers[0].Metadata["nextchat.synthetic"] != ""
	shape := map[string]int{"sam_image_size": d.ImageSize, "sam_grid": d.Grid, "encoder_embed_dim": cfg.SAM.EncoderEmbedDim,
		"encoder_depth": cfg.SAM.EncoderDepth, "encoder_mlp_dim": cfg.SAM.EncoderMLPDim, "window_size": cfg.SAM.WindowSize,
		"global_blocks": len(cfg.SAM.GlobalAttnIndexes), "prompt_embed_dim": d.EmbedDim, "sparse_tokens": d.SparseTokens}
	decoder, err := finish(benchReport{
		Benchmark: "sam mask decoder", Model: dir.Path, Synthetic: synthetic, Unit: "prompt", ItemsPerRun: o.prompts,
		RunSeconds: decSeconds, FLOPPerItem: samDecoderFLOP(cfg),
		Shape: map[string]int{"prompts_per_call": o.prompts, "sam_grid": d.Grid, "prompt_embed_dim": d.EmbedDim,
			"decoder_depth": cfg.SAM.DecoderDepth, "decoder_mlp_dim": cfg.SAM.DecoderMLPDim, "hidden_size": d.HiddenSize},
	}, o)
	if err != nil || !o.samEncoder {
		return decoder, err
	}
	encoder, err := finish(benchReport{
		Benchmark: "sam image encoder", Model: dir.Path, Synthetic: synthetic, Unit: "image", ItemsPerRun: 1,
		RunSeconds: encSeconds, FLOPPerItem: samEncoderFLOP(cfg.SAM), Shape: shape,
	}, o)
	encoder.Stages = []benchReport{decoder}
	return encoder, err
}
