package safetensors

import (
	"fmt"
	"math"
)

// mulNonNeg multiplies two non-negative int64s, reporting false on overflow.
func mulNonNeg(a, b int64) (int64, bool) {
	if a == 0 || b == 0 {
		return 0, true
	}
	if a > math.MaxInt64/b {
		return 0, false
	}
	return a * b, true
}

// numElements returns the element count of shape, or an error for a negative
// dimension or a shape whose non-zero dimensions multiply past int64.
//
// Overflow is checked on the product of the non-zero dimensions even when some
// dimension is zero: a shape like [0, 2^40, 2^40] holds no data, but code that
// derives strides from it would overflow. Accepting only shapes whose non-zero
// product fits guarantees that any stride (a product of a subset of the
// dimensions) fits in int64 too.
func numElements(shape []int64) (int64, error) {
	product := int64(1)
	hasZero := false
	for i, d := range shape {
		switch {
		case d < 0:
			return 0, fmt.Errorf("shape[%d] = %d is negative", i, d)
		case d == 0:
			hasZero = true
		default:
			p, ok := mulNonNeg(product, d)
			if !ok {
				return 0, fmt.Errorf("shape %s: element count overflows int64", formatShape(shape))
			}
			product = p
		}
	}
	if hasZero {
		return 0, nil
	}
	return product, nil
}

// byteSize returns the number of data bytes a tensor of the given dtype and
// shape occupies, with the same overflow rules as numElements.
func byteSize(dtype DType, shape []int64) (int64, error) {
	n, err := numElements(shape)
	if err != nil {
		return 0, err
	}
	size, ok := mulNonNeg(n, int64(dtype.Size()))
	if !ok {
		return 0, fmt.Errorf("shape %s of %s: byte size overflows int64", formatShape(shape), dtype)
	}
	return size, nil
}
