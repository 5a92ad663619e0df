package torchbin

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

// pickler assembles pickles opcode by opcode, so tests can write exactly what torch.save writes and then
// exactly what it never would.
type pickler struct{ b []byte }

func (p *pickler) op(ops ...byte) *pickler { p.b = append(p.b, ops...); return p }

func (p *pickler) str(s string) *pickler {
	p.b = append(p.b, opBinUnicode)
	p.b = binary.LittleEndian.AppendUint32(p.b, uint32(len(s)))
	p.b = append(p.b, s...)
	return p
}

func (p *pickler) int(n int64) *pickler {
	switch {
	case n >= 0 && n < 1<<8:
		return p.op(opBinInt1, byte(n))
	case n >= 0 && n < 1<<16:
		p.b = append(p.b, opBinInt2)
		p.b = binary.LittleEndian.AppendUint16(p.b, uint16(n))
	case n >= -1<<31 && n < 1<<31:
		p.b = append(p.b, opBinInt)
		p.b = binary.LittleEndian.AppendUint32(p.b, uint32(int32(n)))
	default:
		p.b = append(p.b, opLong1, 8)
		p.b = binary.LittleEndian.AppendUint64(p.b, uint64(n))
	}
	return p
}

func (p *pickler) global(module, name string) *pickler {
	p.b = append(p.b, opGlobal)
	p.b = append(p.b, module+"\n"+name+"\n"...)
	return p
}

func (p *pickler) ints(v []int64) *pickler {
	p.op(opMark)
	for _, x := range v {
		p.int(x)
	}
	return p.op(opTuple)
}

// fakeTensor is a state-dict entry as torch.save describes it.
type fakeTensor struct {
	name    string
	class   string // torch.<class>
	key     string
	numel   int64 // of the storage
	offset  int64
	shape   []int64
	stride  []int64 // nil: row-major
	asParam bool    // wrapped in _rebuild_parameter
}

func rowMajor(shape []int64) []int64 {
	stride := make([]int64, len(shape))
	s := int64(1)
	for i := len(shape) - 1; i >= 0; i-- {
		stride[i] = s
		s *= shape[i]
	}
	return stride
}

// tensor writes one _rebuild_tensor_v2 call as torch.save does.
func (p *pickler) tensor(t fakeTensor) *pickler {
	if t.asParam {
		p.global("torch._utils", "_rebuild_parameter").op(opMark)
	}
	p.global("torch._utils", "_rebuild_tensor_v2").op(opMark)
	p.op(opMark).str("storage").global("torch", t.class).str(t.key).str("cpu").int(t.numel).op(opTuple, opBinPersID)
	stride := t.stride
	if stride == nil {
		stride = rowMajor(t.shape)
	}
	p.int(t.offset).ints(t.shape).ints(stride).op(opNewFalse)
	p.global("collections", "OrderedDict").op(opEmptyTuple, opReduce)
	p.op(opTuple, opReduce)
	if t.asParam {
		p.op(opNewFalse).global("collections", "OrderedDict").op(opEmptyTuple, opReduce, opTuple, opReduce)
	}
	return p
}

// stateDictPickle is torch.save's data.pkl for an OrderedDict of tensors.
func stateDictPickle(tensors ...fakeTensor) []byte {
	p := (&pickler{}).op(opProto, 2).global("collections", "OrderedDict").op(opEmptyTuple, opReduce, opBinPut, 0, opMark)
	for _, t := range tensors {
		p.str(t.name).tensor(t)
	}
	return p.op(opSetItems, opStop).b
}

// zipEntry is one file of a test archive.
type zipEntry struct {
	name     string
	data     []byte
	compress bool
}

// archiveBytes writes a zip as torch does (stored entries) unless an entry asks for compression.
func archiveBytes(t testing.TB, entries ...zipEntry) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		method := zip.Store
		if e.compress {
			method = zip.Deflate
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: method})
		require.NoError(t, err)
		_, err = w.Write(e.data)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

// checkpoint is a data.pkl plus its storages, under torch's "archive/" prefix.
func checkpoint(t testing.TB, pkl []byte, storages map[string][]byte) []byte {
	entries := []zipEntry{{name: "archive/data.pkl", data: pkl}, {name: "archive/byteorder", data: []byte("little")}}
	for key, data := range storages {
		entries = append(entries, zipEntry{name: "archive/data/" + key, data: data})
	}
	return archiveBytes(t, entries...)
}

func readBytes(data []byte) ([]Tensor, error) { return Read(bytes.NewReader(data), int64(len(data))) }

// tensorBytes returns what a tensor's byte range holds in an in-memory archive.
func tensorBytes(data []byte, t Tensor) []byte { return data[t.Offset : t.Offset+t.Size] }
