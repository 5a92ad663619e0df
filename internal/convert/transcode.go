package convert

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/nextchat/nextchat/internal/half"
	"github.com/nextchat/nextchat/internal/progress"
	"github.com/nextchat/nextchat/internal/safetensors"
)

// chunkBytes is how much of a tensor is in memory at once: peak memory is a few chunks, whatever the model's
// size. A multiple of every element size.
const chunkBytes = 4 << 20

// transcoder copies tensors chunk by chunk, converting the dtype when asked (rounding to nearest even, as
// torch's .to() does) and checking every value is finite: a NaN or Inf in a weight means a corrupt download,
// and a bf16 value too large for f16 must not silently become Inf.
type transcoder struct {
	bar     *progress.Bar
	in, out []byte
	flushed int64 // non-zero values that became zero (f16 underflow)
}

func newTranscoder(bar *progress.Bar) *transcoder {
	return &transcoder{bar: bar, in: make([]byte, chunkBytes), out: make([]byte, chunkBytes)}
}

// copyTensor streams t's bytes to w as dtype `to`.
func (c *transcoder) copyTensor(ctx context.Context, t sourceTensor, to safetensors.DType, w io.Writer) error {
	from := t.dtype
	inSize, outSize := int64(from.Size()), int64(to.Size())
	// Chunks hold whole elements, the same count on both sides.
	per := chunkBytes / max(inSize, outSize)
	remaining := t.numel
	var done int64
	for remaining > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := min(per, remaining)
		in := c.in[:n*inSize]
		if _, err := t.data.ReadAt(in, done*inSize); err != nil {
			return fmt.Errorf("read %s: %w", t.file, err)
		}
		out := in
		if from != to {
			out = c.out[:n*outSize]
		}
		if err := c.convert(in, from, out, to, done); err != nil {
			return err
		}
		if _, err := w.Write(out); err != nil {
			return err
		}
		c.bar.Add(int64(len(out)))
		done += n
		remaining -= n
	}
	return nil
}

// convert encodes every element of in as `to` into out, checking each is finite and stays finite. With the
// same dtype on both sides out is in: the bytes are kept as they are and only checked. first is the index of
// in's first element, for messages.
func (c *transcoder) convert(in []byte, from safetensors.DType, out []byte, to safetensors.DType, first int64) error {
	if from == to {
		return checkFinite(in, from, first)
	}
	inSize, outSize := from.Size(), to.Size()
	for i := 0; i*inSize < len(in); i++ {
		v := decode(in[i*inSize:], from)
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nonFinite(first+int64(i), v)
		}
		enc := encode(out[i*outSize:], to, v)
		if math.IsInf(float64(enc), 0) {
			return fmt.Errorf("element %d (%g) overflows %s", first+int64(i), v, to)
		}
		if enc == 0 && v != 0 {
			c.flushed++
		}
	}
	return nil
}

// exponentMasks select the exponent bits: all ones is Inf or NaN in every float format.
var exponentMasks = map[safetensors.DType]uint32{safetensors.F32: 0x7f800000, safetensors.F16: 0x7c00, safetensors.BF16: 0x7f80}

// checkFinite checks raw values without decoding them (the fast path of a plain copy).
func checkFinite(b []byte, d safetensors.DType, first int64) error {
	mask, size := exponentMasks[d], d.Size()
	for i := 0; i*size < len(b); i++ {
		var bits uint32
		if size == 4 {
			bits = binary.LittleEndian.Uint32(b[i*size:])
		} else {
			bits = uint32(binary.LittleEndian.Uint16(b[i*size:]))
		}
		if bits&mask == mask {
			return nonFinite(first+int64(i), decode(b[i*size:], d))
		}
	}
	return nil
}

func nonFinite(i int64, v float32) error {
	return fmt.Errorf("element %d is %v: the checkpoint is corrupt", i, v)
}

func decode(b []byte, d safetensors.DType) float32 {
	switch d {
	case safetensors.F32:
		return math.Float32frombits(binary.LittleEndian.Uint32(b))
	case safetensors.F16:
		return half.F32FromF16(binary.LittleEndian.Uint16(b))
	}
	return half.F32FromBF16(binary.LittleEndian.Uint16(b))
}

// encode writes v as d into b and returns the value stored.
func encode(b []byte, d safetensors.DType, v float32) float32 {
	switch d {
	case safetensors.F32:
		binary.LittleEndian.PutUint32(b, math.Float32bits(v))
		return v
	case safetensors.F16:
		h := half.F16FromF32(v)
		binary.LittleEndian.PutUint16(b, h)
		return half.F32FromF16(h)
	}
	h := half.BF16FromF32(v)
	binary.LittleEndian.PutUint16(b, h)
	return half.F32FromBF16(h)
}
