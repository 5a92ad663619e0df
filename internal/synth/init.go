package synth

import (
	"hash/fnv"
	"math"

	"github.com/nextchat/nextchat/bindings"
)

// distribution is how one tensor's values are drawn: uniform with the given mean and standard deviation,
// or standard normal for SAM's Fourier matrix.
type distribution struct {
	mean, std float64
	normal    bool
	// perColumn, when set, replaces mean for element i by perColumn[i % len(perColumn)] (box output biases).
	perColumn []float64
}

// Scales chosen so activations stay O(1) through every stage and LLM logits are peaked, not near-uniform:
// greedy decoding then has clear margins and is stable under tiny numeric differences between backends.
const (
	biasStd       = 0.02
	normScaleStd  = 0.1 // around 1
	embeddingStd  = 1.0 // as nn.Embedding's N(0, 1)
	relPosStd     = 0.1 // large enough that a wrong relative-position index changes results
	lmHeadGain    = 4.0 // logits' standard deviation for a unit-RMS final hidden state
	boxWeightGain = 0.15
)

// boxBias centres decoded boxes on a valid box (xyxy, normalized, §3) so that random models output sane boxes.
var boxBias = []float64{0.25, 0.25, 0.75, 0.75}

// distributionFor picks the distribution of a tensor from its kind; two names get special scales (why: above).
func distributionFor(t bindings.TensorSpec) distribution {
	switch t.Name {
	case "lm_head.weight":
		return distribution{std: lmHeadGain / math.Sqrt(float64(fanIn(t)))}
	case "loc_decoder.2.weight":
		return distribution{std: boxWeightGain / math.Sqrt(float64(fanIn(t)))}
	case "loc_decoder.2.bias":
		return distribution{std: biasStd, perColumn: boxBias}
	}
	switch t.Kind {
	case bindings.KindMatrix:
		return distribution{std: 1 / math.Sqrt(float64(fanIn(t)))}
	case bindings.KindNormScale:
		return distribution{mean: 1, std: normScaleStd}
	case bindings.KindEmbedding:
		return distribution{std: embeddingStd}
	case bindings.KindRelPos:
		return distribution{std: relPosStd}
	case bindings.KindGaussian:
		return distribution{std: 1, normal: true}
	}
	return distribution{std: biasStd} // biases and norm shifts
}

// fanIn of a weight [out, in, kh, kw...] is everything but the first dimension.
func fanIn(t bindings.TensorSpec) int64 {
	if len(t.Shape) == 0 || t.Shape[0] == 0 {
		return 1
	}
	return max(1, t.NumElements()/t.Shape[0])
}

// chunkSeed makes every chunk of every tensor an independent stream, so output is identical whatever the
// number of workers or the order in which chunks are generated.
func chunkSeed(seed uint64, name string, chunk int64) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return splitmix(splitmix(seed^h.Sum64()) + uint64(chunk))
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// rng is xoshiro256**: fast, and its exact sequence is defined here so checkpoints never change with Go.
type rng struct{ s [4]uint64 }

func newRNG(seed uint64) *rng {
	r := &rng{}
	for i := range r.s {
		seed = splitmix(seed)
		r.s[i] = seed
	}
	return r
}

func (r *rng) next() uint64 {
	s := &r.s
	result := rotl(s[1]*5, 7) * 9
	t := s[1] << 17
	s[2] ^= s[0]
	s[3] ^= s[1]
	s[1] ^= s[2]
	s[0] ^= s[3]
	s[2] ^= t
	s[3] = rotl(s[3], 45)
	return result
}

func rotl(x uint64, k uint) uint64 { return x<<k | x>>(64-k) }

// unit is uniform in [-1, 1) with 24 random bits: exactly representable in float32.
func (r *rng) unit() float32 { return float32(int64(r.next()>>40)-(1<<23)) / (1 << 23) }

// gauss is a standard normal draw by Box-Muller (used only for the small Fourier matrix).
func (r *rng) gauss() float64 {
	u1 := (float64(r.next()>>11) + 1) / (1 << 53)
	u2 := float64(r.next()>>11) / (1 << 53)
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}

// fill writes values [first, first+len(dst)) of a tensor drawn from d.
func (d distribution) fill(dst []float32, r *rng, first int64) {
	const sqrt3 = 1.7320508075688772 // uniform on [-a, a) has std a/√3
	half := float32(d.std * sqrt3)
	for i := range dst {
		mean := d.mean
		if d.perColumn != nil {
			mean = d.perColumn[(first+int64(i))%int64(len(d.perColumn))]
		}
		if d.normal {
			dst[i] = float32(mean + d.std*r.gauss())
		} else {
			dst[i] = float32(mean) + half*r.unit()
		}
	}
}
