package modeldir

import (
	"sort"

	"github.com/nextchat/nextchat/bindings"
)

// ComponentParams counts the parameters the engine reads in one component, by stored dtype.
type ComponentParams struct {
	Component bindings.Component
	Params    int64
	ByDType   map[string]int64
}

// Inventory classifies a directory's tensors against the spec its config implies.
type Inventory struct {
	Components    []ComponentParams // every component, in the core's order
	UsedParams    int64
	StoredParams  int64    // every stored tensor, used or not
	Unused        []string // in the spec, present, never read (MODEL_SPEC §7.2: CLIP post_layernorm, ...)
	Unknown       []string // not in the spec at all (e.g. rotary inv_freq buffers)
	TensorsByType map[string]int
}

// Inventory compares the stored tensors with the spec.
func (d *Dir) Inventory(spec []bindings.TensorSpec) Inventory {
	byName := make(map[string]bindings.TensorSpec, len(spec))
	for _, t := range spec {
		byName[t.Name] = t
	}
	inv := Inventory{TensorsByType: map[string]int{}}
	for _, c := range bindings.Components() {
		inv.Components = append(inv.Components, ComponentParams{Component: c, ByDType: map[string]int64{}})
	}
	for _, t := range d.Tensors {
		n := t.NumElements()
		inv.StoredParams += n
		inv.TensorsByType[string(t.DType)]++
		s, known := byName[t.Name]
		switch {
		case !known:
			inv.Unknown = append(inv.Unknown, t.Name)
		case !s.Used:
			inv.Unused = append(inv.Unused, t.Name)
		default:
			c := &inv.Components[s.Component]
			c.Params += n
			c.ByDType[string(t.DType)] += n
			inv.UsedParams += n
		}
	}
	sort.Strings(inv.Unused)
	sort.Strings(inv.Unknown)
	return inv
}
