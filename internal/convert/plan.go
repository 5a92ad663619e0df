package convert

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nextchat/nextchat/bindings"
	"github.com/nextchat/nextchat/internal/safetensors"
)

// Why a tensor of the input is not written.
const (
	DropUnused   = "unused"   // in the spec, never read by the engine (MODEL_SPEC §7.2)
	DropBuffer   = "buffer"   // a buffer the engine recomputes or has as constants: inv_freq, position_ids, SAM pixel stats
	DropUnknown  = "unknown"  // not a NExT-Chat tensor at all
	DropReplaced = "replaced" // the checkpoint's CLIP copy, when --clip supplies the tower
)

// Dropped is an input tensor left out of the output.
type Dropped struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
	Bytes  int64  `json:"bytes"`
}

// clipPrefix is where the checkpoint keeps its CLIP tower (MODEL_SPEC §7.2); openai's CLIPModel checkpoint
// names the same tensors from vision_model.
const (
	clipPrefix       = "model.vision_tower."
	openaiCLIPPrefix = "vision_model."
)

// maxListed bounds how many problems an error lists, as the core's load does.
const maxListed = 20

// keptTensor is an input tensor as it will be written.
type keptTensor struct {
	src sourceTensor
	out safetensors.DType
}

// selection is what a conversion writes and leaves out.
type selection struct {
	kept    []keptTensor // in spec order
	dropped []Dropped
}

// selectTensors checks the input against the spec the config implies: every tensor the engine reads must be
// present with its shape and a float dtype; the rest is dropped with a reason (or, with keepUnused, the
// spec's unused tensors are kept).
func selectTensors(spec []bindings.TensorSpec, tensors []sourceTensor, target safetensors.DType, keepUnused bool) (selection, error) {
	order := make(map[string]int, len(spec))
	for i, s := range spec {
		order[s.Name] = i
	}
	var sel selection
	var problems []string
	present := map[string]bool{}
	for _, t := range tensors {
		i, known := order[t.name]
		bytes := t.numel * int64(t.dtype.Size())
		switch {
		case !known && isBuffer(t.name):
			sel.dropped = append(sel.dropped, Dropped{t.name, DropBuffer, bytes})
			continue
		case !known:
			sel.dropped = append(sel.dropped, Dropped{t.name, DropUnknown, bytes})
			continue
		case !spec[i].Used && !keepUnused:
			sel.dropped = append(sel.dropped, Dropped{t.name, DropUnused, bytes})
			continue
		}
		present[t.name] = true
		if !slices.Equal(t.shape, spec[i].Shape) {
			problems = append(problems, fmt.Sprintf("%s (%s): shape %v, the config implies %v", t.name, t.file, t.shape, spec[i].Shape))
		}
		if !isFloat(t.dtype) {
			problems = append(problems, fmt.Sprintf("%s (%s): dtype %s, want F32, F16 or BF16", t.name, t.file, t.dtype))
		}
		out := target
		if target == "" {
			out = t.dtype
		}
		sel.kept = append(sel.kept, keptTensor{src: t, out: out})
	}
	missingCLIP := false
	for _, s := range spec {
		if s.Used && !present[s.Name] {
			problems = append(problems, "missing "+s.Name)
			missingCLIP = missingCLIP || strings.HasPrefix(s.Name, clipPrefix)
		}
	}
	if len(problems) > 0 {
		return selection{}, problemsError(problems, missingCLIP)
	}
	slices.SortFunc(sel.kept, func(a, b keptTensor) int { return order[a.src.name] - order[b.src.name] })
	return sel, nil
}

func problemsError(problems []string, missingCLIP bool) error {
	listed := problems[:min(len(problems), maxListed)]
	msg := fmt.Sprintf("%d problem(s) against the tensor spec (MODEL_SPEC §7.2):\n  %s", len(problems), strings.Join(listed, "\n  "))
	if len(problems) > len(listed) {
		msg += fmt.Sprintf("\n  ... and %d more", len(problems)-len(listed))
	}
	if missingCLIP {
		msg += "\n(the CLIP vision tower is missing: pass --clip DIR with openai/clip-vit-large-patch14-336)"
	}
	return fmt.Errorf("%w: %s", ErrInvalid, msg)
}

// bufferSuffixes name the non-parameter buffers a checkpoint may carry, depending on the library versions that
// saved it: the engine recomputes RoPE frequencies and CLIP positions (§7.2) and has SAM's pixel statistics as
// constants (§4).
var bufferSuffixes = []string{".rotary_emb.inv_freq", ".embeddings.position_ids", ".pixel_mean", ".pixel_std"}

func isBuffer(name string) bool {
	return slices.ContainsFunc(bufferSuffixes, func(suffix string) bool { return strings.HasSuffix(name, suffix) })
}

func isFloat(d safetensors.DType) bool {
	return d == safetensors.F32 || d == safetensors.F16 || d == safetensors.BF16
}

// substituteCLIP replaces the checkpoint's CLIP tower with openai's: the checkpoint's copy is dropped, and
// the CLIP checkpoint's vision_model.* tensors take the checkpoint's names (its text tower and projections
// are ignored).
func substituteCLIP(tensors []sourceTensor, clip []sourceTensor) ([]sourceTensor, []Dropped, error) {
	var out []sourceTensor
	var dropped []Dropped
	for _, t := range tensors {
		if strings.HasPrefix(t.name, clipPrefix) {
			dropped = append(dropped, Dropped{t.name, DropReplaced, t.numel * int64(t.dtype.Size())})
			continue
		}
		out = append(out, t)
	}
	found := 0
	for _, t := range clip {
		if rest, ok := strings.CutPrefix(t.name, openaiCLIPPrefix); ok {
			t.name = clipPrefix + openaiCLIPPrefix + rest
			out = append(out, t)
			found++
		}
	}
	if found == 0 {
		return nil, nil, fmt.Errorf("%w: the --clip directory has no %s* tensors: not a CLIP checkpoint", ErrInvalid, openaiCLIPPrefix)
	}
	return out, dropped, nil
}
