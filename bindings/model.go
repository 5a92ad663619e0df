package bindings

// #include <stdlib.h>
// #include "nextchat.h"
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"github.com/nextchat/nextchat/internal/config"
)

// DType is a weight or cache storage type the core supports.
type DType int

const (
	F32  DType = C.NC_DTYPE_F32
	F16  DType = C.NC_DTYPE_F16
	BF16 DType = C.NC_DTYPE_BF16
)

func (d DType) String() string {
	switch d {
	case F32:
		return "F32"
	case F16:
		return "F16"
	case BF16:
		return "BF16"
	}
	return fmt.Sprintf("dtype(%d)", int(d))
}

// Size is the bytes per element.
func (d DType) Size() int {
	if d == F32 {
		return 4
	}
	return 2
}

// ParseDType reads "f32", "f16" or "bf16" (any case).
func ParseDType(s string) (DType, error) {
	switch s {
	case "f32", "F32", "float32":
		return F32, nil
	case "f16", "F16", "float16":
		return F16, nil
	case "bf16", "BF16", "bfloat16":
		return BF16, nil
	}
	return 0, fmt.Errorf("unknown dtype %q (want f32, f16 or bf16)", s)
}

// LLMWeights is how the language model's matrices (its layers' and lm_head) are held in memory.
type LLMWeights int

const (
	// LLMWeightsAsStored maps them from the files as they are.
	LLMWeightsAsStored LLMWeights = C.NC_LLM_WEIGHTS_AS_STORED
	// LLMWeightsCompact re-codes bf16 matrices in 12 bits per weight at load, losslessly (docs/ARCHITECTURE.md
	// "Compact weights"): 25 % less memory for them and faster memory-bound decoding.
	LLMWeightsCompact LLMWeights = C.NC_LLM_WEIGHTS_COMPACT
	// LLMWeightsInt8 quantizes them at load to 8 bits per weight with a float32 scale per row (docs/ARCHITECTURE.md
	// "Int8 weights"): half the memory of bf16 and about half the bytes read per decode step, but LOSSY — outputs
	// no longer match the reference exactly.
	LLMWeightsInt8 LLMWeights = C.NC_LLM_WEIGHTS_INT8
)

var llmWeightsNames = map[LLMWeights]string{LLMWeightsAsStored: "stored", LLMWeightsCompact: "compact", LLMWeightsInt8: "int8"}

func (w LLMWeights) String() string {
	if name, ok := llmWeightsNames[w]; ok {
		return name
	}
	return fmt.Sprintf("llm-weights(%d)", int(w))
}

// ParseLLMWeights reads "stored", "compact" or "int8".
func ParseLLMWeights(s string) (LLMWeights, error) {
	for w, name := range llmWeightsNames {
		if s == name {
			return w, nil
		}
	}
	return 0, fmt.Errorf("unknown LLM weights %q (want stored, compact or int8)", s)
}

// TensorRef says where one tensor's bytes are: File indexes the file list given to OpenModel.
type TensorRef struct {
	Name   string
	DType  DType
	Shape  []int64
	File   int
	Offset uint64
	Bytes  uint64
}

// ModelParams is what OpenModel needs.
type ModelParams struct {
	Config  config.Config
	Files   []string
	Tensors []TensorRef
	Backend Backend
	Device  int
	Threads int // CPU compute threads; 0 = one per hardware thread
	// LLMWeights is how the language model's matrices are held (the zero value: as stored).
	LLMWeights LLMWeights
}

// MemoryReport is the core's account of a loaded model's memory.
type MemoryReport struct {
	WeightBytes      [NumComponents]uint64 // bytes the engine reads, per component
	WeightBytesTotal uint64
	UnusedBytes      uint64 // present in the files, never read
	MappedBytes      uint64
	KVBytesPerToken  uint64
}

// Model is an open model: weights mapped and bound. Close releases it; Close is idempotent, and a Model
// must not be used after Close. Methods are safe for concurrent use.
type Model struct {
	mu     sync.RWMutex
	handle *C.nc_model
	vocab  int
	hidden int
}

// cStrings holds C copies of Go strings for the duration of one call.
type cStrings []*C.char

func (s *cStrings) add(v string) *C.char {
	p := C.CString(v)
	*s = append(*s, p)
	return p
}

func (s cStrings) free() {
	for _, p := range s {
		C.free(unsafe.Pointer(p))
	}
}

// OpenModel maps the files and binds every tensor the config requires; the error names every offending
// tensor (missing, wrong shape, bytes outside the file, unsupported dtype).
func OpenModel(p ModelParams) (*Model, error) {
	cfg, err := toC(p.Config)
	if err != nil {
		return nil, err
	}
	var strs cStrings
	defer strs.free()
	files := make([]*C.char, len(p.Files))
	for i, f := range p.Files {
		files[i] = strs.add(f)
	}
	refs := make([]C.nc_tensor_ref, len(p.Tensors))
	for i, t := range p.Tensors {
		if len(t.Shape) > C.NC_MAX_DIMS {
			return nil, fmt.Errorf("%w: %s has %d dimensions, at most %d supported", ErrFormat, t.Name, len(t.Shape), C.NC_MAX_DIMS)
		}
		r := &refs[i]
		r.name = strs.add(t.Name)
		r.dtype = C.int32_t(t.DType)
		r.ndim = C.int32_t(len(t.Shape))
		for d, v := range t.Shape {
			r.shape[d] = C.int64_t(v)
		}
		r.file_index = C.int32_t(t.File)
		r.offset = C.uint64_t(t.Offset)
		r.nbytes = C.uint64_t(t.Bytes)
	}
	// params points at Go memory holding further pointers: cgo allows that only for pinned memory.
	var pinner runtime.Pinner
	defer pinner.Unpin()
	pinner.Pin(&cfg)
	var params C.nc_model_params
	params.struct_size = C.size_t(C.sizeof_nc_model_params)
	params.config = &cfg
	params.n_files = C.int32_t(len(files))
	params.n_tensors = C.int64_t(len(refs))
	params.backend = C.int32_t(p.Backend)
	params.device = C.int32_t(p.Device)
	params.threads = C.int32_t(p.Threads)
	params.llm_weights = C.int32_t(p.LLMWeights)
	if len(files) > 0 {
		pinner.Pin(&files[0])
		params.files = &files[0]
	}
	if len(refs) > 0 {
		pinner.Pin(&refs[0])
		params.tensors = &refs[0]
	}
	var handle *C.nc_model
	if err := call(func() C.nc_status { return C.nc_model_open(&params, &handle) }); err != nil {
		return nil, err
	}
	return &Model{handle: handle, vocab: p.Config.VocabSize, hidden: p.Config.HiddenSize}, nil
}

// Close unmaps the weights.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.handle != nil {
		C.nc_model_free(m.handle)
		m.handle = nil
	}
	return nil
}

// Memory reports weight bytes by component and KV bytes per token for the KV cache dtype.
func (m *Model) Memory(kv DType) (MemoryReport, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.handle == nil {
		return MemoryReport{}, fmt.Errorf("%w: model is closed", ErrInvalidArgument)
	}
	var r C.nc_memory_report
	if err := call(func() C.nc_status { return C.nc_model_memory(m.handle, C.int32_t(kv), &r) }); err != nil {
		return MemoryReport{}, err
	}
	out := MemoryReport{
		WeightBytesTotal: uint64(r.weight_bytes_total),
		UnusedBytes:      uint64(r.unused_bytes),
		MappedBytes:      uint64(r.mapped_bytes),
		KVBytesPerToken:  uint64(r.kv_bytes_per_token),
	}
	for i := range out.WeightBytes {
		out.WeightBytes[i] = uint64(r.weight_bytes[i])
	}
	return out, nil
}
