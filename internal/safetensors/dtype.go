package safetensors

// DType is a safetensors element type, spelled as it appears in the header.
type DType string

// The dtypes this package understands. Identifiers are spelled exactly as the
// header spells them (hence the underscores) so the two never drift apart.
const (
	F64     DType = "F64"
	F32     DType = "F32"
	F16     DType = "F16"
	BF16    DType = "BF16"
	F8_E4M3 DType = "F8_E4M3"
	F8_E5M2 DType = "F8_E5M2"
	I64     DType = "I64"
	I32     DType = "I32"
	I16     DType = "I16"
	I8      DType = "I8"
	U64     DType = "U64"
	U32     DType = "U32"
	U16     DType = "U16"
	U8      DType = "U8"
	BOOL    DType = "BOOL"
)

// dtypeSizes is the single source of truth for which dtypes are known.
// Sub-byte types (F4, F6_*) are deliberately absent: their sizes are not a
// whole number of bytes and nothing downstream can consume them yet.
var dtypeSizes = map[DType]int{
	F64: 8, F32: 4, F16: 2, BF16: 2, F8_E4M3: 1, F8_E5M2: 1,
	I64: 8, I32: 4, I16: 2, I8: 1,
	U64: 8, U32: 4, U16: 2, U8: 1,
	BOOL: 1,
}

// Size returns the number of bytes per element, or 0 for an unknown dtype.
func (d DType) Size() int { return dtypeSizes[d] }

// Known reports whether d is a dtype this package can size.
func (d DType) Known() bool { return d.Size() > 0 }

// String returns the header spelling of d.
func (d DType) String() string { return string(d) }
