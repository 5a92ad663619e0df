package torchbin

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// seedArchives reads testdata/seeds: archives torch.save wrote (testdata/make_fuzz_seeds.py).
func seedArchives(tb testing.TB) map[string][]byte {
	paths, err := filepath.Glob(filepath.Join("testdata", "seeds", "*.pt"))
	require.NoError(tb, err)
	require.NotEmpty(tb, paths)
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		require.NoError(tb, err)
		out[strings.TrimSuffix(filepath.Base(p), ".pt")] = b
	}
	return out
}

// dataPickle extracts an archive's data.pkl.
func dataPickle(tb testing.TB, archive []byte) []byte {
	zr, err := zip.NewReader(bytes.NewReader(archive), int64(len(archive)))
	require.NoError(tb, err)
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/data.pkl") {
			rc, err := f.Open()
			require.NoError(tb, err)
			defer rc.Close()
			b, err := io.ReadAll(rc)
			require.NoError(tb, err)
			return b
		}
	}
	tb.Fatal("no data.pkl")
	return nil
}

// FuzzUnpickle runs arbitrary bytes as data.pkl and, when they unpickle, places the state dict's tensors.
// Properties: nothing panics or hangs; every error wraps a sentinel; an accepted tensor's byte range is its
// element count times its element size and lies inside its storage.
//
// Seeds: the data.pkl of every testdata/seeds archive and the pickles below, valid and hostile.
func FuzzUnpickle(f *testing.F) {
	for _, archive := range seedArchives(f) {
		f.Add(dataPickle(f, archive))
	}
	f.Add(stateDictPickle(fakeTensor{name: "w", class: "BFloat16Storage", key: "0", numel: 4, shape: []int64{2, 2}}))
	f.Add(stateDictPickle(fakeTensor{name: "p", class: "HalfStorage", key: "1", numel: 9, offset: 1, shape: []int64{2, 4}, asParam: true}))
	f.Add((&pickler{}).op(opProto, 2).global("os", "system").str("id").op(opTuple1, opReduce, opStop).b)
	f.Fuzz(func(t *testing.T, data []byte) {
		root, storages, err := unpickle(data)
		if err != nil {
			requireClassified(t, err)
			return
		}
		placed := map[string]int64{}
		for key := range storages {
			placed[key] = 0
		}
		tensors, err := stateDict(root, placed)
		if err != nil {
			requireClassified(t, err)
			return
		}
		for _, tn := range tensors {
			if tn.Size != tn.NumElements()*int64(tn.DType.Size()) || tn.Offset < 0 {
				t.Fatalf("tensor %q: %d bytes at %d for %v %s", tn.Name, tn.Size, tn.Offset, tn.Shape, tn.DType)
			}
		}
	})
}

// FuzzRead feeds whole files to Read: the zip layer, the pickle and the storage placement together. Properties:
// nothing panics; every error wraps a sentinel; every accepted tensor lies inside the file.
//
// Seeds: the testdata/seeds archives and a hand-built one.
func FuzzRead(f *testing.F) {
	for _, archive := range seedArchives(f) {
		f.Add(archive)
	}
	f.Add(checkpoint(f, stateDictPickle(fakeTensor{name: "w", class: "FloatStorage", key: "0", numel: 2, shape: []int64{2}}),
		map[string][]byte{"0": seq(8, 0)}))
	f.Fuzz(func(t *testing.T, data []byte) {
		tensors, err := readBytes(data)
		if err != nil {
			requireClassified(t, err)
			return
		}
		for _, tn := range tensors {
			if tn.Offset < 0 || tn.Size < 0 || tn.Offset+tn.Size > int64(len(data)) {
				t.Fatalf("tensor %q: bytes [%d, %d+%d) outside the %d-byte file", tn.Name, tn.Offset, tn.Offset, tn.Size, len(data))
			}
		}
	})
}

// FuzzPickleInArchive wraps a fuzzed data.pkl in a well-formed archive whose storages data/0 … data/4 hold the
// fuzzed bytes, so the fuzzer reaches storage placement (declared sizes against entries) that whole-file
// mutation rarely does. Properties as FuzzRead.
//
// Seeds: the data.pkl of every testdata/seeds archive.
func FuzzPickleInArchive(f *testing.F) {
	for _, archive := range seedArchives(f) {
		f.Add(dataPickle(f, archive), seq(64, 0))
	}
	f.Fuzz(func(t *testing.T, pkl, data []byte) {
		storages := map[string][]byte{}
		for key := range 5 {
			storages[strconv.Itoa(key)] = data[:min(len(data), 8*key)]
		}
		archive := checkpoint(t, pkl, storages)
		tensors, err := readBytes(archive)
		if err != nil {
			requireClassified(t, err)
			return
		}
		for _, tn := range tensors {
			if tn.Offset < 0 || tn.Offset+tn.Size > int64(len(archive)) {
				t.Fatalf("tensor %q outside the file", tn.Name)
			}
		}
	})
}

func requireClassified(t *testing.T, err error) {
	t.Helper()
	for _, s := range []error{ErrNotArchive, ErrMalformed, ErrForbidden, ErrLimit, ErrUnsupported} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("unclassified error: %v", err)
}
