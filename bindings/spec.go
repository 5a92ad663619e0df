package bindings

// #include "nextchat.h"
import "C"

import (
	"fmt"

	"github.com/nextchat/nextchat/internal/config"
)

// Component is a part of the model (MODEL_SPEC §1): llm, vision, projector, loc, seg_prompt, sam_*.
type Component int

// ComponentLLM is the language model: embeddings, decoder layers, final norm, lm_head (MODEL_SPEC §1.1).
const ComponentLLM = Component(C.NC_COMPONENT_LLM)

// NumComponents is the number of components.
const NumComponents = int(C.NC_COMPONENT_COUNT)

func (c Component) String() string { return C.GoString(C.nc_component_name(C.int32_t(c))) }

// Components lists every component in the core's order.
func Components() []Component {
	out := make([]Component, NumComponents)
	for i := range out {
		out[i] = Component(i)
	}
	return out
}

// Kind says what a tensor is (nc_tensor_kind): how synthetic weights are drawn for it.
type Kind int

const (
	KindMatrix    Kind = C.NC_KIND_MATRIX
	KindBias      Kind = C.NC_KIND_BIAS
	KindNormScale Kind = C.NC_KIND_NORM_SCALE
	KindNormShift Kind = C.NC_KIND_NORM_SHIFT
	KindEmbedding Kind = C.NC_KIND_EMBEDDING
	KindRelPos    Kind = C.NC_KIND_REL_POS
	KindGaussian  Kind = C.NC_KIND_GAUSSIAN
)

// TensorSpec is one tensor a config implies (MODEL_SPEC §7.2).
type TensorSpec struct {
	Name      string
	Shape     []int64
	Component Component
	Used      bool // false for tensors the release carries but the engine never reads
	Kind      Kind
}

// NumElements is the product of the shape.
func (t TensorSpec) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Spec lists, in the core's order, every tensor the config implies.
func Spec(cfg config.Config) ([]TensorSpec, error) {
	c, err := toC(cfg)
	if err != nil {
		return nil, err
	}
	var spec *C.nc_spec
	if err := call(func() C.nc_status { return C.nc_spec_create(&c, &spec) }); err != nil {
		return nil, fmt.Errorf("tensor spec: %w", err)
	}
	defer C.nc_spec_free(spec)
	n := int64(C.nc_spec_count(spec))
	out := make([]TensorSpec, 0, n)
	for i := int64(0); i < n; i++ {
		var t C.nc_tensor_spec
		if err := call(func() C.nc_status { return C.nc_spec_get(spec, C.int64_t(i), &t) }); err != nil {
			return nil, fmt.Errorf("tensor spec entry %d: %w", i, err)
		}
		shape := make([]int64, int(t.ndim))
		for d := range shape {
			shape[d] = int64(t.shape[d])
		}
		out = append(out, TensorSpec{
			Name:      C.GoString(t.name),
			Shape:     shape,
			Component: Component(t.component),
			Used:      t.role == C.int32_t(C.NC_TENSOR_REQUIRED),
			Kind:      Kind(t.kind),
		})
	}
	return out, nil
}
