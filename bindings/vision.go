package bindings

// #include "nextchat.h"
import "C"

import (
	"fmt"
	"math"
	"time"
)

// ModelDims is the image side of an open model (nc_model_dims, MODEL_SPEC §1.2–1.3).
type ModelDims struct {
	ImageSize        int // S: CLIP input side in pixels
	PatchSize        int
	ImageTokens      int // P: <im_patch> rows per image
	VisionHiddenSize int
	VisionLayers     int // CLIP encoder layers that run (up to hidden_states[select_layer])
	HiddenSize       int // LLM width = projector output
}

// Dims reports the model's image dimensions.
func (m *Model) Dims() (ModelDims, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.handle == nil {
		return ModelDims{}, fmt.Errorf("%w: model is closed", ErrInvalidArgument)
	}
	return m.dims()
}

func (m *Model) dims() (ModelDims, error) {
	d := C.nc_model_dims{struct_size: C.size_t(C.sizeof_nc_model_dims)}
	if err := call(func() C.nc_status { return C.nc_model_get_dims(m.handle, &d) }); err != nil {
		return ModelDims{}, err
	}
	return ModelDims{ImageSize: int(d.image_size), PatchSize: int(d.patch_size), ImageTokens: int(d.image_tokens),
		VisionHiddenSize: int(d.vision_hidden_size), VisionLayers: int(d.vision_layers), HiddenSize: int(d.hidden_size)}, nil
}

// EncodeImages runs the CLIP tower and the projector over n images. pixels is [n, 3, S, S], CLIP-normalized
// (§1.4); projected is [n, P, hidden] (the input embeddings of each image's <im_patch> rows) and clip
// [n, P, vision_hidden] (hidden_states[select_layer] without the class token). Safe for concurrent use, also
// alongside Step; concurrent calls on one model run one after the other.
func (m *Model) EncodeImages(pixels []float32, n int) (projected, clip []float32, err error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.handle == nil {
		return nil, nil, fmt.Errorf("%w: model is closed", ErrInvalidArgument)
	}
	d, err := m.dims()
	if err != nil {
		return nil, nil, err
	}
	per := 3 * d.ImageSize * d.ImageSize
	if n <= 0 || n > 1<<20 {
		return nil, nil, fmt.Errorf("%w: %d images, want 1 to %d", ErrInvalidArgument, n, 1<<20)
	}
	if len(pixels) != n*per {
		return nil, nil, fmt.Errorf("%w: %d pixel values for %d images of 3×%d×%d (want %d)", ErrShape, len(pixels), n,
			d.ImageSize, d.ImageSize, n*per)
	}
	projected = make([]float32, n*d.ImageTokens*d.HiddenSize)
	clip = make([]float32, n*d.ImageTokens*d.VisionHiddenSize)
	// Float slices hold no Go pointers, so cgo lets C read and write them for the duration of the call.
	if err := call(func() C.nc_status {
		return C.nc_encode_images(m.handle, (*C.float)(&pixels[0]), C.int32_t(n), (*C.float)(&projected[0]),
			(*C.float)(&clip[0]))
	}); err != nil {
		return nil, nil, fmt.Errorf("encode %d images: %w", n, err)
	}
	return projected, clip, nil
}

// FMAPeak measures this machine's sustained fp32 FMA throughput in GFLOP/s: threads threads (0 = one per
// hardware thread) running register-resident FMA chains for about d.
func FMAPeak(threads int, d time.Duration) (float64, error) {
	return probe(threads, d, func(t C.int32_t, s C.double, v *C.double) C.nc_status { return C.nc_probe_fma_peak(t, s, v) })
}

// AMXPeak measures this machine's AMX tile throughput in GFLOP/s of bf16 products (0 where the kernels do not use
// the tiles); the kernels' float32-exact products on the tiles peak at a third of it.
func AMXPeak(threads int, d time.Duration) (float64, error) {
	return probe(threads, d, func(t C.int32_t, s C.double, v *C.double) C.nc_status { return C.nc_probe_amx_peak(t, s, v) })
}

// ReadBandwidth measures this machine's sustained memory read bandwidth in GB/s: threads threads streaming a
// buffer of 4× the last-level cache (256 MiB to 2 GiB) for about d.
func ReadBandwidth(threads int, d time.Duration) (float64, error) {
	return probe(threads, d, func(t C.int32_t, s C.double, v *C.double) C.nc_status {
		return C.nc_probe_read_bandwidth(t, s, v)
	})
}

// probe runs one of the core's machine probes.
func probe(threads int, d time.Duration, measure func(C.int32_t, C.double, *C.double) C.nc_status) (float64, error) {
	if err := probeThreads(threads); err != nil {
		return 0, err
	}
	var v C.double
	err := call(func() C.nc_status { return measure(C.int32_t(threads), C.double(d.Seconds()), &v) })
	return float64(v), err
}

// probeThreads refuses counts that would wrap in the C int32 (the core checks the range).
func probeThreads(threads int) error {
	if threads < 0 || threads > math.MaxInt32 {
		return fmt.Errorf("%w: %d threads", ErrInvalidArgument, threads)
	}
	return nil
}
