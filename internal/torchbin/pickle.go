package torchbin

import (
	"encoding/binary"
	"fmt"
	"unicode/utf8"

	"github.com/nextchat/nextchat/internal/safetensors"
)

// Bounds on what a pickle may declare. A 7B shard's data.pkl is about 100 kB and holds a few hundred tensors;
// these leave ample room for real checkpoints and keep a hostile one from exhausting memory.
const (
	MaxPickleBytes = 64 << 20
	maxStack       = 1 << 16
	maxMemo        = 1 << 20
	maxRank        = 16
	maxGlobalLine  = 256
)

// The opcodes torch.save emits for a state dict (protocol 2), plus protocol 4's framing, memo and globals, so a
// checkpoint saved with pickle_protocol=4 also reads. Names as in Python's pickletools.
const (
	opProto            = 0x80
	opFrame            = 0x95
	opStop             = '.'
	opMark             = '('
	opEmptyDict        = '}'
	opEmptyList        = ']'
	opEmptyTuple       = ')'
	opTuple            = 't'
	opTuple1           = 0x85
	opTuple2           = 0x86
	opTuple3           = 0x87
	opBinUnicode       = 'X'
	opShortBinUnicode  = 0x8c
	opBinInt           = 'J'
	opBinInt1          = 'K'
	opBinInt2          = 'M'
	opLong1            = 0x8a
	opNone             = 'N'
	opNewTrue          = 0x88
	opNewFalse         = 0x89
	opBinPut           = 'q'
	opLongBinPut       = 'r'
	opMemoize          = 0x94
	opBinGet           = 'h'
	opLongBinGet       = 'j'
	opGlobal           = 'c'
	opStackGlobal      = 0x93
	opBinPersID        = 'Q'
	opReduce           = 'R'
	opBuild            = 'b'
	opSetItem          = 's'
	opSetItems         = 'u'
	opAppend           = 'a'
	opAppends          = 'e'
	highestProtocol    = 5
	persistentIDLength = 5
)

// Values on the machine's stack. Nothing else is ever constructed.
type (
	tuple []any
	list  struct{ items []any }
	dict  struct{ entries []dictEntry }

	dictEntry struct{ key, value any }

	// global is an allow-listed name; only its kind is ever acted on.
	global struct {
		name  string
		kind  globalKind
		dtype safetensors.DType // storage classes
	}

	// storage is a persistent id ('storage', class, key, location, numel): a zip entry data/<key>.
	storage struct {
		key   string
		dtype safetensors.DType
		numel int64
	}

	// tensorRef is what _rebuild_tensor_v2 would build: a view of a storage.
	tensorRef struct {
		storage *storage
		offset  int64 // in elements
		shape   []int64
		stride  []int64
	}
)

type globalKind int

const (
	orderedDict globalKind = iota
	rebuildTensorV2
	rebuildParameter
	storageClass
)

// allowedGlobals is every global a state dict needs. Anything else (os.system, builtins.eval, a model class)
// is refused when the GLOBAL opcode names it, before anything could call it.
var allowedGlobals = map[string]global{
	"collections.OrderedDict":         {kind: orderedDict},
	"torch._utils._rebuild_tensor_v2": {kind: rebuildTensorV2},
	"torch._utils._rebuild_parameter": {kind: rebuildParameter},
	"torch.DoubleStorage":             {kind: storageClass, dtype: safetensors.F64},
	"torch.FloatStorage":              {kind: storageClass, dtype: safetensors.F32},
	"torch.HalfStorage":               {kind: storageClass, dtype: safetensors.F16},
	"torch.BFloat16Storage":           {kind: storageClass, dtype: safetensors.BF16},
	"torch.LongStorage":               {kind: storageClass, dtype: safetensors.I64},
	"torch.IntStorage":                {kind: storageClass, dtype: safetensors.I32},
	"torch.ShortStorage":              {kind: storageClass, dtype: safetensors.I16},
	"torch.CharStorage":               {kind: storageClass, dtype: safetensors.I8},
	"torch.ByteStorage":               {kind: storageClass, dtype: safetensors.U8},
	"torch.BoolStorage":               {kind: storageClass, dtype: safetensors.BOOL},
}

// machine runs a pickle over a byte slice. The memo holds references, never copies, so memory stays
// proportional to the pickle's length.
type machine struct {
	data     []byte
	pos      int
	stack    []any
	marks    []int
	memo     map[uint32]any
	storages map[string]*storage
}

// unpickle runs data to its STOP and returns the one value left, and the storages it referenced by key.
func unpickle(data []byte) (any, map[string]*storage, error) {
	if len(data) > MaxPickleBytes {
		return nil, nil, fmt.Errorf("%w: data.pkl is %d bytes, over the %d-byte bound", ErrLimit, len(data), MaxPickleBytes)
	}
	m := &machine{data: data, memo: map[uint32]any{}, storages: map[string]*storage{}}
	v, err := m.run()
	if err != nil {
		return nil, nil, err
	}
	return v, m.storages, nil
}

func (m *machine) run() (any, error) {
	for m.pos < len(m.data) {
		at := m.pos
		op := m.data[m.pos]
		m.pos++
		done, err := m.step(op)
		if err != nil {
			return nil, fmt.Errorf("data.pkl offset %d (%s): %w", at, opName(op), err)
		}
		if done {
			if m.pos != len(m.data) {
				return nil, fmt.Errorf("%w: data.pkl has %d bytes after STOP", ErrMalformed, len(m.data)-m.pos)
			}
			return m.stack[0], nil
		}
	}
	return nil, fmt.Errorf("%w: data.pkl ends without STOP", ErrMalformed)
}

// step executes one opcode; done is true at STOP.
func (m *machine) step(op byte) (done bool, err error) {
	switch op {
	case opProto:
		b, err := m.read(1)
		if err != nil {
			return false, err
		}
		if b[0] > highestProtocol {
			return false, fmt.Errorf("%w: pickle protocol %d", ErrUnsupported, b[0])
		}
	case opFrame:
		_, err = m.read(8) // frames only batch reads; the whole pickle is in memory
	case opStop:
		if len(m.stack) != 1 || len(m.marks) != 0 {
			return false, fmt.Errorf("%w: STOP with %d values and %d marks on the stack, want 1 and 0",
				ErrMalformed, len(m.stack), len(m.marks))
		}
		return true, nil
	case opMark:
		if len(m.marks) >= maxStack {
			return false, fmt.Errorf("%w: more than %d open marks", ErrLimit, maxStack)
		}
		m.marks = append(m.marks, len(m.stack))
	case opEmptyDict:
		err = m.push(&dict{})
	case opEmptyList:
		err = m.push(&list{})
	case opEmptyTuple:
		err = m.push(tuple{})
	case opTuple:
		items, err := m.popMark()
		if err != nil {
			return false, err
		}
		err = m.push(tuple(items))
		return false, err
	case opTuple1, opTuple2, opTuple3:
		items, err := m.popN(int(op-opTuple1) + 1)
		if err != nil {
			return false, err
		}
		err = m.push(tuple(items))
		return false, err
	case opBinUnicode:
		err = m.pushString(4)
	case opShortBinUnicode:
		err = m.pushString(1)
	case opBinInt1:
		b, err := m.read(1)
		if err != nil {
			return false, err
		}
		err = m.push(int64(b[0]))
		return false, err
	case opBinInt2:
		b, err := m.read(2)
		if err != nil {
			return false, err
		}
		err = m.push(int64(binary.LittleEndian.Uint16(b)))
		return false, err
	case opBinInt:
		b, err := m.read(4)
		if err != nil {
			return false, err
		}
		err = m.push(int64(int32(binary.LittleEndian.Uint32(b))))
		return false, err
	case opLong1:
		err = m.pushLong1()
	case opNone:
		err = m.push(nil)
	case opNewTrue:
		err = m.push(true)
	case opNewFalse:
		err = m.push(false)
	case opBinPut, opLongBinPut, opMemoize:
		err = m.put(op)
	case opBinGet, opLongBinGet:
		err = m.get(op)
	case opGlobal:
		err = m.global()
	case opStackGlobal:
		err = m.stackGlobal()
	case opBinPersID:
		err = m.persistentLoad()
	case opReduce:
		err = m.reduce()
	case opBuild:
		err = m.build()
	case opSetItem, opSetItems:
		err = m.setItems(op)
	case opAppend, opAppends:
		err = m.appends(op)
	default:
		return false, fmt.Errorf("%w: opcode 0x%02x is not one torch.save writes for a state dict", ErrForbidden, op)
	}
	return false, err
}

func (m *machine) read(n int) ([]byte, error) {
	if n < 0 || n > len(m.data)-m.pos {
		return nil, fmt.Errorf("%w: needs %d bytes, %d left", ErrMalformed, n, len(m.data)-m.pos)
	}
	b := m.data[m.pos : m.pos+n]
	m.pos += n
	return b, nil
}

func (m *machine) push(v any) error {
	if len(m.stack) >= maxStack {
		return fmt.Errorf("%w: stack deeper than %d", ErrLimit, maxStack)
	}
	m.stack = append(m.stack, v)
	return nil
}

// floor is the lowest stack index the current mark lets an opcode pop.
func (m *machine) floor() int {
	if len(m.marks) == 0 {
		return 0
	}
	return m.marks[len(m.marks)-1]
}

func (m *machine) popN(n int) ([]any, error) {
	if len(m.stack)-n < m.floor() {
		return nil, fmt.Errorf("%w: needs %d values on the stack above the mark, has %d", ErrMalformed, n, len(m.stack)-m.floor())
	}
	items := append([]any(nil), m.stack[len(m.stack)-n:]...)
	m.stack = m.stack[:len(m.stack)-n]
	return items, nil
}

func (m *machine) pop() (any, error) {
	v, err := m.popN(1)
	if err != nil {
		return nil, err
	}
	return v[0], nil
}

func (m *machine) top() (any, error) {
	if len(m.stack) <= m.floor() {
		return nil, fmt.Errorf("%w: empty stack", ErrMalformed)
	}
	return m.stack[len(m.stack)-1], nil
}

func (m *machine) popMark() ([]any, error) {
	if len(m.marks) == 0 {
		return nil, fmt.Errorf("%w: no mark to pop to", ErrMalformed)
	}
	at := m.marks[len(m.marks)-1]
	m.marks = m.marks[:len(m.marks)-1]
	items := append([]any(nil), m.stack[at:]...)
	m.stack = m.stack[:at]
	return items, nil
}

// pushString reads a length of lenBytes bytes, then that many bytes of UTF-8.
func (m *machine) pushString(lenBytes int) error {
	b, err := m.read(lenBytes)
	if err != nil {
		return err
	}
	n := int(b[0])
	if lenBytes == 4 {
		n = int(binary.LittleEndian.Uint32(b))
	}
	s, err := m.read(n)
	if err != nil {
		return err
	}
	if !utf8.Valid(s) {
		return fmt.Errorf("%w: string is not UTF-8", ErrMalformed)
	}
	return m.push(string(s))
}

// pushLong1 reads a little-endian two's-complement integer of up to 8 bytes (sizes and offsets of huge
// tensors); longer ones cannot describe anything a file holds.
func (m *machine) pushLong1() error {
	b, err := m.read(1)
	if err != nil {
		return err
	}
	n := int(b[0])
	if n > 8 {
		return fmt.Errorf("%w: %d-byte integer", ErrLimit, n)
	}
	raw, err := m.read(n)
	if err != nil {
		return err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(raw[i])
	}
	if n > 0 && n < 8 && raw[n-1]&0x80 != 0 {
		v |= ^uint64(0) << (8 * n) // sign-extend
	}
	return m.push(int64(v))
}

func (m *machine) put(op byte) error {
	v, err := m.top()
	if err != nil {
		return err
	}
	var idx uint32
	switch op {
	case opBinPut:
		b, err := m.read(1)
		if err != nil {
			return err
		}
		idx = uint32(b[0])
	case opLongBinPut:
		b, err := m.read(4)
		if err != nil {
			return err
		}
		idx = binary.LittleEndian.Uint32(b)
	default:
		idx = uint32(len(m.memo))
	}
	if _, replaced := m.memo[idx]; !replaced && len(m.memo) >= maxMemo {
		return fmt.Errorf("%w: more than %d memo entries", ErrLimit, maxMemo)
	}
	m.memo[idx] = v
	return nil
}

func (m *machine) get(op byte) error {
	var idx uint32
	if op == opBinGet {
		b, err := m.read(1)
		if err != nil {
			return err
		}
		idx = uint32(b[0])
	} else {
		b, err := m.read(4)
		if err != nil {
			return err
		}
		idx = binary.LittleEndian.Uint32(b)
	}
	v, ok := m.memo[idx]
	if !ok {
		return fmt.Errorf("%w: memo entry %d was never stored", ErrMalformed, idx)
	}
	return m.push(v)
}

// global reads "module\nname\n" and pushes it only if it is on the allow-list.
func (m *machine) global() error {
	module, err := m.line()
	if err != nil {
		return err
	}
	name, err := m.line()
	if err != nil {
		return err
	}
	return m.pushGlobal(module, name)
}

// stackGlobal is protocol 4's GLOBAL: module and name are strings on the stack.
func (m *machine) stackGlobal() error {
	items, err := m.popN(2)
	if err != nil {
		return err
	}
	module, ok1 := items[0].(string)
	name, ok2 := items[1].(string)
	if !ok1 || !ok2 {
		return fmt.Errorf("%w: STACK_GLOBAL of %s and %s, want two strings", ErrMalformed, describe(items[0]), describe(items[1]))
	}
	return m.pushGlobal(module, name)
}

func (m *machine) pushGlobal(module, name string) error {
	full := module + "." + name
	g, ok := allowedGlobals[full]
	if !ok {
		return fmt.Errorf("%w: global %.200q is not a torch state-dict class; refusing it", ErrForbidden, full)
	}
	g.name = full
	return m.push(g)
}

func (m *machine) line() (string, error) {
	for i := m.pos; i < len(m.data) && i-m.pos <= maxGlobalLine; i++ {
		if m.data[i] == '\n' {
			s := string(m.data[m.pos:i])
			m.pos = i + 1
			return s, nil
		}
	}
	return "", fmt.Errorf("%w: GLOBAL name without a newline within %d bytes", ErrMalformed, maxGlobalLine)
}

// persistentLoad turns ('storage', class, key, location, numel) into a storage reference. torch writes one
// id per storage and reuses its key for every tensor viewing it; a key with two dtypes or sizes is corrupt.
func (m *machine) persistentLoad() error {
	v, err := m.pop()
	if err != nil {
		return err
	}
	pid, ok := v.(tuple)
	if !ok || len(pid) != persistentIDLength {
		return fmt.Errorf("%w: persistent id is %s, want a 5-tuple ('storage', class, key, location, numel)", ErrMalformed, describe(v))
	}
	if tag, _ := pid[0].(string); tag != "storage" {
		return fmt.Errorf("%w: persistent id kind %s, want 'storage'", ErrForbidden, describe(pid[0]))
	}
	class, ok := pid[1].(global)
	if !ok || class.kind != storageClass {
		return fmt.Errorf("%w: persistent id storage class is %s", ErrMalformed, describe(pid[1]))
	}
	key, ok := pid[2].(string)
	if !ok || key == "" {
		return fmt.Errorf("%w: persistent id key is %s", ErrMalformed, describe(pid[2]))
	}
	if _, ok := pid[3].(string); !ok {
		return fmt.Errorf("%w: persistent id location is %s", ErrMalformed, describe(pid[3]))
	}
	numel, ok := pid[4].(int64)
	if !ok || numel < 0 {
		return fmt.Errorf("%w: persistent id element count is %s", ErrMalformed, describe(pid[4]))
	}
	s, seen := m.storages[key]
	if !seen {
		s = &storage{key: key, dtype: class.dtype, numel: numel}
		m.storages[key] = s
	} else if s.dtype != class.dtype || s.numel != numel {
		return fmt.Errorf("%w: storage %q declared as %d %s and as %d %s", ErrMalformed, key, s.numel, s.dtype, numel, class.dtype)
	}
	return m.push(s)
}

// reduce applies an allow-listed callable to its arguments.
func (m *machine) reduce() error {
	items, err := m.popN(2)
	if err != nil {
		return err
	}
	fn, ok := items[0].(global)
	if !ok {
		return fmt.Errorf("%w: REDUCE calls %s", ErrForbidden, describe(items[0]))
	}
	args, ok := items[1].(tuple)
	if !ok {
		return fmt.Errorf("%w: REDUCE arguments are %s, want a tuple", ErrMalformed, describe(items[1]))
	}
	var v any
	switch fn.kind {
	case orderedDict:
		if len(args) != 0 {
			return fmt.Errorf("%w: OrderedDict called with %d arguments", ErrMalformed, len(args))
		}
		v = &dict{}
	case rebuildTensorV2:
		v, err = rebuildTensor(args)
	case rebuildParameter:
		v, err = rebuildParam(args)
	default:
		return fmt.Errorf("%w: REDUCE calls %s, which is not callable here", ErrForbidden, fn.name)
	}
	if err != nil {
		return err
	}
	return m.push(v)
}

// rebuildTensor checks _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
// backward_hooks[, metadata]) and returns the view it describes.
func rebuildTensor(args tuple) (*tensorRef, error) {
	if len(args) != 6 && len(args) != 7 {
		return nil, fmt.Errorf("%w: _rebuild_tensor_v2 with %d arguments, want 6 or 7", ErrMalformed, len(args))
	}
	s, ok := args[0].(*storage)
	if !ok {
		return nil, fmt.Errorf("%w: _rebuild_tensor_v2 storage is %s", ErrMalformed, describe(args[0]))
	}
	offset, ok := args[1].(int64)
	if !ok || offset < 0 {
		return nil, fmt.Errorf("%w: _rebuild_tensor_v2 storage offset is %s", ErrMalformed, describe(args[1]))
	}
	shape, err := intTuple(args[2], "size", 0)
	if err != nil {
		return nil, err
	}
	stride, err := intTuple(args[3], "stride", len(shape))
	if err != nil {
		return nil, err
	}
	if _, ok := args[4].(bool); !ok {
		return nil, fmt.Errorf("%w: _rebuild_tensor_v2 requires_grad is %s", ErrMalformed, describe(args[4]))
	}
	if _, ok := args[5].(*dict); !ok {
		return nil, fmt.Errorf("%w: _rebuild_tensor_v2 backward_hooks is %s", ErrMalformed, describe(args[5]))
	}
	if len(args) == 7 {
		if _, ok := args[6].(*dict); !ok && args[6] != nil {
			return nil, fmt.Errorf("%w: _rebuild_tensor_v2 metadata is %s", ErrMalformed, describe(args[6]))
		}
	}
	return &tensorRef{storage: s, offset: offset, shape: shape, stride: stride}, nil
}

// rebuildParam checks _rebuild_parameter(data, requires_grad, backward_hooks): a parameter is its tensor.
func rebuildParam(args tuple) (*tensorRef, error) {
	if len(args) != 3 {
		return nil, fmt.Errorf("%w: _rebuild_parameter with %d arguments, want 3", ErrMalformed, len(args))
	}
	t, ok := args[0].(*tensorRef)
	if !ok {
		return nil, fmt.Errorf("%w: _rebuild_parameter data is %s", ErrMalformed, describe(args[0]))
	}
	return t, nil
}

// intTuple checks a size or stride tuple: non-negative sizes, at most maxRank entries, rank entries when
// rank > 0 (strides match the size's rank).
func intTuple(v any, what string, rank int) ([]int64, error) {
	t, ok := v.(tuple)
	if !ok {
		return nil, fmt.Errorf("%w: _rebuild_tensor_v2 %s is %s, want a tuple", ErrMalformed, what, describe(v))
	}
	if len(t) > maxRank {
		return nil, fmt.Errorf("%w: %s has %d dimensions, over %d", ErrLimit, what, len(t), maxRank)
	}
	if what == "stride" && len(t) != rank {
		return nil, fmt.Errorf("%w: stride has %d dimensions, size has %d", ErrMalformed, len(t), rank)
	}
	out := make([]int64, len(t))
	for i, x := range t {
		n, ok := x.(int64)
		if !ok || (what == "size" && n < 0) {
			return nil, fmt.Errorf("%w: %s[%d] is %s", ErrMalformed, what, i, describe(x))
		}
		out[i] = n
	}
	return out, nil
}

// build sets an object's state: only an OrderedDict's attributes (a state dict's _metadata, versions the
// loader does not need), which are dropped.
func (m *machine) build() error {
	state, err := m.pop()
	if err != nil {
		return err
	}
	obj, err := m.top()
	if err != nil {
		return err
	}
	if _, ok := obj.(*dict); !ok {
		return fmt.Errorf("%w: BUILD on %s", ErrForbidden, describe(obj))
	}
	if _, ok := state.(*dict); !ok && state != nil {
		return fmt.Errorf("%w: BUILD state is %s, want a dict", ErrMalformed, describe(state))
	}
	return nil
}

// containerOperands pops the values SETITEM/APPEND (n of them) or SETITEMS/APPENDS (all above the mark) add
// to the container below them, and returns that container.
func (m *machine) containerOperands(single bool, n int) (items []any, target any, err error) {
	if single {
		items, err = m.popN(n)
	} else {
		items, err = m.popMark()
	}
	if err != nil {
		return nil, nil, err
	}
	target, err = m.top()
	return items, target, err
}

func (m *machine) setItems(op byte) error {
	items, target, err := m.containerOperands(op == opSetItem, 2)
	if err != nil {
		return err
	}
	if len(items)%2 != 0 {
		return fmt.Errorf("%w: SETITEMS with an odd number (%d) of values", ErrMalformed, len(items))
	}
	d, ok := target.(*dict)
	if !ok {
		return fmt.Errorf("%w: SETITEM on %s", ErrMalformed, describe(target))
	}
	for i := 0; i < len(items); i += 2 {
		d.entries = append(d.entries, dictEntry{key: items[i], value: items[i+1]})
	}
	return nil
}

func (m *machine) appends(op byte) error {
	items, target, err := m.containerOperands(op == opAppend, 1)
	if err != nil {
		return err
	}
	l, ok := target.(*list)
	if !ok {
		return fmt.Errorf("%w: APPEND on %s", ErrMalformed, describe(target))
	}
	l.items = append(l.items, items...)
	return nil
}

// describe names a value's type for error messages (never its content, which may be huge).
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "None"
	case bool:
		return "a bool"
	case int64:
		return fmt.Sprintf("the integer %d", x)
	case string:
		return fmt.Sprintf("the string %.40q", x)
	case tuple:
		return fmt.Sprintf("a %d-tuple", len(x))
	case *list:
		return "a list"
	case *dict:
		return "a dict"
	case global:
		return x.name
	case *storage:
		return "a storage"
	case *tensorRef:
		return "a tensor"
	}
	return fmt.Sprintf("%T", v)
}

// opName spells an opcode for error messages.
func opName(op byte) string {
	if n, ok := opNames[op]; ok {
		return n
	}
	return fmt.Sprintf("opcode 0x%02x", op)
}

var opNames = map[byte]string{
	opProto: "PROTO", opFrame: "FRAME", opStop: "STOP", opMark: "MARK", opEmptyDict: "EMPTY_DICT",
	opEmptyList: "EMPTY_LIST", opEmptyTuple: "EMPTY_TUPLE", opTuple: "TUPLE", opTuple1: "TUPLE1",
	opTuple2: "TUPLE2", opTuple3: "TUPLE3", opBinUnicode: "BINUNICODE", opShortBinUnicode: "SHORT_BINUNICODE",
	opBinInt: "BININT", opBinInt1: "BININT1", opBinInt2: "BININT2", opLong1: "LONG1", opNone: "NONE",
	opNewTrue: "NEWTRUE", opNewFalse: "NEWFALSE", opBinPut: "BINPUT", opLongBinPut: "LONG_BINPUT",
	opMemoize: "MEMOIZE", opBinGet: "BINGET", opLongBinGet: "LONG_BINGET", opGlobal: "GLOBAL", opStackGlobal: "STACK_GLOBAL",
	opBinPersID: "BINPERSID", opReduce: "REDUCE", opBuild: "BUILD", opSetItem: "SETITEM",
	opSetItems: "SETITEMS", opAppend: "APPEND", opAppends: "APPENDS",
	// Known to pickle but refused here: naming them makes the error say what the file tried.
	'i': "INST", 'o': "OBJ", 0x81: "NEWOBJ", 0x92: "NEWOBJ_EX", 'P': "PERSID",
	0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4",
}
