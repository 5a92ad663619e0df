package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sharedTokenizer is the real LLaMA tokenizer beside the checkout (DEVELOPERS.md); tests that need it skip,
// saying so, when it is absent.
func sharedTokenizer(tb testing.TB) *Tokenizer {
	tb.Helper()
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "testdata", "tokenizer", "llama.model")
	if _, err := os.Stat(path); err != nil {
		tb.Skipf("LLaMA tokenizer not found at %s (it lives in ../shared beside the checkout): %v", path, err)
	}
	tok, err := Load(path)
	require.NoError(tb, err)
	return tok
}

func goldenPath(name string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "golden", "tokenizer", name)
}

func readJSONL[T any](t *testing.T, name string) []T {
	f, err := os.Open(goldenPath(name))
	require.NoError(t, err)
	defer f.Close()
	var out []T
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		var v T
		require.NoError(t, json.Unmarshal(sc.Bytes(), &v))
		out = append(out, v)
	}
	require.NoError(t, sc.Err())
	return out
}

// Every encode golden from transformers 4.31 (tools/reference/tokenizer_goldens.py), id for id.
func TestEncodeMatchesTransformers431(t *testing.T) {
	tok := sharedTokenizer(t)
	cases := readJSONL[struct {
		Text string  `json:"text"`
		IDs  []int32 `json:"ids"`
		Tag  string  `json:"tag"`
	}](t, "encode.jsonl")
	require.Greater(t, len(cases), 3000)
	failed := 0
	for _, c := range cases {
		got := tok.Encode(c.Text, true)
		if !assert.Equal(t, c.IDs, got, "[%s] %q", c.Tag, c.Text) {
			if failed++; failed > 10 {
				t.Fatal("too many failures")
			}
		}
	}
}

func TestDecodeMatchesTransformers431(t *testing.T) {
	tok := sharedTokenizer(t)
	cases := readJSONL[struct {
		IDs             []int32 `json:"ids"`
		Text            string  `json:"text"`
		TextKeepSpecial string  `json:"text_keep_special"`
		Tag             string  `json:"tag"`
	}](t, "decode.jsonl")
	require.Greater(t, len(cases), 500)
	failed := 0
	for _, c := range cases {
		got, err := tok.Decode(c.IDs, true)
		require.NoError(t, err)
		keep, err := tok.Decode(c.IDs, false)
		require.NoError(t, err)
		ok := assert.Equal(t, c.Text, got, "[%s] %v skip", c.Tag, c.IDs)
		ok = assert.Equal(t, c.TextKeepSpecial, keep, "[%s] %v keep", c.Tag, c.IDs) && ok
		if !ok {
			if failed++; failed > 10 {
				t.Fatal("too many failures")
			}
		}
	}
}

func TestKnownIDs(t *testing.T) {
	tok := sharedTokenizer(t)
	tests := []struct {
		text string
		want []int32
	}{
		{"Answer: <at> <boxes> .</s>", []int32{1, 673, 29901, AtID, BoxesID, 29889, EOSID}},
		{"<im_end>Where", []int32{1, ImEndID, 11921}},
		{"<boxes> would", []int32{1, BoxesID, UnkID}}, // 4.31's cut-piece <unk>, kept on purpose
		{"", []int32{1}},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, tok.Encode(tc.text, true), "%q", tc.text)
	}
	assert.Equal(t, 32005, tok.VocabSize())
	p, err := tok.Piece(AtID)
	require.NoError(t, err)
	assert.Equal(t, "<at>", p)
	_, err = tok.Piece(32005)
	assert.Error(t, err)
	_, err = tok.Decode([]int32{5, -1}, true)
	assert.Error(t, err)
}

func TestBadModelFiles(t *testing.T) {
	dir := t.TempDir()
	tests := map[string][]byte{
		"empty":     {},
		"garbage":   []byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"),
		"truncated": {0x0a, 0x20, 0x0a},
	}
	for name, data := range tests {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, data, 0o644))
		_, err := Load(p)
		assert.ErrorIs(t, err, ErrBadModel, name)
	}
	_, err := Load(filepath.Join(dir, "absent"))
	assert.Error(t, err)
}

// englishText is a few paragraphs of ordinary prose repeated to size: the workload of the ≥ 20 MB/s target.
func englishText(size int) string {
	const para = "A chat between a curious user and an artificial intelligence assistant. The assistant gives " +
		"helpful, detailed, and polite answers to the user's questions. The picture shows a small red boat " +
		"tied to a wooden pier on a calm lake; behind it, pine trees climb a steep hill under a grey sky. " +
		"Two children in yellow raincoats are sitting on the pier, one of them pointing at a heron that stands " +
		"in the shallow water near the reeds. In 1987, the village council voted 12 to 3 to keep the old pier.\n"
	var b strings.Builder
	for b.Len() < size {
		b.WriteString(para)
	}
	return b.String()
}

func BenchmarkEncodeEnglish(b *testing.B) {
	tok := sharedTokenizer(b)
	text := englishText(1 << 20)
	tok.Encode(text, true) // warm the word cache as a long-running server has it
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tok.Encode(text, true)
	}
}

// BenchmarkEncodeEnglishCold starts every iteration with an empty word cache.
func BenchmarkEncodeEnglishCold(b *testing.B) {
	tok := sharedTokenizer(b)
	text := englishText(1 << 20)
	b.SetBytes(int64(len(text)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		clear(tok.sp.bpe.cache)
		tok.Encode(text, true)
	}
}
