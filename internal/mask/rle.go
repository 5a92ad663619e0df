// Package mask holds binary segmentation masks (MODEL_SPEC §4: SAM logits thresholded at 0, in original image
// pixels) and their COCO run-length encoding, the format `nextchat run --json` and the server return.
package mask

import (
	"errors"
	"fmt"
	"strings"
)

// Mask is a binary mask, row-major [Height][Width], 1 = object.
type Mask struct {
	Width, Height int
	Bits          []uint8
}

// Area is the number of object pixels.
func (m Mask) Area() int {
	n := 0
	for _, b := range m.Bits {
		if b != 0 {
			n++
		}
	}
	return n
}

// RLE is COCO's run-length encoding: "size" is [height, width], counts alternate background/object runs over
// the mask in column-major (Fortran) order, starting with background; "counts" is the compressed string form.
type RLE struct {
	Size   [2]int `json:"size"`
	Counts string `json:"counts"`
}

// Encode returns the mask's COCO RLE (pycocotools' mask.encode).
func Encode(m Mask) RLE {
	var runs []int
	prev, run := uint8(0), 0
	for x := 0; x < m.Width; x++ {
		for y := 0; y < m.Height; y++ {
			v := uint8(0)
			if m.Bits[y*m.Width+x] != 0 {
				v = 1
			}
			if v != prev {
				runs = append(runs, run)
				prev, run = v, 0
			}
			run++
		}
	}
	runs = append(runs, run)
	return RLE{Size: [2]int{m.Height, m.Width}, Counts: compress(runs)}
}

// compress writes counts in pycocotools' string form: each count (after the third, as a difference from the
// count two before) in 5-bit groups, least significant first, with a continuation bit, offset by 48.
func compress(counts []int) string {
	var b strings.Builder
	for i, c := range counts {
		x := int64(c)
		if i > 2 {
			x -= int64(counts[i-2])
		}
		for more := true; more; {
			ch := x & 0x1f
			x >>= 5
			if ch&0x10 != 0 {
				more = x != -1
			} else {
				more = x != 0
			}
			if more {
				ch |= 0x20
			}
			b.WriteByte(byte(ch + 48))
		}
	}
	return b.String()
}

// ErrBadRLE marks an RLE string that does not describe its size.
var ErrBadRLE = errors.New("invalid RLE")

// Decode inverts Encode.
func Decode(r RLE) (Mask, error) {
	h, w := r.Size[0], r.Size[1]
	if h < 0 || w < 0 || int64(h)*int64(w) > 1<<31 {
		return Mask{}, fmt.Errorf("%w: size %v", ErrBadRLE, r.Size)
	}
	var counts []int
	s := r.Counts
	for p := 0; p < len(s); {
		var x int64
		k := 0
		for more := true; more; k++ {
			if p >= len(s) || k > 12 {
				return Mask{}, fmt.Errorf("%w: truncated count", ErrBadRLE)
			}
			c := int64(s[p]) - 48
			p++
			x |= (c & 0x1f) << (5 * k)
			more = c&0x20 != 0
			if !more && c&0x10 != 0 {
				x |= -1 << (5 * (k + 1))
			}
		}
		if len(counts) > 2 {
			x += int64(counts[len(counts)-2])
		}
		if x < 0 {
			return Mask{}, fmt.Errorf("%w: negative run", ErrBadRLE)
		}
		counts = append(counts, int(x))
	}
	m := Mask{Width: w, Height: h, Bits: make([]uint8, w*h)}
	i, v := 0, uint8(0)
	for _, c := range counts {
		if i+c > w*h {
			return Mask{}, fmt.Errorf("%w: runs exceed %d×%d", ErrBadRLE, h, w)
		}
		for j := i; j < i+c; j++ {
			m.Bits[(j%h)*w+j/h] = v
		}
		i += c
		v ^= 1
	}
	if i != w*h {
		return Mask{}, fmt.Errorf("%w: runs cover %d of %d pixels", ErrBadRLE, i, w*h)
	}
	return m, nil
}
