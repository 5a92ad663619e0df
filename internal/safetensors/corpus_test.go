package safetensors

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestHandWrittenCorpus pins the verdict on the hand-written fuzz corpus
// entries: "valid_*" files must parse and "invalid_*" files must not. The fuzz
// target only checks that inputs are handled safely, so without this a
// regression that flipped a verdict would go unnoticed. Files the fuzzer
// produced itself (hex names) are exercised by FuzzParseHeader only.
func TestHandWrittenCorpus(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzParseHeader", "*valid_*"))
	require.NoError(t, err)
	require.NotEmpty(t, paths)
	for _, path := range paths {
		name := filepath.Base(path)
		t.Run(name, func(t *testing.T) {
			data := readCorpusEntry(t, path)
			_, err := parseBytes(data)
			if strings.HasPrefix(name, "valid_") {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
				assert.True(t, isClassified(err), "unclassified error: %v", err)
			}
		})
	}
}

// readCorpusEntry decodes a single-[]byte "go test fuzz v1" file.
func readCorpusEntry(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	header, body, ok := strings.Cut(string(raw), "\n")
	require.True(t, ok)
	require.Equal(t, "go test fuzz v1", header)
	body = strings.TrimSpace(body)
	require.True(t, strings.HasPrefix(body, "[]byte(") && strings.HasSuffix(body, ")"), "unexpected corpus body %.40q", body)
	s, err := strconv.Unquote(body[len("[]byte(") : len(body)-1])
	require.NoError(t, err)
	return []byte(s)
}
