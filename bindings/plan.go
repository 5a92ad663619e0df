package bindings

// #include "nextchat.h"
import "C"

import (
	"fmt"
)

// Stage is a part of the engine that owns working memory (nc_stage): the LLM step, CLIP, the SAM encoder and
// the SAM decoder.
type Stage int

// NumStages is the number of stages.
const NumStages = int(C.NC_STAGE_COUNT)

func (s Stage) String() string { return C.GoString(C.nc_stage_name(C.int32_t(s))) }

// Stages lists every stage in the core's order.
func Stages() []Stage {
	out := make([]Stage, NumStages)
	for i := range out {
		out[i] = Stage(i)
	}
	return out
}

// PlanRequest is what a memory plan is made for (nc_plan_request); zero fields take the core's defaults.
type PlanRequest struct {
	Backend            Backend
	Threads            int   // CPU threads per op pool (as ModelParams.Threads)
	MaxContext         int64 // positions per sequence (0: max_position_embeddings)
	MaxSequences       int   // sequences alive at once and per step (0: 1)
	MaxStepRows        int   // rows of one step, all sequences together (0: MaxContext × MaxSequences)
	MaxImages          int   // images per EncodeImages call (0: 1)
	MaxLocations       int   // boxes per EncodeBoxes, locations per SAMDecodeMasks (0: 8)
	KVBlockSize        int   // positions per KV block (0: 16)
	KVDType            DType
	FeatureCacheImages int // CLIP features the caller caches
	SAMCacheImages     int // SAM image embeddings the caller caches
}

// Plan is a memory plan in bytes (nc_plan). Request holds the request with the core's defaults filled in.
type Plan struct {
	Request           PlanRequest
	WeightBytes       [NumComponents]uint64
	WeightsTotal      uint64
	DerivedBytes      [NumStages]uint64
	KVBlocks          int64
	KVBlockBytes      uint64
	KVBytes           uint64
	WorkspaceBytes    [NumStages]uint64
	ScratchBytes      [NumStages]uint64
	SequenceBytes     uint64
	FeatureCacheBytes uint64
	SAMCacheBytes     uint64
	HostBytes         uint64
	DeviceBytes       uint64
}

// Plan computes the memory plan for r; nothing is allocated.
func (m *Model) Plan(r PlanRequest) (Plan, error) {
	return m.plan(r, false)
}

// Reserve allocates every stage's workspace for r up front: work within r never grows a buffer afterwards, and
// work beyond it fails with ErrOverPlan before any compute. It returns the plan. Call it before other calls.
func (m *Model) Reserve(r PlanRequest) (Plan, error) {
	return m.plan(r, true)
}

func (m *Model) plan(r PlanRequest, reserve bool) (Plan, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.handle == nil {
		return Plan{}, fmt.Errorf("%w: model is closed", ErrInvalidArgument)
	}
	req := r.toC()
	var p C.nc_plan
	p.struct_size = C.size_t(C.sizeof_nc_plan)
	var err error
	if reserve {
		err = call(func() C.nc_status { return C.nc_model_reserve(m.handle, &req, &p) })
	} else {
		err = call(func() C.nc_status { return C.nc_model_plan(m.handle, &req, &p) })
	}
	if err != nil {
		return Plan{}, err
	}
	return planFromC(&p), nil
}

// Workspace is the bytes of workspace the model holds now per stage (what Plan.WorkspaceBytes plans).
func (m *Model) Workspace() ([NumStages]uint64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out [NumStages]uint64
	if m.handle == nil {
		return out, fmt.Errorf("%w: model is closed", ErrInvalidArgument)
	}
	var held [C.NC_STAGE_COUNT]C.uint64_t
	if err := call(func() C.nc_status { return C.nc_model_workspace(m.handle, &held[0]) }); err != nil {
		return out, err
	}
	for i := range out {
		out[i] = uint64(held[i])
	}
	return out, nil
}

func (r PlanRequest) toC() C.nc_plan_request {
	var c C.nc_plan_request
	c.struct_size = C.size_t(C.sizeof_nc_plan_request)
	c.backend = C.int32_t(r.Backend)
	c.threads = C.int32_t(r.Threads)
	c.max_context = C.int64_t(r.MaxContext)
	c.max_sequences = C.int32_t(r.MaxSequences)
	c.max_step_rows = C.int32_t(r.MaxStepRows)
	c.max_images = C.int32_t(r.MaxImages)
	c.max_locations = C.int32_t(r.MaxLocations)
	c.kv_block_size = C.int32_t(r.KVBlockSize)
	c.kv_dtype = C.int32_t(r.KVDType)
	c.feature_cache_images = C.int32_t(r.FeatureCacheImages)
	c.sam_cache_images = C.int32_t(r.SAMCacheImages)
	return c
}

func planFromC(p *C.nc_plan) Plan {
	q := &p.request
	out := Plan{
		Request: PlanRequest{Backend: Backend(q.backend), Threads: int(q.threads), MaxContext: int64(q.max_context),
			MaxSequences: int(q.max_sequences), MaxStepRows: int(q.max_step_rows), MaxImages: int(q.max_images),
			MaxLocations: int(q.max_locations), KVBlockSize: int(q.kv_block_size), KVDType: DType(q.kv_dtype),
			FeatureCacheImages: int(q.feature_cache_images), SAMCacheImages: int(q.sam_cache_images)},
		WeightsTotal:      uint64(p.weights_total),
		KVBlocks:          int64(p.kv_blocks),
		KVBlockBytes:      uint64(p.kv_block_bytes),
		KVBytes:           uint64(p.kv_bytes),
		SequenceBytes:     uint64(p.sequence_bytes),
		FeatureCacheBytes: uint64(p.feature_cache_bytes),
		SAMCacheBytes:     uint64(p.sam_cache_bytes),
		HostBytes:         uint64(p.host_bytes),
		DeviceBytes:       uint64(p.device_bytes),
	}
	for i := range out.WeightBytes {
		out.WeightBytes[i] = uint64(p.weight_bytes[i])
	}
	for i := range NumStages {
		out.DerivedBytes[i] = uint64(p.derived_bytes[i])
		out.WorkspaceBytes[i] = uint64(p.workspace_bytes[i])
		out.ScratchBytes[i] = uint64(p.scratch_bytes[i])
	}
	return out
}
