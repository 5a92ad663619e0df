package safetensors

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// llamaLikeSpecs declares the tensors of a 32-layer Llama-style checkpoint
// (291 tensors, real naming) with tiny shapes: parsing cost depends on the
// header, not on the data.
func llamaLikeSpecs() []TensorSpec {
	specs := []TensorSpec{{Name: "model.embed_tokens.weight", DType: BF16, Shape: []int64{8, 4}}}
	for l := range 32 {
		for _, p := range []string{
			"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
			"mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
		} {
			specs = append(specs, TensorSpec{Name: fmt.Sprintf("model.layers.%d.%s.weight", l, p), DType: BF16, Shape: []int64{4, 4}})
		}
		for _, p := range []string{"input_layernorm", "post_attention_layernorm"} {
			specs = append(specs, TensorSpec{Name: fmt.Sprintf("model.layers.%d.%s.weight", l, p), DType: BF16, Shape: []int64{4}})
		}
	}
	return append(specs,
		TensorSpec{Name: "model.norm.weight", DType: BF16, Shape: []int64{4}},
		TensorSpec{Name: "lm_head.weight", DType: BF16, Shape: []int64{8, 4}},
	)
}

// writeZeros writes a file declaring specs with all-zero data.
func writeZeros(tb testing.TB, w io.Writer, specs []TensorSpec) {
	tb.Helper()
	sw, err := NewWriter(w, specs, map[string]string{"format": "pt"})
	if err != nil {
		tb.Fatal(err)
	}
	for _, s := range specs {
		size, _ := byteSize(s.DType, s.Shape)
		if err := sw.WriteTensor(s.Name, make([]byte, size)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := sw.Close(); err != nil {
		tb.Fatal(err)
	}
}

func BenchmarkParseHeader(b *testing.B) {
	var buf bytes.Buffer
	writeZeros(b, &buf, llamaLikeSpecs())
	file := buf.Bytes()
	h, err := parseBytes(file)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(h.DataOffset) // throughput over the header, the part parsed
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseBytes(file); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteHeader(b *testing.B) {
	specs := llamaLikeSpecs()
	b.ReportAllocs()
	for b.Loop() {
		writeZeros(b, io.Discard, specs)
	}
}
