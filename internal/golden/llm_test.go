package golden

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/modeldir"
	"github.com/nextchat/nextchat/internal/prompt"
	"github.com/nextchat/nextchat/internal/tokenizer"
)

// standInTokenizer is enough to regenerate checkpoints: their weights do not depend on the tokenizer file.
func standInTokenizer(t *testing.T) string {
	if p := SharedTokenizer(); p != "" {
		return p
	}
	p := filepath.Join(t.TempDir(), "tokenizer.model")
	require.NoError(t, os.WriteFile(p, []byte("stand-in"), 0o644))
	return p
}

// checkpointDir is shared by every test of the package: each checkpoint is generated once.
var checkpointDir = func() string {
	d, err := os.MkdirTemp("", "nextchat-golden-")
	if err != nil {
		panic(err)
	}
	return d
}()

func TestMain(m *testing.M) {
	code := m.Run()
	os.RemoveAll(checkpointDir)
	os.Exit(code)
}

func openModel(t *testing.T, c Case, dtype bindings.DType) *bindings.Model {
	dir, err := BuildCheckpoint(context.Background(), c.Checkpoint, dtype, checkpointDir, standInTokenizer(t))
	require.NoError(t, err)
	d, err := modeldir.Open(dir)
	require.NoError(t, err)
	m, err := bindings.OpenModel(bindings.ModelParams{Config: d.Config, Files: d.Files, Tensors: d.Refs(),
		Backend: bindings.CPU, Threads: 2})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

func int32s(v []int64) []int32 {
	out := make([]int32, len(v))
	for i, x := range v {
		out[i] = int32(x)
	}
	return out
}

// llmRun is the engine side of one golden case: the prompt rows (with the reference's input embeddings, so
// the LLM is tested on its own), then the decode loop of tools/reference/nextchat_ref/generate.py.
type llmRun struct {
	prefillHidden []float32
	prefillLogits []float32
	tokens        []int32
	boxes         [][4]float32
	atHidden      []float32
}

func runLLM(t *testing.T, m *bindings.Model, c Case, g map[string]Tensor) llmRun {
	cache, err := m.NewCache(16, 64, bindings.F32)
	require.NoError(t, err)
	defer cache.Close()
	sampling := bindings.Greedy
	if c.Sampling != nil {
		sampling = bindings.Sampling{Temperature: c.Sampling.Temperature, TopK: c.Sampling.TopK, TopP: c.Sampling.TopP,
			RepetitionPenalty: 1, Seed: c.Sampling.Seed}
		if c.Sampling.RepetitionPenalty != 0 {
			sampling.RepetitionPenalty = c.Sampling.RepetitionPenalty
		}
	}
	seq, err := cache.NewSeq(sampling)
	require.NoError(t, err)
	defer seq.Close()

	ids := int32s(g["prompt.input_ids"].I64)
	// A forced next token is never sampled: forced steps do not draw from the random stream (SAMPLING.md).
	sampleNext := func(generated int) bool { return generated >= len(c.ForcedIDs) }
	out, err := m.Step(cache, []bindings.StepInput{{Seq: seq, Tokens: ids, Embeds: g["llm.input_embeds"].F32,
		AllHidden: true, Logits: true, Sample: sampleNext(0)}})
	require.NoError(t, err)
	run := llmRun{prefillHidden: out[0].Hidden, prefillLogits: out[0].Logits}
	next := out[0].Token
	for len(run.tokens) < c.MaxNewTokens {
		tok := next
		if i := len(run.tokens); i < len(c.ForcedIDs) {
			tok = c.ForcedIDs[i]
		}
		run.tokens = append(run.tokens, tok)
		// An <at> that is the last token allowed is still fed, so that it has a box (generate.py rule 5).
		if tok == tokenizer.EOSID || (len(run.tokens) == c.MaxNewTokens && tok != tokenizer.AtID) {
			break
		}
		// A generated (or forced) <at> is decoded into a box; the core then forces <boxes> and feeds the box.
		in := bindings.StepInput{Seq: seq, Tokens: []int32{tok}, Sample: sampleNext(len(run.tokens))}
		if tok == tokenizer.AtID {
			in.Locate = []bool{true}
		}
		out, err := m.Step(cache, []bindings.StepInput{in})
		require.NoError(t, err)
		next = out[0].Token
		run.boxes = append(run.boxes, out[0].Boxes...)
		run.atHidden = append(run.atHidden, out[0].AtHidden...)
	}
	return run
}

// MODEL_SPEC §1.1 on the goldens: the prefill's final hidden states and last logits within NMSE 1e-6 with fp32
// weights, and greedy (and seeded-sampling) tokens identical for the whole golden length. Cases that
// generate <at> need the location feedback, which the location tests check.
func TestLLMMatchesReferenceF32(t *testing.T) {
	cases, err := Cases()
	require.NoError(t, err)
	require.NotEmpty(t, cases)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			g, err := Load(filepath.Join(Root(), "testdata", "golden", "model", c.File))
			require.NoError(t, err)
			run := runLLM(t, openModel(t, c, bindings.F32), c, g)
			t.Logf("prefill hidden NMSE %.3g, logits NMSE %.3g, %d tokens", NMSE(run.prefillHidden, g["llm.prefill_hidden"].F32), NMSE(run.prefillLogits, g["llm.prefill_logits"].F32), len(run.tokens))
			assert.Less(t, NMSE(run.prefillHidden, g["llm.prefill_hidden"].F32), 1e-6)
			assert.Less(t, NMSE(run.prefillLogits, g["llm.prefill_logits"].F32), 1e-6)
			assert.Equal(t, int32s(g["gen.tokens"].I64), run.tokens)
			assertBoxes(t, g, run)
		})
	}
}

// Location feedback (§2.3, issue "Locations"): each <at>'s hidden state and decoded box as the reference's,
// boxes within 1e-4 (normalized).
func assertBoxes(t *testing.T, g map[string]Tensor, run llmRun) {
	want := g["gen.boxes"].F32
	require.Len(t, run.boxes, len(want)/4, "number of <at> locations")
	for i, b := range run.boxes {
		for j := range b {
			assert.InDelta(t, want[4*i+j], b[j], 1e-4, "box %d coordinate %d", i, j)
		}
	}
	if len(want) > 0 {
		assert.Less(t, NMSE(run.atHidden, g["gen.at_hidden"].F32), 1e-6)
	}
}

// User regions (§3.3): loc_encoder of the golden's normalized boxes equals the reference's loc embeddings.
func TestRegionEmbeddingsMatchReference(t *testing.T) {
	cases, err := Cases()
	require.NoError(t, err)
	checked := 0
	for _, c := range cases {
		if len(c.Boxes) == 0 {
			continue
		}
		g, err := Load(filepath.Join(Root(), "testdata", "golden", "model", c.File))
		require.NoError(t, err)
		norm := g["region.boxes_norm"].F32
		boxes := make([][4]float32, len(norm)/4)
		for i := range boxes {
			copy(boxes[i][:], norm[4*i:])
		}
		got, err := openModel(t, c, bindings.F32).EncodeBoxes(boxes)
		require.NoError(t, err)
		assert.Less(t, NMSE(got, g["region.loc_embeds"].F32), 1e-6, c.Name)
		checked++
	}
	require.Positive(t, checked, "no golden case has user regions")
}

// bf16 weights: the same goldens within NMSE 1e-3, and the same greedy tokens for at least the first 16.
func TestLLMMatchesReferenceBF16(t *testing.T) {
	cases, err := Cases()
	require.NoError(t, err)
	for _, c := range cases {
		if c.Sampling != nil {
			continue // the acceptance is stated for greedy tokens
		}
		// Tokens are compared only where no box is fed back: a located <at> feeds loc_encoder(loc_decoder(h)) into
		// the next position, and bf16 box heads move the following logits by more than small greedy margins
		// (odd_config's golden margin is 0.02). The prefill checks apply to every case.
		compareTokens := c.Result.AtCount == 0
		t.Run(c.Name, func(t *testing.T) {
			g, err := Load(filepath.Join(Root(), "testdata", "golden", "model", c.File))
			require.NoError(t, err)
			run := runLLM(t, openModel(t, c, bindings.BF16), c, g)
			assert.Less(t, NMSE(run.prefillHidden, g["llm.prefill_hidden"].F32), 1e-3)
			assert.Less(t, NMSE(run.prefillLogits, g["llm.prefill_logits"].F32), 1e-3)
			if compareTokens {
				want := int32s(g["gen.tokens"].I64)
				n := min(16, len(want))
				assert.Equal(t, want[:n], run.tokens[:n])
			}
		})
	}
}

// The prompt the engine builds (template, <image> expansion, region references, tokenizer) is the reference's
// prompt.input_ids, for every case.
func TestPromptIDsMatchReference(t *testing.T) {
	tokPath := SharedTokenizer()
	if tokPath == "" {
		t.Skip("LLaMA tokenizer not found in ../shared/testdata/tokenizer: prompt ids cannot be checked")
	}
	tok, err := tokenizer.Load(tokPath)
	require.NoError(t, err)
	cases, err := Cases()
	require.NoError(t, err)
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			g, err := Load(filepath.Join(Root(), "testdata", "golden", "model", c.File))
			require.NoError(t, err)
			text, _, err := prompt.ExpandRegions(c.Prompt, len(c.Boxes))
			require.NoError(t, err)
			imageTokens := int(g["clip.features"].Shape[1])
			rendered, err := prompt.Render([]prompt.Turn{{Role: prompt.User, Text: text}}, imageTokens)
			require.NoError(t, err)
			assert.Equal(t, int32s(g["prompt.input_ids"].I64), tok.Encode(rendered, true))
		})
	}
}
