package modeldir

import (
	"fmt"
	"sort"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/progress"
	"github.com/nextchat/nextchat/internal/safetensors"
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
	// Used matrices whose bytes do not start safetensors.DataAlign-aligned in their files (MisalignedMatrices).
	Misaligned      int
	MisalignedBytes int64
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
	inv.Misaligned, inv.MisalignedBytes = d.MisalignedMatrices(spec)
	sort.Strings(inv.Unused)
	sort.Strings(inv.Unknown)
	return inv
}

// MisalignedMatrices counts the matrices the engine multiplies whose bytes do not start safetensors.DataAlign-aligned in
// their files. The core multiplies them where the file maps them, so each 64-byte load of their rows spans two
// cache lines: prefill, CLIP and the SAM encoder run slower on such files (docs/BENCHMARKS.md "Aligned weights").
// Files from earlier versions of nextchat gen and convert, and from other writers, may place them so.
func (d *Dir) MisalignedMatrices(spec []bindings.TensorSpec) (count int, bytes int64) {
	matrices := make(map[string]bool, len(spec))
	for _, t := range spec {
		matrices[t.Name] = t.Used && t.Kind == bindings.KindMatrix
	}
	for _, t := range d.Tensors {
		if matrices[t.Name] && (d.Headers[t.File].DataOffset+t.Begin)%safetensors.DataAlign != 0 {
			count++
			bytes += t.End - t.Begin
		}
	}
	return count, bytes
}

// AlignmentAdvice is what to tell a user about MisalignedMatrices' result; empty when there are none.
func AlignmentAdvice(count int, bytes int64) string {
	if count == 0 {
		return ""
	}
	return fmt.Sprintf("%d matrices (%s) are not %d-byte aligned in their files, which slows their products "+
		"(prefill, CLIP, SAM): `nextchat convert --from DIR --to NEWDIR` rewrites the directory with every matrix "+
		"aligned (docs/USAGE.md)", count, progress.FormatBytes(bytes), safetensors.DataAlign)
}
