// Package half converts between float32 and the 16-bit float formats of checkpoints (IEEE binary16 "F16"
// and bfloat16 "BF16"), rounding to nearest even as PyTorch's .to(torch.float16 / torch.bfloat16) does.
package half

import "math"

// BF16FromF32 rounds to the nearest bfloat16, ties to even; NaN stays a (quiet) NaN.
func BF16FromF32(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 {
		return uint16(b>>16) | 0x40 // quiet NaN, sign kept
	}
	// Adding 0x7fff plus the lowest kept bit rounds half to even; overflow to Inf is the correct result.
	b += 0x7fff + (b>>16)&1
	return uint16(b >> 16)
}

// F32FromBF16 is exact.
func F32FromBF16(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }

// F16FromF32 rounds to the nearest binary16, ties to even, with subnormals, overflow to ±Inf and NaN kept.
func F16FromF32(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23) & 0xff
	mant := b & 0x7fffff
	switch {
	case exp == 0xff && mant != 0:
		return sign | 0x7e00 // quiet NaN
	case exp == 0xff:
		return sign | 0x7c00 // Inf
	}
	e := exp - 127 + 15 // rebias
	if e >= 0x1f {
		return sign | 0x7c00 // too large: Inf
	}
	if e <= 0 {
		// Subnormal (or zero) in binary16: shift the full significand right, rounding half to even.
		if e < -10 {
			return sign // below half the smallest subnormal
		}
		m := mant | 0x800000
		shift := uint32(14 - e)
		return sign | uint16(roundShift(m, shift))
	}
	// Normal: keep 10 mantissa bits; a carry out of the mantissa correctly bumps the exponent (up to Inf).
	v := uint32(e)<<10 | mant>>13
	return sign | uint16(v+roundBit(mant, 13))
}

// roundShift returns m >> shift rounded to nearest, ties to even.
func roundShift(m, shift uint32) uint32 { return m>>shift + roundBit(m, shift) }

// roundBit is 1 when dropping the low `shift` bits of m must round the kept part up (nearest, ties to even).
func roundBit(m, shift uint32) uint32 {
	half := uint32(1) << (shift - 1)
	rest := m & (1<<shift - 1)
	kept := m >> shift
	if rest > half || (rest == half && kept&1 == 1) {
		return 1
	}
	return 0
}

// F32FromF16 is exact.
func F32FromF16(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f:
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp != 0:
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	case mant == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal: value is mant × 2^-24, exact in float32.
	v := float32(mant) / (1 << 24)
	if sign != 0 {
		v = -v
	}
	return v
}
