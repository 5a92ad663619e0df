package bindings

// #include <stdlib.h>
// #include "nextchat.h"
import "C"

import (
	"fmt"
	"runtime"
	"sync"
)

// Cache is a paged KV cache of a model (nc_cache). Close releases it; sequences keep its memory alive.
type Cache struct {
	mu     sync.Mutex
	handle *C.nc_cache
	model  *Model
}

// NewCache allocates numBlocks blocks of blockSize positions (a power of two) in the given dtype.
func (m *Model) NewCache(blockSize int, numBlocks int64, dtype DType) (*Cache, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.handle == nil {
		return nil, fmt.Errorf("%w: model is closed", ErrInvalidArgument)
	}
	p := C.nc_cache_params{struct_size: C.size_t(C.sizeof_nc_cache_params), block_size: C.int32_t(blockSize),
		num_blocks: C.int64_t(numBlocks), dtype: C.int32_t(dtype)}
	var h *C.nc_cache
	if err := call(func() C.nc_status { return C.nc_cache_create(m.handle, &p, &h) }); err != nil {
		return nil, fmt.Errorf("create KV cache: %w", err)
	}
	return &Cache{handle: h, model: m}, nil
}

// Close frees the cache handle.
func (c *Cache) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.handle != nil {
		C.nc_cache_free(c.handle)
		c.handle = nil
	}
}

// Blocks reports free and total blocks.
func (c *Cache) Blocks() (free, total int64, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var f, t C.int64_t
	err = call(func() C.nc_status { return C.nc_cache_blocks(c.handle, &f, &t) })
	return int64(f), int64(t), err
}

// Sampling chooses tokens (docs/SAMPLING.md). The zero value is greedy; set TopP to 1 and
// RepetitionPenalty to 1 for "off" when sampling.
type Sampling struct {
	Temperature       float32
	TopK              int
	TopP              float32
	RepetitionPenalty float32
	Seed              uint64
}

// Greedy is argmax decoding.
var Greedy = Sampling{TopP: 1, RepetitionPenalty: 1}

// Seq is one sequence (nc_seq).
type Seq struct {
	handle *C.nc_seq
}

func (s Sampling) c() C.nc_sampling {
	return C.nc_sampling{struct_size: C.size_t(C.sizeof_nc_sampling), temperature: C.float(s.Temperature),
		top_k: C.int32_t(s.TopK), top_p: C.float(s.TopP), repetition_penalty: C.float(s.RepetitionPenalty),
		seed: C.uint64_t(s.Seed)}
}

// Check refuses sampling parameters the core would refuse when a sequence starts (nc_sampling_check), without one.
func (s Sampling) Check() error {
	cs := s.c()
	return call(func() C.nc_status { return C.nc_sampling_check(&cs) })
}

// NewSeq starts an empty sequence in the cache.
func (c *Cache) NewSeq(s Sampling) (*Seq, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs := s.c()
	var h *C.nc_seq
	if err := call(func() C.nc_status { return C.nc_seq_create(c.handle, &cs, &h) }); err != nil {
		return nil, fmt.Errorf("create sequence: %w", err)
	}
	return &Seq{handle: h}, nil
}

// Fork copies the sequence, sharing its cached positions.
func (s *Seq) Fork() (*Seq, error) {
	var h *C.nc_seq
	if err := call(func() C.nc_status { return C.nc_seq_fork(s.handle, &h) }); err != nil {
		return nil, fmt.Errorf("fork sequence: %w", err)
	}
	return &Seq{handle: h}, nil
}

// ForkPrefix starts a new request that continues the sequence's first positions (a cached prompt prefix): their
// cache blocks are shared, copied on write; it samples with s and has no pending location.
func (s *Seq) ForkPrefix(positions int, sampling Sampling) (*Seq, error) {
	cs := sampling.c()
	var h *C.nc_seq
	if err := call(func() C.nc_status { return C.nc_seq_fork_prefix(s.handle, C.int64_t(positions), &cs, &h) }); err != nil {
		return nil, fmt.Errorf("fork %d positions: %w", positions, err)
	}
	return &Seq{handle: h}, nil
}

// Len is the number of positions in the cache.
func (s *Seq) Len() int { return int(C.nc_seq_length(s.handle)) }

// Close frees the sequence and its cache blocks.
func (s *Seq) Close() {
	if s.handle != nil {
		C.nc_seq_free(s.handle)
		s.handle = nil
	}
}

// StepInput is one sequence's part of a step.
type StepInput struct {
	Seq       *Seq
	Tokens    []int32
	Embeds    []float32 // optional [len(Tokens) × hidden] replacing token embeddings
	EmbedRows []bool    // optional: which rows of Embeds apply (nil: all)
	Sample    bool      // choose the next token
	Logits    bool      // return the last row's logits
	Hidden    bool      // return the last row's final hidden state
	AllHidden bool      // return every row's final hidden state
	// Locate marks generated <at> rows to decode into boxes (MODEL_SPEC §2.3); when the last row is one,
	// the returned Token is <boxes> and the next step's <boxes> row carries the box.
	Locate []bool
}

// StepOutput is what the step returned for one input.
type StepOutput struct {
	Token    int32
	Logits   []float32
	Hidden   []float32
	Boxes    [][4]float32 // one per located row: normalized xyxy, raw
	AtHidden []float32    // [len(Boxes) × hidden]: the located rows' hidden states
}

// Step runs one batched step over sequences of one cache.
func (m *Model) Step(c *Cache, inputs []StepInput) ([]StepOutput, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if m.handle == nil || c.handle == nil {
		return nil, fmt.Errorf("%w: model or cache is closed", ErrInvalidArgument)
	}
	if len(inputs) == 0 {
		return nil, fmt.Errorf("%w: a step needs at least one input", ErrInvalidArgument)
	}
	var pinner runtime.Pinner
	defer pinner.Unpin()
	cin := make([]C.nc_step_input, len(inputs))
	out := make([]StepOutput, len(inputs))
	for i, in := range inputs {
		if in.Seq == nil || in.Seq.handle == nil || len(in.Tokens) == 0 {
			return nil, fmt.Errorf("%w: step input %d needs an open sequence and tokens", ErrInvalidArgument, i)
		}
		ci := &cin[i]
		ci.seq = in.Seq.handle
		pinner.Pin(&in.Tokens[0])
		ci.tokens = (*C.int32_t)(&in.Tokens[0])
		ci.n_tokens = C.int32_t(len(in.Tokens))
		if len(in.Embeds) > 0 {
			if len(in.Embeds) != len(in.Tokens)*m.hidden {
				return nil, fmt.Errorf("%w: step input %d: %d embedding values for %d rows of %d", ErrInvalidArgument, i,
					len(in.Embeds), len(in.Tokens), m.hidden)
			}
			pinner.Pin(&in.Embeds[0])
			ci.embeds = (*C.float)(&in.Embeds[0])
			if in.EmbedRows != nil {
				if len(in.EmbedRows) != len(in.Tokens) {
					return nil, fmt.Errorf("%w: step input %d: EmbedRows has %d entries for %d rows", ErrInvalidArgument, i,
						len(in.EmbedRows), len(in.Tokens))
				}
				rows := make([]C.uint8_t, len(in.EmbedRows))
				for r, use := range in.EmbedRows {
					if use {
						rows[r] = 1
					}
				}
				pinner.Pin(&rows[0])
				ci.embed_rows = &rows[0]
			}
		}
		if in.Sample {
			ci.want |= C.NC_STEP_SAMPLE
		}
		if in.Logits {
			ci.want |= C.NC_STEP_LOGITS
			out[i].Logits = make([]float32, m.vocab)
			pinner.Pin(&out[i].Logits[0])
			ci.logits = (*C.float)(&out[i].Logits[0])
		}
		switch {
		case in.AllHidden:
			ci.want |= C.NC_STEP_ALL_HIDDEN
			out[i].Hidden = make([]float32, len(in.Tokens)*m.hidden)
		case in.Hidden:
			ci.want |= C.NC_STEP_HIDDEN
			out[i].Hidden = make([]float32, m.hidden)
		}
		if out[i].Hidden != nil {
			pinner.Pin(&out[i].Hidden[0])
			ci.hidden = (*C.float)(&out[i].Hidden[0])
		}
		if in.Locate != nil {
			if len(in.Locate) != len(in.Tokens) {
				return nil, fmt.Errorf("%w: step input %d: Locate has %d entries for %d rows", ErrInvalidArgument, i,
					len(in.Locate), len(in.Tokens))
			}
			rows := make([]C.uint8_t, len(in.Locate))
			n := 0
			for r, loc := range in.Locate {
				if loc {
					rows[r] = 1
					n++
				}
			}
			if n > 0 {
				pinner.Pin(&rows[0])
				ci.locate_rows = &rows[0]
				out[i].Boxes = make([][4]float32, n)
				out[i].AtHidden = make([]float32, n*m.hidden)
				pinner.Pin(&out[i].Boxes[0])
				pinner.Pin(&out[i].AtHidden[0])
				ci.boxes = (*C.float)(&out[i].Boxes[0][0])
				ci.at_hidden = (*C.float)(&out[i].AtHidden[0])
			}
		}
	}
	pinner.Pin(&cin[0])
	if err := call(func() C.nc_status { return C.nc_step(m.handle, c.handle, &cin[0], C.int32_t(len(cin))) }); err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Token = int32(cin[i].token)
	}
	return out, nil
}

// EncodeBoxes runs loc_encoder on normalized xyxy boxes (MODEL_SPEC §3.3): the embeddings of user <boxes>.
func (m *Model) EncodeBoxes(boxes [][4]float32) ([]float32, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.handle == nil || len(boxes) == 0 {
		return nil, fmt.Errorf("%w: model closed or no boxes", ErrInvalidArgument)
	}
	out := make([]float32, len(boxes)*m.hidden)
	var pinner runtime.Pinner
	defer pinner.Unpin()
	pinner.Pin(&boxes[0])
	pinner.Pin(&out[0])
	if err := call(func() C.nc_status {
		return C.nc_encode_boxes(m.handle, (*C.float)(&boxes[0][0]), C.int32_t(len(boxes)), (*C.float)(&out[0]))
	}); err != nil {
		return nil, fmt.Errorf("encode boxes: %w", err)
	}
	return out, nil
}

// Hidden is the LLM width; Vocab the number of token ids.
func (m *Model) Hidden() int { return m.hidden }
func (m *Model) Vocab() int  { return m.vocab }
