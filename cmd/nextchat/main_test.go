package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	return runCLIInput("", args...)
}

// runCLIInput runs a command line with stdin.
func runCLIInput(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errOut})
	return code, out.String(), errOut.String()
}

func TestHelpForEveryCommand(t *testing.T) {
	code, out, _ := runCLI("--help")
	assert.Equal(t, 0, code)
	for _, c := range commands() {
		assert.Contains(t, out, c.name)
		code, _, stderr := runCLI(c.name, "--help")
		assert.Equal(t, 0, code, c.name)
		assert.Contains(t, stderr, "Usage: nextchat "+c.name, c.name)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, ""},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"info", "--nope"}, "unknown flag"},
		{"info without model", []string{"info"}, "needs --model"},
		{"gen without out", []string{"gen"}, "needs --out"},
		{"gen bad dtype", []string{"gen", "--out", "x", "--dtype", "int4"}, "unknown dtype"},
		{"convert without to", []string{"convert", "--from", "x"}, "needs --from DIR and --to DIR"},
		{"convert bad dtype", []string{"convert", "--from", "x", "--to", "y", "--dtype", "f32"}, `unknown --dtype "f32"`},
		{"version with args", []string{"version", "extra"}, "no arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(tc.args...)
			assert.Equal(t, 2, code)
			assert.Contains(t, stderr, tc.want)
		})
	}
}

func TestVersionListsBackends(t *testing.T) {
	code, out, _ := runCLI("version")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "backend cpu   compiled in, 1 device(s) usable")
	assert.Contains(t, out, "backend cuda")
}

func TestGPUsNeverFails(t *testing.T) {
	code, out, stderr := runCLI("gpus")
	require.Equal(t, 0, code, stderr)
	assert.NotEmpty(t, out)
}

func TestGenThenInfo(t *testing.T) {
	tok := filepath.Join(t.TempDir(), "tokenizer.model")
	require.NoError(t, os.WriteFile(tok, []byte("stand-in"), 0o644))
	dir := filepath.Join(t.TempDir(), "tiny")
	code, out, stderr := runCLI("gen", "--config", "tiny", "--seed", "2", "--dtype", "bf16", "--tokenizer", tok, "--out", dir)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "random")

	code, out, stderr = runCLI("info", "--model", dir)
	require.Equal(t, 0, code, stderr)
	for _, want := range []string{"SYNTHETIC", "sam_decoder", "3,638,916", "image tokens  16 per image", "512 B/token bf16"} {
		assert.Contains(t, out, want)
	}
	assert.NotContains(t, out, "alignment", "gen writes every matrix on a cache line")

	code, out, stderr = runCLI("info", "--model", dir, "--json")
	require.Equal(t, 0, code, stderr)
	var r infoReport
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	assert.Equal(t, 8, len(r.Components))
	assert.Equal(t, uint64(2*r.UsedParams), r.WeightBytes)
	assert.Equal(t, map[string]int{"BF16": 294}, r.TensorsByDType)
	assert.Zero(t, r.MisalignedMatrices)

	code, out, _ = runCLI("info", "--model", dir, "-v")
	require.Equal(t, 0, code)
	assert.Contains(t, out, "unused: sam.model.prompt_encoder.mask_downscaling.0.weight")

	code, _, stderr = runCLI("gen", "--config", "tiny", "--tokenizer", tok, "--out", dir)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "--force")
}

func TestInfoOnBrokenModelIsAnError(t *testing.T) {
	code, _, stderr := runCLI("info", "--model", t.TempDir())
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "config.json")
}

func TestGroupDigits(t *testing.T) {
	for in, want := range map[int64]string{0: "0", 999: "999", 1000: "1,000", 7741813044: "7,741,813,044", -1234: "-1,234"} {
		assert.Equal(t, want, groupDigits(in))
	}
}

// sharedTokenizer is the real LLaMA tokenizer from ../shared; the test skips, saying why, when it is absent.
func sharedTokenizer(t *testing.T) string {
	tok, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "testdata", "tokenizer", "llama.model"))
	require.NoError(t, err)
	if _, err := os.Stat(tok); err != nil {
		t.Skipf("LLaMA tokenizer not found at %s (it lives in ../shared beside the checkout)", tok)
	}
	return tok
}

// realTokenizerModel writes a tiny synthetic model carrying the real LLaMA tokenizer.
func realTokenizerModel(t *testing.T) string {
	tok := sharedTokenizer(t)
	dir := filepath.Join(t.TempDir(), "tiny")
	code, _, stderr := runCLI("gen", "--config", "tiny", "--dtype", "bf16", "--tokenizer", tok, "--out", dir)
	require.Equal(t, 0, code, stderr)
	return dir
}

func TestTokenizeAndDetokenize(t *testing.T) {
	dir := realTokenizerModel(t)
	code, out, stderr := runCLI("tokenize", "--model", dir, "--json", "Answer: <at> <boxes> .")
	require.Equal(t, 0, code, stderr)
	assert.JSONEq(t, `{"ids":[1,673,29901,32003,32004,29889],"pieces":["<s>","▁Answer",":","<at>","<boxes>","."]}`, out)
	code, out, _ = runCLI("tokenize", "--model", dir, "--no-bos", "hi")
	require.Equal(t, 0, code)
	assert.Contains(t, out, `7251  "▁hi"`)
	code, out, stderr = runCLI("detokenize", "--model", dir, "673,29901,32003", "32004", "29889", "2")
	require.Equal(t, 0, code, stderr)
	assert.Equal(t, "Answer: <at> <boxes> .\n", out)
	code, _, stderr = runCLI("detokenize", "--model", dir, "40000")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "outside the vocabulary")
	code, _, _ = runCLI("detokenize", "--model", dir, "x1")
	assert.Equal(t, 2, code)
}

func TestRunAnswersWithLocations(t *testing.T) {
	dir := realTokenizerModel(t)
	code, out, stderr := runCLI("run", "--model", dir, "--max-new-tokens", "6", "--prefix", "Answer: <at>", "--threads", "2", "Where is the dog?")
	require.Equal(t, 0, code, stderr)
	assert.True(t, strings.HasPrefix(out, "Answer: [0]"), out)
	assert.Contains(t, out, "[0] box (normalized xyxy)")

	dump := filepath.Join(t.TempDir(), "stages.safetensors")
	code, out, stderr = runCLI("run", "--model", dir, "--max-new-tokens", "6", "--prefix", "Answer: <at>", "--json", "--dump", dump, "Where is the dog?")
	require.Equal(t, 0, code, stderr)
	var r runJSON
	require.NoError(t, json.Unmarshal([]byte(out), &r))
	assert.Equal(t, []int32{673, 29901, 32003, 32004}, r.Tokens[:4])
	require.Len(t, r.Locations, 1)
	assert.Equal(t, 2, r.Locations[0].TokenIndex)
	assert.True(t, strings.HasPrefix(r.Answer, "Answer: [0]"))
	assert.FileExists(t, dump)

	code, _, stderr = runCLI("run", "--model", dir, "--max-new-tokens", "4", "--beams", "3", "--json", "Hello")
	require.Equal(t, 0, code, stderr)
	code, _, stderr = runCLI("run", "--model", dir, "--temperature", "-1", "Hello")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "temperature")
	code, _, _ = runCLI("run", "--model", dir, "--kv-dtype", "int8", "Hello")
	assert.Equal(t, 2, code)
}

func TestRunWithImageAndGround(t *testing.T) {
	dir := realTokenizerModel(t)
	image := filepath.Join("..", "..", "testdata", "images", "wide_64x48.png")
	annotated := filepath.Join(t.TempDir(), "a.png")
	code, out, stderr := runCLI("run", "--model", dir, "--image", image, "--max-new-tokens", "6", "--prefix", "Answer: <at>",
		"--out-image", annotated, "Where is the red circle?")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, "[0] box (pixels)")
	assert.Contains(t, out, "IoU", "SAM ran for the location")
	assert.FileExists(t, annotated)

	code, out, stderr = runCLI("run", "--model", dir, "--image", image, "--box", "10,5,40,30", "--max-new-tokens", "3", "--json", "What is region [0]?")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, out, `"finish_reason"`)
	code, _, stderr = runCLI("run", "--model", dir, "--image", image, "--box", "10,5,400,30", "What is region [0]?")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "box 0")
	code, _, stderr = runCLI("run", "--model", dir, "--box", "1,2,3,4", "What is region [0]?")
	assert.Equal(t, 1, code, "boxes without an image")
	assert.Contains(t, stderr, "need an image")
	code, _, _ = runCLI("run", "--model", dir, "--image", "/nonexistent.png", "hi")
	assert.Equal(t, 1, code)

	code, out, stderr = runCLI("ground", "--model", dir, "--image", image, "--json", "--mask", "the red circle", "the blue square")
	require.Equal(t, 0, code, stderr)
	var got []groundJSON
	require.NoError(t, json.Unmarshal([]byte(out), &got))
	require.Len(t, got, 2)
	assert.Equal(t, "the blue square", got[1].Expression)
	require.NotNil(t, got[0].BoxPixel)
	require.NotNil(t, got[0].IoU)
	require.NotNil(t, got[0].MaskRLE, "threshold 0 keeps every mask")
	assert.Equal(t, [2]int{48, 64}, got[0].MaskRLE.Size)
	for _, v := range got[0].BoxPixel {
		assert.True(t, v >= 0 && v <= 64, "clipped to the image: %v", *got[0].BoxPixel)
	}
}

// chat answers one question per line in one conversation: an empty line is skipped, a question the plan or the
// prompt rules refuse gets an error on stderr and the conversation goes on, /reset starts over.
func TestChat(t *testing.T) {
	dir := realTokenizerModel(t)
	image := filepath.Join("..", "..", "testdata", "images", "wide_64x48.png")
	questions := "What is in the image?\n\nWhat is region [3]?\nWhat is region [0]?\n/reset\nWhere is the red circle?\n"
	code, out, stderr := runCLIInput(questions, "chat", "--model", dir, "--image", image, "--box", "10,5,40,30",
		"--max-new-tokens", "5", "--no-mask", "--ctx", "1024")
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "error: invalid prompt: region [3] refers to box 3, but 1 box(es) were given")
	assert.Contains(t, out, "(conversation reset)")
	assert.Equal(t, 3, strings.Count(out, "\n\n"), "three answers, each ended by a blank line:\n%s", out)

	code, _, stderr = runCLIInput("hi\n", "chat", "--model", dir, "extra")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "reads its questions from stdin")
}
