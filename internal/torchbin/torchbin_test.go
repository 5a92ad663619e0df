package torchbin

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nextchat/nextchat/internal/safetensors"
)

func seq(n int, start byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = start + byte(i)
	}
	return b
}

// What torch.save writes for a state dict: shared storages, views at an offset, scalars, empty tensors,
// parameters, and an OrderedDict carrying _metadata — every tensor lands on its exact bytes.
func TestReadsWhatTorchSaveWrites(t *testing.T) {
	pkl := (&pickler{}).op(opProto, 2).global("collections", "OrderedDict").op(opEmptyTuple, opReduce, opBinPut, 0, opMark).
		str("w").tensor(fakeTensor{class: "BFloat16Storage", key: "0", numel: 6, shape: []int64{2, 3}}).
		str("view").tensor(fakeTensor{class: "HalfStorage", key: "1", numel: 10, offset: 2, shape: []int64{4}}).
		str("same").tensor(fakeTensor{class: "HalfStorage", key: "1", numel: 10, offset: 6, shape: []int64{2, 2}}).
		str("scalar").tensor(fakeTensor{class: "FloatStorage", key: "2", numel: 1, shape: []int64{}}).
		str("empty").tensor(fakeTensor{class: "FloatStorage", key: "3", numel: 0, shape: []int64{0, 4}}).
		str("param").tensor(fakeTensor{class: "LongStorage", key: "4", numel: 2, shape: []int64{1, 2}, stride: []int64{7, 1}, asParam: true}).
		op(opSetItems).
		// state_dict()'s _metadata, set by BUILD: nested dicts the reader drops.
		op(opEmptyDict).str("_metadata").global("collections", "OrderedDict").op(opEmptyTuple, opReduce).
		str("").op(opEmptyDict).str("version").int(1).op(opSetItem, opSetItem, opSetItem, opBuild, opStop).b
	data := checkpoint(t, pkl, map[string][]byte{"0": seq(12, 0), "1": seq(20, 100), "2": seq(4, 50), "3": nil, "4": seq(16, 200)})
	tensors, err := readBytes(data)
	require.NoError(t, err)
	want := []struct {
		name  string
		dtype safetensors.DType
		shape []int64
		bytes []byte
	}{
		{"w", safetensors.BF16, []int64{2, 3}, seq(12, 0)},
		{"view", safetensors.F16, []int64{4}, seq(8, 104)},
		{"same", safetensors.F16, []int64{2, 2}, seq(8, 112)},
		{"scalar", safetensors.F32, []int64{}, seq(4, 50)},
		{"empty", safetensors.F32, []int64{0, 4}, []byte{}},
		{"param", safetensors.I64, []int64{1, 2}, seq(16, 200)},
	}
	require.Len(t, tensors, len(want))
	for i, w := range want {
		got := tensors[i]
		assert.Equal(t, w.name, got.Name)
		assert.Equal(t, w.dtype, got.DType, w.name)
		assert.Equal(t, w.shape, got.Shape, w.name)
		assert.Equal(t, w.bytes, tensorBytes(data, got), w.name)
	}
	assert.Equal(t, int64(1), tensors[3].NumElements())
}

// The seeds are real torch.save output: every one reads, and the views land on the right halves.
func TestReadsTorchSaveOutput(t *testing.T) {
	seeds := seedArchives(t)
	require.Len(t, seeds, 5)
	for name, data := range seeds {
		_, err := readBytes(data)
		require.NoError(t, err, name)
	}
	zip64, err := readBytes(seeds["zip64"])
	require.NoError(t, err)
	data := seeds["views_and_scalars"]
	tensors, err := readBytes(data)
	require.NoError(t, err)
	require.Len(t, zip64, len(tensors))
	for i, tn := range tensors {
		assert.Equal(t, tensorBytes(data, tn), tensorBytes(seeds["zip64"], zip64[i]), "zip64 records place %s the same", tn.Name)
	}
	byName := map[string]Tensor{}
	for _, tn := range tensors {
		byName[tn.Name] = tn
	}
	f16 := func(v ...uint16) []byte {
		var b []byte
		for _, x := range v {
			b = binary.LittleEndian.AppendUint16(b, x)
		}
		return b
	}
	assert.Equal(t, f16(0x4000, 0x4200, 0x4400, 0x4500), tensorBytes(data, byName["view"]), "2..5 of arange(12)")
	assert.Equal(t, f16(0x4600, 0x4700, 0x4800, 0x4880, 0x4900, 0x4980), tensorBytes(data, byName["rest"]), "6..11")
	assert.Equal(t, []int64{2, 3}, byName["rest"].Shape)
	assert.Equal(t, safetensors.BF16, byName["w"].DType)
	assert.Equal(t, []int64{}, byName["scalar"].Shape)
	assert.Equal(t, safetensors.I64, byName["ids"].DType)
	assert.Equal(t, int64(0), byName["empty"].Size)
}

// pickle_protocol=4 frames the pickle and memoizes implicitly; a plain dict instead of an OrderedDict and
// negative or wide integers in the unused slots still read.
func TestReadsProtocol4AndPlainDict(t *testing.T) {
	p := (&pickler{}).op(opProto, 4, opFrame, 0, 0, 0, 0, 0, 0, 0, 0).op(opEmptyDict, opMemoize, opMark)
	p.op(opShortBinUnicode, 1, 'x', opMemoize).tensor(fakeTensor{class: "FloatStorage", key: "k", numel: 2, shape: []int64{2}})
	p.op(opSetItems, opStop)
	data := checkpoint(t, p.b, map[string][]byte{"k": seq(8, 1)})
	tensors, err := readBytes(data)
	require.NoError(t, err)
	require.Len(t, tensors, 1)
	assert.Equal(t, "x", tensors[0].Name)
	assert.Equal(t, seq(8, 1), tensorBytes(data, tensors[0]))

	for _, tc := range []struct {
		pkl  []byte
		want int64
	}{
		{[]byte{opLong1, 2, 0xfe, 0xff, opStop}, -2},
		{[]byte{opLong1, 0, opStop}, 0},
		{(&pickler{}).int(1 << 40).op(opStop).b, 1 << 40},
		{[]byte{opBinInt, 0xff, 0xff, 0xff, 0xff, opStop}, -1},
	} {
		v, _, err := unpickle(tc.pkl)
		require.NoError(t, err)
		assert.Equal(t, tc.want, v)
	}
}

// Hostile and broken inputs: each is refused with its own sentinel and a message that says what was wrong.
func TestRefusesHostileAndMalformedCheckpoints(t *testing.T) {
	ok := fakeTensor{name: "w", class: "HalfStorage", key: "0", numel: 4, shape: []int64{2, 2}}
	okData := map[string][]byte{"0": seq(8, 0)}
	withTensor := func(edit func(*fakeTensor)) []byte {
		t := ok
		edit(&t)
		return stateDictPickle(t)
	}
	prefix := func() *pickler { return (&pickler{}).op(opProto, 2) }
	tests := []struct {
		name     string
		pkl      []byte            // data.pkl, with okData as storages
		storages map[string][]byte // overrides okData
		archive  []byte            // a whole file instead
		is       error
		want     string
	}{
		{name: "os.system global", pkl: prefix().global("os", "system").str("rm -rf /").op(opTuple1, opReduce, opStop).b,
			is: ErrForbidden, want: `global "os.system" is not a torch state-dict class`},
		{name: "builtins.eval global", pkl: prefix().global("builtins", "eval").op(opStop).b,
			is: ErrForbidden, want: `"builtins.eval"`},
		{name: "torch global outside the allow-list", pkl: prefix().global("torch", "load").op(opStop).b,
			is: ErrForbidden, want: `"torch.load"`},
		{name: "INST opcode", pkl: prefix().op('i').b, is: ErrForbidden, want: "(INST)"},
		{name: "NEWOBJ opcode", pkl: prefix().op(0x81).b, is: ErrForbidden, want: "(NEWOBJ)"},
		{name: "STACK_GLOBAL os.system", pkl: prefix().str("os").str("system").op(opStackGlobal).b, is: ErrForbidden, want: `(STACK_GLOBAL): torchbin: forbidden pickle content: global "os.system"`},
		{name: "STACK_GLOBAL of non-strings", pkl: prefix().op(opNone, opNone, opStackGlobal).b, is: ErrMalformed, want: "STACK_GLOBAL of None and None"},
		{name: "unknown opcode", pkl: prefix().op(0xff).b, is: ErrForbidden, want: "opcode 0xff is not one torch.save writes"},
		{name: "protocol 6", pkl: []byte{opProto, 6}, is: ErrUnsupported, want: "pickle protocol 6"},
		{name: "storage class called", pkl: prefix().global("torch", "HalfStorage").op(opEmptyTuple, opReduce, opStop).b,
			is: ErrForbidden, want: "torch.HalfStorage, which is not callable"},
		{name: "string called", pkl: prefix().str("x").op(opEmptyTuple, opReduce, opStop).b, is: ErrForbidden, want: "REDUCE calls the string"},
		{name: "BUILD on a tensor", pkl: prefix().op(opMark).tensor(ok).op(opEmptyDict, opBuild).b, is: ErrForbidden, want: "BUILD on a tensor"},
		{name: "persistent id of another kind", pkl: prefix().op(opMark).str("module").global("torch", "HalfStorage").str("0").str("cpu").int(1).op(opTuple, opBinPersID).b,
			is: ErrForbidden, want: "persistent id kind the string \"module\""},
		{name: "persistent id without a storage class", pkl: prefix().op(opMark).str("storage").str("HalfStorage").str("0").str("cpu").int(1).op(opTuple, opBinPersID).b,
			is: ErrMalformed, want: "storage class is the string"},
		{name: "storage beyond its entry", pkl: withTensor(func(t *fakeTensor) { t.numel = 400; t.shape = []int64{20, 20} }),
			is: ErrMalformed, want: `storage "0" declares 400 F16 elements (800 bytes) but its entry holds 8 bytes`},
		{name: "huge declared storage", pkl: withTensor(func(t *fakeTensor) { t.numel = 1 << 62 }),
			is: ErrLimit, want: "declares 4611686018427387904 F16 elements"},
		{name: "huge declared shape", pkl: withTensor(func(t *fakeTensor) { t.shape = []int64{1 << 40, 1 << 40} }),
			is: ErrLimit, want: "overflows"},
		{name: "view beyond its storage", pkl: withTensor(func(t *fakeTensor) { t.offset = 3 }),
			is: ErrMalformed, want: `reads elements [3, 3+4) of storage "0", which has 4`},
		{name: "non-contiguous", pkl: withTensor(func(t *fakeTensor) { t.stride = []int64{1, 2} }),
			is: ErrUnsupported, want: "is not contiguous"},
		{name: "rank over the bound", pkl: withTensor(func(t *fakeTensor) { t.shape = make([]int64, 17) }),
			is: ErrLimit, want: "size has 17 dimensions"},
		{name: "negative size", pkl: withTensor(func(t *fakeTensor) { t.shape = []int64{-2, -2} }),
			is: ErrMalformed, want: "size[0] is the integer -2"},
		{name: "stride rank differs", pkl: withTensor(func(t *fakeTensor) { t.stride = []int64{1} }),
			is: ErrMalformed, want: "stride has 1 dimensions, size has 2"},
		{name: "storage with two dtypes", pkl: stateDictPickle(ok, fakeTensor{name: "v", class: "FloatStorage", key: "0", numel: 4, shape: []int64{4}}),
			is: ErrMalformed, want: `storage "0" declared as 4 F16 and as 4 F32`},
		{name: "missing storage entry", pkl: withTensor(func(t *fakeTensor) { t.key = "9" }), is: ErrMalformed, want: `storage "9" has no entry data/9`},
		{name: "duplicate tensor", pkl: stateDictPickle(ok, ok), is: ErrMalformed, want: `tensor "w" appears twice`},
		{name: "entry that is not a tensor", pkl: prefix().op(opEmptyDict, opMark).str("w").int(3).op(opSetItems, opStop).b,
			is: ErrMalformed, want: `entry "w" is the integer 3, not a tensor`},
		{name: "not a dict", pkl: prefix().op(opEmptyList, opStop).b, is: ErrMalformed, want: "holds a list, not a state dict"},
		{name: "no STOP", pkl: prefix().op(opEmptyDict).b, is: ErrMalformed, want: "ends without STOP"},
		{name: "bytes after STOP", pkl: prefix().op(opEmptyDict, opStop, opNone).b, is: ErrMalformed, want: "1 bytes after STOP"},
		{name: "string past the end", pkl: append(prefix().op(opBinUnicode).b, 0xff, 0xff, 0xff, 0x7f, 'a'),
			is: ErrMalformed, want: "needs 2147483647 bytes, 1 left"},
		{name: "invalid UTF-8 name", pkl: prefix().op(opShortBinUnicode, 2, 0xc3, 0x28).b, is: ErrMalformed, want: "not UTF-8"},
		{name: "memo never stored", pkl: prefix().op(opBinGet, 7).b, is: ErrMalformed, want: "memo entry 7 was never stored"},
		{name: "pop past the mark", pkl: prefix().op(opNone, opMark, opTuple2).b, is: ErrMalformed, want: "needs 2 values on the stack above the mark, has 0"},
		{name: "TUPLE without mark", pkl: prefix().op(opNone, opTuple).b, is: ErrMalformed, want: "no mark to pop to"},
		{name: "STOP with a mark open", pkl: prefix().op(opNone, opMark, opStop).b, is: ErrMalformed, want: "STOP with 1 values and 1 marks"},
		{name: "SETITEMS odd", pkl: prefix().op(opEmptyDict, opMark, opNone, opSetItems).b, is: ErrMalformed, want: "odd number (1)"},
		{name: "SETITEM on a tuple", pkl: prefix().op(opEmptyTuple, opNone, opNone, opSetItem).b, is: ErrMalformed, want: "SETITEM on a 0-tuple"},
		{name: "APPEND on a dict", pkl: prefix().op(opEmptyDict, opNone, opAppend).b, is: ErrMalformed, want: "APPEND on a dict"},
		{name: "9-byte integer", pkl: prefix().op(opLong1, 9).b, is: ErrLimit, want: "9-byte integer"},
		{name: "GLOBAL without newline", pkl: append(prefix().op(opGlobal).b, bytes.Repeat([]byte("a"), 300)...), is: ErrMalformed, want: "without a newline"},
		{name: "stack bomb", pkl: append(prefix().op(opNone, opBinPut, 0).b, bytes.Repeat([]byte{opBinGet, 0}, maxStack+1)...),
			is: ErrLimit, want: "stack deeper than 65536"},
		{name: "mark bomb", pkl: append(prefix().b, bytes.Repeat([]byte{opMark}, maxStack+1)...), is: ErrLimit, want: "open marks"},
		{name: "wrong arity", pkl: prefix().global("torch._utils", "_rebuild_tensor_v2").op(opEmptyTuple, opReduce).b,
			is: ErrMalformed, want: "_rebuild_tensor_v2 with 0 arguments"},
		{name: "storage beyond the file", archive: pastTheEnd(t), is: ErrMalformed,
			want: "archive/data/0 (1073741824 bytes at offset"},
		{name: "compressed storage", archive: archiveBytes(t, zipEntry{name: "a/data.pkl", data: stateDictPickle(ok)},
			zipEntry{name: "a/data/0", data: seq(8, 0), compress: true}), is: ErrUnsupported, want: "is compressed"},
		{name: "big-endian", archive: archiveBytes(t, zipEntry{name: "a/data.pkl", data: stateDictPickle(ok)},
			zipEntry{name: "a/byteorder", data: []byte("big")}, zipEntry{name: "a/data/0", data: seq(8, 0)}), is: ErrUnsupported, want: `byte order "big"`},
		{name: "two data.pkl", archive: archiveBytes(t, zipEntry{name: "a/data.pkl"}, zipEntry{name: "b/data.pkl"}), is: ErrNotArchive, want: "2 top-level data.pkl"},
		{name: "duplicate zip entry", archive: archiveBytes(t, zipEntry{name: "a/data.pkl"}, zipEntry{name: "a/data.pkl"}), is: ErrMalformed, want: "appears twice"},
		{name: "legacy pickle file", archive: stateDictPickle(ok), is: ErrNotArchive, want: "a bare pickle, as torch.save wrote before 1.6"},
		{name: "truncated download", archive: checkpoint(t, stateDictPickle(ok), okData)[:300], is: ErrMalformed,
			want: "the zip archive is truncated or damaged (an incomplete download?)"},
		{name: "not a checkpoint at all", archive: []byte("<html>404</html>"), is: ErrNotArchive, want: "zip: not a valid zip file"},
		{name: "not a checkpoint", archive: archiveBytes(t, zipEntry{name: "readme.txt", data: []byte("hi")}), is: ErrNotArchive, want: "0 top-level data.pkl"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.archive
			if data == nil {
				storages := okData
				if tc.storages != nil {
					storages = tc.storages
				}
				data = checkpoint(t, tc.pkl, storages)
			}
			tensors, err := readBytes(data)
			require.Error(t, err)
			assert.Nil(t, tensors)
			assert.ErrorIs(t, err, tc.is)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

// pastTheEnd is an archive whose zip directory claims a 1 GiB storage entry (and a pickle declaring as much)
// in a file of a few hundred bytes.
func pastTheEnd(t *testing.T) []byte {
	const n = 1 << 29 // F16 elements
	data := checkpoint(t, stateDictPickle(fakeTensor{name: "w", class: "HalfStorage", key: "0", numel: n, shape: []int64{n}}),
		map[string][]byte{"0": seq(8, 0)})
	// The directory lists the name last; its 46-byte header starts with the central-directory signature.
	entry := bytes.LastIndex(data, []byte("archive/data/0")) - 46
	require.Equal(t, []byte("PK\x01\x02"), data[entry:entry+4])
	binary.LittleEndian.PutUint32(data[entry+20:], 2*n) // compressed size
	binary.LittleEndian.PutUint32(data[entry+24:], 2*n) // uncompressed size
	return data
}

// The bound on data.pkl is checked against the zip's declared size before anything is read.
func TestPickleSizeBound(t *testing.T) {
	_, _, err := unpickle(make([]byte, MaxPickleBytes+1))
	assert.ErrorIs(t, err, ErrLimit)
	assert.Contains(t, err.Error(), "over the 67108864-byte bound")
}

// The memo bound holds however the indices are spread.
func TestMemoBound(t *testing.T) {
	p := (&pickler{}).op(opProto, 2, opNone)
	for i := 0; i <= maxMemo; i++ {
		p.b = append(p.b, opLongBinPut)
		p.b = binary.LittleEndian.AppendUint32(p.b, uint32(i*3))
	}
	_, _, err := unpickle(p.b)
	assert.ErrorIs(t, err, ErrLimit)
	assert.Contains(t, err.Error(), "more than 1048576 memo entries")
}

// Open keeps the file and reads tensors by offset; a file that is not there is an ordinary os error.
func TestOpenAndSection(t *testing.T) {
	data := checkpoint(t, stateDictPickle(fakeTensor{name: "w", class: "BFloat16Storage", key: "0", numel: 3, shape: []int64{3}}),
		map[string][]byte{"0": seq(6, 9)})
	path := filepath.Join(t.TempDir(), "pytorch_model.bin")
	require.NoError(t, os.WriteFile(path, data, 0o644))
	a, err := Open(path)
	require.NoError(t, err)
	defer a.Close()
	buf := make([]byte, 6)
	_, err = a.Section(a.Tensors[0]).ReadAt(buf, 0)
	require.NoError(t, err)
	assert.Equal(t, seq(6, 9), buf)

	_, err = Open(filepath.Join(t.TempDir(), "missing.bin"))
	assert.True(t, errors.Is(err, os.ErrNotExist))
}
