// Package shards lays a checkpoint's tensors out in safetensors files of bounded size, as HF tooling does:
// one model.safetensors, or model-0000i-of-0000n.safetensors files listed by model.safetensors.index.json. It
// also reads such an index (and torch's pytorch_model.bin.index.json, the same format) with the checks an
// untrusted directory needs. Used by the synthetic generator and the .bin converter, read by modeldir.
package shards

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/nextchat/nextchat/internal/safetensors"
)

// Names of a sharded safetensors directory.
const (
	SingleFile = "model.safetensors"
	IndexFile  = "model.safetensors.index.json"
)

// DefaultBytes keeps shards near the size HF tooling writes, so a 7B checkpoint has a few files.
const DefaultBytes = 5_000_000_000

// ErrIndex marks an index file that cannot be trusted: unreadable, empty, or pointing outside its directory.
var ErrIndex = errors.New("invalid weight index")

// Shard is one weight file and the tensors it holds, in file order.
type Shard struct {
	Name    string
	Tensors []safetensors.TensorSpec
}

// Bytes is the shard's tensor data size.
func (s Shard) Bytes() int64 {
	var n int64
	for _, t := range s.Tensors {
		n += byteSize(t)
	}
	return n
}

func byteSize(t safetensors.TensorSpec) int64 {
	n := int64(t.DType.Size())
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Plan fills files in the given order up to limit bytes each (a bigger tensor gets a file of its own). Inside
// a file the tensors whose byte sizes are multiples of safetensors.DataAlign come first, so from the aligned data
// region every one of them starts aligned, as the core multiplies matrices in place; then the rest by decreasing
// element size, so they stay naturally aligned. Both sorts are stable.
func Plan(tensors []safetensors.TensorSpec, limit int64) []Shard {
	if limit <= 0 {
		limit = DefaultBytes
	}
	var shards []Shard
	var size int64
	for _, t := range tensors {
		b := byteSize(t)
		if len(shards) == 0 || (size+b > limit && size > 0) {
			shards = append(shards, Shard{})
			size = 0
		}
		shards[len(shards)-1].Tensors = append(shards[len(shards)-1].Tensors, t)
		size += b
	}
	for i := range shards {
		ts := shards[i].Tensors
		sort.SliceStable(ts, func(a, b int) bool {
			wholeA, wholeB := byteSize(ts[a])%safetensors.DataAlign == 0, byteSize(ts[b])%safetensors.DataAlign == 0
			if wholeA != wholeB {
				return wholeA
			}
			return ts[a].DType.Size() > ts[b].DType.Size()
		})
		if len(shards) == 1 {
			shards[i].Name = SingleFile
		} else {
			shards[i].Name = fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
		}
	}
	return shards
}

// Fill writes one tensor's bytes, exactly its size, to w.
type Fill func(ctx context.Context, t safetensors.TensorSpec, w io.Writer) error

// Write writes one shard into dir through a temporary name, so a failure never leaves a plausible partial
// file.
func Write(ctx context.Context, dir string, s Shard, meta map[string]string, fill Fill) (err error) {
	final := filepath.Join(dir, s.Name)
	tmp := final + ".partial"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	w, err := safetensors.NewWriter(f, s.Tensors, meta)
	if err != nil {
		return fmt.Errorf("%s: %w", s.Name, err)
	}
	for _, t := range s.Tensors {
		tw, err := w.TensorWriter(t.Name)
		if err != nil {
			return fmt.Errorf("%s: %w", s.Name, err)
		}
		if err := fill(ctx, t, tw); err != nil {
			return fmt.Errorf("%s: tensor %s: %w", s.Name, t.Name, err)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("%s: %w", s.Name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	return os.Rename(tmp, final)
}

// WriteIndex writes model.safetensors.index.json as HF does: total tensor bytes and a name → file map. A
// single shard needs none.
func WriteIndex(dir string, shards []Shard) error {
	if len(shards) < 2 {
		return nil
	}
	weightMap := map[string]string{}
	var total int64
	for _, s := range shards {
		for _, t := range s.Tensors {
			weightMap[t.Name] = s.Name
		}
		total += s.Bytes()
	}
	index := map[string]any{
		"metadata":   map[string]string{"total_size": strconv.FormatInt(total, 10)},
		"weight_map": weightMap,
	}
	return WriteJSON(filepath.Join(dir, IndexFile), index)
}

// ReadIndex reads an HF weight index (model.safetensors.index.json or pytorch_model.bin.index.json): the
// name → file map and the files it names, sorted, as paths in dir. Only plain file names are accepted, so an
// index cannot point outside its directory.
func ReadIndex(dir, name string) (weightMap map[string]string, files []string, err error) {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return nil, nil, err
	}
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &index); err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %v", ErrIndex, name, err)
	}
	if len(index.WeightMap) == 0 {
		return nil, nil, fmt.Errorf("%w: %s has an empty weight_map", ErrIndex, name)
	}
	seen := map[string]bool{}
	for tensor, file := range index.WeightMap {
		if file != filepath.Base(file) || file == "." || file == ".." || file == "" {
			return nil, nil, fmt.Errorf("%w: %s maps %s to %q, which is not a file name in the directory",
				ErrIndex, name, tensor, file)
		}
		if !seen[file] {
			seen[file] = true
			files = append(files, filepath.Join(dir, file))
		}
	}
	sort.Strings(files)
	return index.WeightMap, files, nil
}

// WriteJSON writes v as indented JSON with a final newline.
func WriteJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return nil
}

// CopyFile copies a regular file's bytes.
func CopyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Locator records which file holds each tensor of a sharded directory and checks that against the index:
// no tensor in two files, each in the file the index names, every indexed tensor found.
type Locator struct {
	indexName string
	index     map[string]string // nil: no index
	where     map[string]string
}

// NewLocator starts an empty record; index may be nil (a directory without one).
func NewLocator(indexName string, index map[string]string) *Locator {
	return &Locator{indexName: indexName, index: index, where: map[string]string{}}
}

// Add records that file (a base name) holds tensor name.
func (l *Locator) Add(name, file string) error {
	if prev, dup := l.where[name]; dup {
		return fmt.Errorf("%w: tensor %s is stored in both %s and %s", ErrIndex, name, prev, file)
	}
	l.where[name] = file
	if l.index != nil && l.index[name] != file {
		return fmt.Errorf("%w: tensor %s is in %s but %s maps it to %q", ErrIndex, name, file, l.indexName, l.index[name])
	}
	return nil
}

// Complete checks that every tensor the index names was found.
func (l *Locator) Complete() error {
	for name, file := range l.index {
		if _, ok := l.where[name]; !ok {
			return fmt.Errorf("%w: %s maps %s to %s, which does not hold it", ErrIndex, l.indexName, name, file)
		}
	}
	return nil
}
