package convert

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/nextchat/nextchat/internal/safetensors"
	"github.com/nextchat/nextchat/internal/shards"
	"github.com/nextchat/nextchat/internal/torchbin"
)

// Weight formats a source directory may hold.
const (
	FormatTorch       = "pytorch"
	FormatSafetensors = "safetensors"
)

// torchIndexFile is the index HF's save_pretrained writes beside sharded .bin files (MODEL_SPEC §7.1).
const torchIndexFile = "pytorch_model.bin.index.json"

// sourceTensor is a tensor of the input and where to read its bytes.
type sourceTensor struct {
	name  string
	dtype safetensors.DType
	shape []int64
	numel int64
	file  string // base name, for messages
	data  *io.SectionReader
}

// source is an opened weight directory: every tensor of every weight file, files kept open for reading.
type source struct {
	format  string
	files   []string
	bytes   int64 // of the weight files
	tensors []sourceTensor
	closers []io.Closer
}

func (s *source) Close() error {
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// layouts are tried in order: safetensors first (no pickle at all when a directory has both), then torch.
var layouts = []struct {
	format, index, glob string
}{
	{FormatSafetensors, shards.IndexFile, "*.safetensors"},
	// Only the model's own files: HF also torch.saves training_args.bin, which is no state dict.
	{FormatTorch, torchIndexFile, "pytorch_model*.bin"},
}

// openSource reads the structure of every weight file in dir (no tensor data) and checks it against the
// directory's index when there is one.
func openSource(dir string) (*source, error) {
	for _, l := range layouts {
		index, files, err := shards.ReadIndex(dir, l.index)
		if errors.Is(err, os.ErrNotExist) {
			if files, err = filepath.Glob(filepath.Join(dir, l.glob)); err != nil {
				return nil, err
			}
			sort.Strings(files)
		} else if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			continue
		}
		s := &source{format: l.format}
		if err := s.open(files, shards.NewLocator(l.index, index)); err != nil {
			s.Close()
			return nil, err
		}
		return s, nil
	}
	return nil, fmt.Errorf("%w: %s holds no weights: want pytorch_model*.bin (with %s when sharded) or *.safetensors",
		ErrInvalid, dir, torchIndexFile)
}

func (s *source) open(files []string, located *shards.Locator) error {
	for _, path := range files {
		tensors, closer, size, err := openWeightFile(s.format, path)
		if err != nil {
			return err
		}
		s.closers = append(s.closers, closer)
		s.files = append(s.files, path)
		s.bytes += size
		for _, t := range tensors {
			if err := located.Add(t.name, t.file); err != nil {
				return err
			}
		}
		s.tensors = append(s.tensors, tensors...)
	}
	return located.Complete()
}

// openWeightFile lists one file's tensors with readers over their bytes.
func openWeightFile(format, path string) ([]sourceTensor, io.Closer, int64, error) {
	base := filepath.Base(path)
	if format == FormatTorch {
		a, err := torchbin.Open(path)
		if err != nil {
			return nil, nil, 0, err
		}
		st, err := os.Stat(path)
		if err != nil {
			a.Close()
			return nil, nil, 0, err
		}
		out := make([]sourceTensor, len(a.Tensors))
		for i, t := range a.Tensors {
			out[i] = sourceTensor{name: t.Name, dtype: t.DType, shape: t.Shape, numel: t.NumElements(), file: base, data: a.Section(t)}
		}
		return out, a, st.Size(), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, 0, err
	}
	st, err := f.Stat()
	if err == nil {
		var h *safetensors.Header
		if h, err = safetensors.ParseHeader(f, st.Size()); err == nil {
			out := make([]sourceTensor, len(h.Tensors))
			for i, t := range h.Tensors {
				out[i] = sourceTensor{name: t.Name, dtype: t.DType, shape: t.Shape, numel: t.NumElements(), file: base, data: h.Section(f, t)}
			}
			return out, f, st.Size(), nil
		}
	}
	f.Close()
	return nil, nil, 0, fmt.Errorf("%s: %w", path, err)
}
